/** How the CLI prints things for people: tables, health, status, each operation's result. */
import type { WorkflowExecutionDescription } from '@temporalio/client';
import type { HealthReport, OperationPlanReport, OperationStatus, ReplaceMemberResult, RollingRestartResult, ScaleInResult, ScaleOutResult } from '../index';
import { type Event, waitingFor } from './shared';
export const time = (iso: string | Date) => new Date(iso).toLocaleTimeString('en-GB', { hourCycle: 'h23' });
export const dateTime = (d: string | Date | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
export const eventLine = (e: Event) => `${time(e.at)}  ${e.message}`;
export const who = (by?: string) => (by ? ` by ${by}` : '');
export const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function formatHealth(r: HealthReport): string {
  const lines = [
    `cluster ${r.cluster}: ${r.healthy ? 'healthy' : 'UNHEALTHY'}`,
    `  ${r.voters} voting member(s), ${r.learners} learner(s), leader ${r.leader ?? 'none'}, quorum ${r.quorum}, ` +
      `can lose ${r.failureTolerance} more voting member(s) without losing quorum`,
    '',
    table([
      ['MEMBER', 'ID', 'ROLE', 'ANSWERS', 'APPLIED', 'DB', 'SERVER', 'CLUSTER'],
      ...r.members.map((m) => [
        m.name || '(unstarted)',
        /^\d+$/.test(m.id) ? BigInt(m.id).toString(16) : m.id, // hex, as etcdctl prints it
        m.learner ? 'learner' : 'voter',
        m.answers ? 'yes' : `no${m.error ? `: ${m.error}` : ''}`,
        m.raftAppliedIndex ?? '-',
        m.dbSizeBytes !== undefined ? bytes(m.dbSizeBytes) : '-',
        m.version ?? '-',
        m.clusterVersion ?? '-',
      ]),
    ]).replace(/^/gm, '  '),
  ];
  if (r.mixedVersions) lines.push('', `note: ${r.mixedVersions}`);
  if (r.problems.length) lines.push('', 'problems:', ...r.problems.map((p) => `  - ${p}`));
  return lines.join('\n');
}

export function formatStatus(s: OperationStatus, d: WorkflowExecutionDescription, hints: (cmd: string) => string, events: number): string {
  const lines = [
    `${s.operation} of ${s.cluster} — workflow ${d.workflowId} ${d.status.name}, started ${dateTime(d.startTime)}${d.closeTime ? `, closed ${dateTime(d.closeTime)}` : ''}`,
    `phase:       ${s.phase}`,
  ];
  if (s.plan && s.operation === 'scaleOut') lines.push(`plan:        ${s.plan.from} → ${s.plan.to} voting members, one batch each: ${s.plan.batches.join(', ')}`);
  else if (s.plan && s.operation === 'replaceMember') lines.push(`plan:        ${s.plan.from} voting members; in this order: ${s.plan.batches.join(' → ')}`);
  else if (s.plan && s.operation === 'scaleIn') lines.push(`plan:        ${s.plan.from} → ${s.plan.to} voting members, one removal per batch, expected order: ${s.plan.batches.join(', ')}`);
  else if (s.plan) lines.push(`plan:        ${s.plan.from} voting members; batches from here (decided again from live health before each): ${s.plan.batches.map((b) => `[${b}]`).join(' → ') || 'none'}`);
  if (s.batch) lines.push(`batch:       ${s.batch.index + 1}/${s.batch.of} (${s.batch.member})`);
  lines.push(`members:     ${s.members.map((m) => `${m.name} ${m.state}`).join(', ')}`);
  if (waitingFor(s).length) {
    lines.push('waiting for:', ...s.waitingFor.map((w) => `  - ${w}`));
    if (s.waitingFor.some((w) => w.startsWith('approval of batch'))) lines.push(`  approve with: ${hints(`approve --cluster ${s.cluster}`)}`);
    if (s.paused) lines.push(`  resume with: ${hints(`resume --cluster ${s.cluster}`)}`);
  }
  if (s.paused) lines.push(`paused${who(s.paused.by)}${s.paused.reason ? `: ${s.paused.reason}` : ''}`);
  if (s.abort) lines.push(`abort requested${who(s.abort.by)}: ${s.abort.reason}`);
  if (s.monitoring) lines.push(`monitoring:  ${s.monitoring.healthy ? 'healthy' : 'UNHEALTHY'}${s.monitoring.source ? ` (${s.monitoring.source})` : ''}${s.monitoring.reason ? `: ${s.monitoring.reason}` : ''}`);
  if (s.warnings.length) lines.push('warnings:', ...s.warnings.map((w) => `  - ${w}`));
  const shown = s.events.slice(-events);
  if (shown.length) lines.push(`last events${shown.length < s.events.length ? ` (${shown.length} of ${s.events.length})` : ''}:`, ...shown.map((e) => `  ${dateTime(e.at)}  ${e.message}`));
  return lines.join('\n');
}

export function formatScaleOutResult(r: ScaleOutResult): string {
  const lines =
    r.outcome === 'completed'
      ? [`completed: ${r.members.length} voting members (${r.members.join(', ')})${r.added.length ? `; added ${r.added.join(', ')}` : ''}`]
      : [
          `aborted${who(r.abort?.by)}: ${r.abort?.reason ?? 'no reason given'}`,
          `  voting members: ${r.members.join(', ')}${r.added.length ? ` (added and kept: ${r.added.join(', ')})` : ''}${r.rolledBack.length ? `; rolled back: ${r.rolledBack.join(', ')}` : ''}`,
        ];
  const catchUp = Object.entries(r.catchUpMs);
  if (catchUp.length) lines.push(`  learner catch-up: ${catchUp.map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export function formatRollingRestartResult(r: RollingRestartResult): string {
  const lines = [
    r.outcome === 'completed'
      ? `completed: restarted ${r.restarted.map((x) => x.member).join(', ')}; at most ${r.largestBatch} member(s) down at once`
      : `aborted${who(r.abort?.by)}: ${r.abort?.reason ?? 'no reason given'}; restarted ${r.restarted.map((x) => x.member).join(', ') || 'none'}, not restarted ${r.notRestarted.join(', ') || 'none'}; every member runs`,
  ];
  for (const x of r.restarted) {
    lines.push(`  ${x.member}: batch ${x.batch}, ${x.wasDown ? 'was down, started' : `pid ${x.pidBefore} → ${x.pid}`}, ready in ${x.readyMs} ms${x.envChanged.length ? `, changed ${x.envChanged.join(', ')}` : ''}${x.version ? `, runs etcd ${x.version}` : ''}`);
  }
  for (const m of r.leaderMoves) lines.push(`  leadership moved ${m.from} → ${m.to} before ${m.from} was restarted`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export function formatScaleInResult(r: ScaleInResult): string {
  const lines = [
    r.outcome === 'completed'
      ? `completed: ${r.members.length} voting members (${r.members.join(', ')}); removed ${r.removed.join(', ')}`
      : `aborted${who(r.abort?.by)}: ${r.abort?.reason ?? 'no reason given'}; removed ${r.removed.join(', ') || 'none'}, not removed ${r.notRemoved.join(', ') || 'none'}; voting members ${r.members.join(', ')}`,
  ];
  for (const m of r.leaderMoves) lines.push(`  leadership moved ${m.from} → ${m.to} before ${m.from} was removed`);
  for (const h of r.hosts) lines.push(`  ${h.member}: ${h.cleaned ? h.note : `NOT CLEANED: ${h.note}`}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

export function formatReplaceMemberResult(r: ReplaceMemberResult): string {
  const lines = [
    r.outcome === 'completed'
      ? `completed: ${r.replaced} replaced by ${r.by} (${r.strategy}); ${r.members.length} voting members (${r.members.join(', ')})`
      : `aborted${who(r.abort?.by)}: ${r.abort?.reason ?? 'no reason given'}; ${r.replaced} ${r.removed ? 'removed' : 'still a member'}, ${r.by} ${r.added ? 'added' : r.rolledBack ? 'rolled back' : 'not added'}; voting members ${r.members.join(', ')}`,
  ];
  if (r.why) lines.push(`  order: ${r.strategy}: ${r.why}`);
  if (r.catchUpMs !== null) lines.push(`  ${r.by} caught up in ${r.catchUpMs} ms`);
  for (const m of r.leaderMoves) lines.push(`  leadership moved ${m.from} → ${m.to} before ${m.from} was removed`);
  for (const h of r.hosts) lines.push(`  ${h.member}: ${h.cleaned ? h.note : `NOT CLEANED: ${h.note}`}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

const OPERATION_NAMES: Record<OperationPlanReport['operation'], string> = { scaleOut: 'scale-out', rollingRestart: 'rolling restart', scaleIn: 'scale-in', replaceMember: 'replacement' };

/** A plan (a dry run: nothing changed) for people. */
export function formatPlan(p: OperationPlanReport): string {
  const lines = [`plan: ${OPERATION_NAMES[p.operation]} of ${p.cluster}, ${p.from} → ${p.to} voting members, ${p.batches.length} batch(es) (a dry run from live health: nothing was changed)`];
  p.batches.forEach((b, i) => lines.push(`  batch ${i + 1}: ${b.members.join(', ')}`, `    ${b.steps}`));
  lines.push(`  leadership: ${p.leadership}`, `  untouched: ${p.untouched}`, '  before each batch the quorum gate waits for:', ...p.gate.map((g) => `    - ${g}`));
  if (p.access?.length) lines.push('  access (as preflight reached each host):', ...p.access.map((a) => `    - ${a}`));
  if (p.warnings.length) lines.push('  warnings:', ...p.warnings.map((w) => `    - ${w}`));
  return lines.join('\n');
}
