/**
 * The operator CLI: `npm run steward -- <command>`, a thin layer over the typed client.
 *
 *   health --spec prod-etcd.yaml
 *   scale-out --spec prod-etcd.yaml --add new-members.yaml --approval each-batch
 *   restart --spec prod-etcd.yaml --reason "quota 8 GiB" --set ETCD_QUOTA_BACKEND_BYTES=8589934592
 *   restart --spec prod-etcd.yaml --reason "etcd 3.6" --binary /opt/etcd-v3.6.16/etcd   (a rolling upgrade)
 *   scale-in --spec prod-etcd.yaml --remove etcd4,etcd5
 *   replace --spec prod-etcd.yaml --member etcd2 --with new-etcd2.yaml
 *   status|watch|approve|pause|resume --cluster prod-etcd
 *   abort --cluster prod-etcd --reason "..."
 *   quorum --cluster prod-etcd --unhealthy --reason "..." --source alertmanager
 *   list
 *
 * Exit status: 0 done (or healthy, or completed); 1 failed, unhealthy, or an error; 2 bad input
 * (options or files); 3 the cluster already has an operation running; 4 the operation was aborted;
 * 5 the operation refused the action (e.g. approve with no batch waiting).
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { type Client, type WorkflowExecutionDescription, type WorkflowHandle, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { ClusterSpec } from '../spec/cluster';
import {
  type ReplaceMemberInput,
  type RollingRestartInput,
  type ScaleInInput,
  type ScaleOutInput,
  approvalPolicies,
  parseReplaceMemberInput,
  parseRollingRestartInput,
  parseScaleInInput,
  parseScaleOutInput,
  replaceStrategies,
  retirePolicies,
} from '../spec/operations';
import { innermostMessage } from '../common/errors';
import {
  type HealthReport,
  type OperationStatus,
  type ReplaceMemberResult,
  type RollingRestartResult,
  type ScaleInResult,
  type ScaleOutResult,
  Operation,
  OperationRejectedError,
  OperationRunningError,
  SpecError,
  StewardClient,
  loadClusterSpec,
  operationWorkflowId,
} from './index';

const EXIT = { ok: 0, failed: 1, badInput: 2, running: 3, aborted: 4, rejected: 5 } as const;
/** How the printed hints invoke the CLI. */
const SELF = 'npm run steward --';
/** How long a status query may take: a query needs a worker, and the server waits 30 s for one. */
const QUERY_TIMEOUT_MS = 10_000;

/** An expected failure: printed as one line (no stack), exits with `exitCode`. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

interface Globals {
  address: string;
  namespace: string;
  taskQueue: string;
}
type Event = OperationStatus['events'][number];
const ENDED: OperationStatus['phase'][] = ['completed', 'aborted', 'failed'];
/** What the operation waits for; nothing once it has ended. */
const waitingFor = (s: OperationStatus) => (ENDED.includes(s.phase) ? [] : s.waitingFor);

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

// ---- formatting ---------------------------------------------------------------------------

const time = (iso: string | Date) => new Date(iso).toLocaleTimeString('en-GB', { hourCycle: 'h23' });
const dateTime = (d: string | Date | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
const eventLine = (e: Event) => `${time(e.at)}  ${e.message}`;
const who = (by?: string) => (by ? ` by ${by}` : '');
const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function formatHealth(r: HealthReport): string {
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

function formatStatus(s: OperationStatus, d: WorkflowExecutionDescription, hints: (cmd: string) => string, events: number): string {
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

function formatScaleOutResult(r: ScaleOutResult): string {
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

function formatRollingRestartResult(r: RollingRestartResult): string {
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

function formatScaleInResult(r: ScaleInResult): string {
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

function formatReplaceMemberResult(r: ReplaceMemberResult): string {
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

/** The events in `next` that `prev` did not have (the list keeps the latest 50: old ones drop off the front). */
function newEvents(prev: Event[], next: Event[]): Event[] {
  const same = (a: Event, b: Event) => a.at === b.at && a.message === b.message;
  for (let k = Math.min(prev.length, next.length); k > 0; k--) {
    const tail = prev.slice(prev.length - k);
    if (tail.every((e, i) => same(e, next[i]!))) return next.slice(k);
  }
  return next;
}

/** The innermost useful message of an error chain (a workflow failure's own message, not "Workflow execution failed"). */
function causeMessage(e: unknown): string {
  return innermostMessage(e, (x) => x instanceof WorkflowFailedError);
}

// ---- talking to Temporal ------------------------------------------------------------------

async function connect(g: Globals): Promise<StewardClient> {
  try {
    return await StewardClient.connect({ address: g.address, namespace: g.namespace, taskQueue: g.taskQueue, connectTimeout: '5 seconds' });
  } catch (e) {
    throw new CliError(`cannot connect to Temporal at ${g.address}: ${causeMessage(e)} (set --address or STEWARD_TEMPORAL_ADDRESS)`);
  }
}

/** Warns (does not fail) when no worker has polled the task queue lately: an operation would wait for one. */
async function warnWithoutWorker(steward: StewardClient, g: Globals): Promise<void> {
  try {
    const r = await steward.temporal.withDeadline(Date.now() + 5_000, () =>
      steward.temporal.workflowService.describeTaskQueue({ namespace: g.namespace, taskQueue: { name: g.taskQueue }, taskQueueType: 1 /* workflow */ }),
    );
    if (!r.pollers?.length) console.error(`warning: no worker has polled task queue "${g.taskQueue}" in namespace "${g.namespace}" lately; nothing runs until one does (npm run worker)`);
  } catch {
    /* only a hint */
  }
}

function query(client: Client, handle: WorkflowHandle, g: Globals): Promise<OperationStatus> {
  return client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query<OperationStatus>('status')).catch((e: unknown) => {
    if (e instanceof WorkflowNotFoundError) throw e;
    throw new CliError(`the status query of ${handle.workflowId} got no answer (${causeMessage(e)}); is a worker polling task queue "${g.taskQueue}"?`);
  });
}

/** The latest run of a cluster's operation, or a clear "no operation found". */
async function describeOperation(steward: StewardClient, cluster: string): Promise<{ handle: WorkflowHandle; description: WorkflowExecutionDescription }> {
  try {
    const description = await steward.operation(cluster).handle.describe();
    return { handle: steward.temporal.workflow.getHandle(description.workflowId, description.runId), description };
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) throw new CliError(`no operation found for cluster ${cluster} (no workflow ${operationWorkflowId(cluster)} in this namespace)`);
    throw e;
  }
}

/**
 * Sends an operator action (an Update, answered by the workflow, or the `quorum` signal) to the
 * running operation of a cluster, prints the answer, then what the workflow made of it (the
 * events it recorded since). A rejection by the workflow's validator is one line and exit 5.
 */
async function send(
  steward: StewardClient,
  g: Globals,
  cluster: string,
  what: string,
  act: (op: Operation<unknown>, h: WorkflowHandle) => Promise<string | void>,
  check?: (s: OperationStatus) => void,
): Promise<number> {
  const { handle, description } = await describeOperation(steward, cluster);
  const ended = () => new CliError(`the operation on cluster ${cluster} (workflow ${handle.workflowId}) has already ended; there is nothing to ${what}`);
  if (description.status.name !== 'RUNNING') throw new CliError(`the operation on cluster ${cluster} (workflow ${handle.workflowId}) has already ended (${description.status.name}); there is nothing to ${what}`);
  const before = await query(steward.temporal, handle, g).catch(() => null);
  if (before && check) check(before);
  let answer: string | void;
  try {
    answer = await act(new Operation(handle), handle);
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) throw ended();
    if (e instanceof OperationRejectedError) throw new CliError(`${what} rejected: ${e.reason}`, EXIT.rejected);
    throw e;
  }
  console.log(`${what}: ${answer ?? `sent to ${handle.workflowId}`}`);
  try {
    const after = await query(steward.temporal, handle, g);
    for (const e of newEvents(before?.events ?? [], after.events)) console.log(`  ${eventLine(e)}`);
  } catch (e) {
    console.log(`  (the workflow has not answered yet: ${e instanceof Error ? e.message : String(e)})`);
  }
  return EXIT.ok;
}

/**
 * Follows one run until it ends: prints each new event, and what the gate waits for when that
 * changes; then the result or the failure. Exit status: 0 completed, 1 failed, 4 aborted.
 */
async function watch(steward: StewardClient, g: Globals, handle: WorkflowHandle, hints: (cmd: string) => string, intervalMs = 1_000): Promise<number> {
  let seen: Event[] = [];
  let waiting = '';
  let queryProblem = '';
  process.once('SIGINT', () => {
    console.log(`\nstopped watching; the operation goes on (workflow ${handle.workflowId}). ${hints(`watch --cluster ${handle.workflowId.slice(operationWorkflowId('').length)}`)} to watch again`);
    process.exit(130);
  });
  for (;;) {
    let d: WorkflowExecutionDescription;
    try {
      d = await handle.describe();
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) throw e;
      // A blip (Temporal restarting, the network): say so once and keep watching.
      const msg = `cannot reach Temporal at ${g.address} (${causeMessage(e)}); still trying`;
      if (msg !== queryProblem) console.error(`warning: ${msg}`);
      queryProblem = msg;
      await new Promise((r) => setTimeout(r, intervalMs));
      continue;
    }
    try {
      const s = await query(steward.temporal, handle, g);
      queryProblem = '';
      for (const e of newEvents(seen, s.events)) console.log(eventLine(e));
      seen = s.events;
      const w = waitingFor(s).join('; ');
      if (w && w !== waiting) console.log(`${time(new Date())}  … waiting for: ${w}`);
      waiting = w;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (msg !== queryProblem) console.error(`warning: ${msg}`);
      queryProblem = msg;
    }
    if (d.status.name !== 'RUNNING') return outcome(handle, d);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function outcome(handle: WorkflowHandle, d: WorkflowExecutionDescription): Promise<number> {
  switch (d.status.name) {
    case 'COMPLETED': {
      const r = (await handle.result()) as ScaleOutResult | RollingRestartResult | ScaleInResult | ReplaceMemberResult;
      if (d.type === 'scaleOut') console.log(formatScaleOutResult(r as ScaleOutResult));
      else if (d.type === 'rollingRestart') console.log(formatRollingRestartResult(r as RollingRestartResult));
      else if (d.type === 'scaleIn') console.log(formatScaleInResult(r as ScaleInResult));
      else if (d.type === 'replaceMember') console.log(formatReplaceMemberResult(r as ReplaceMemberResult));
      else console.log(`completed: ${JSON.stringify(r)}`);
      return r?.outcome === 'aborted' ? EXIT.aborted : EXIT.ok;
    }
    case 'FAILED':
      try {
        await handle.result();
      } catch (e) {
        console.log(`failed: ${causeMessage(e)}`);
      }
      return EXIT.failed;
    case 'CANCELLED':
      console.log(`cancelled: the workflow ${handle.workflowId} was cancelled (any member in flight was rolled back)`);
      return EXIT.aborted;
    default:
      console.log(`${d.status.name.toLowerCase().replace('_', ' ')}: the workflow ${handle.workflowId} ended without a result`);
      return EXIT.failed;
  }
}

/** After a start: the workflow id and the commands to follow it; then, with --wait, follows it to its end. */
async function started(steward: StewardClient, g: Globals, hints: (cmd: string) => string, op: Operation<unknown>, cluster: string, approval: boolean, wait: boolean): Promise<number> {
  const { runId } = await op.handle.describe();
  console.log(`workflow: ${op.workflowId} (run ${runId})`);
  console.log(`  watch:   ${hints(`watch --cluster ${cluster}`)}`);
  console.log(`  status:  ${hints(`status --cluster ${cluster}`)}`);
  if (approval) console.log(`  approve: ${hints(`approve --cluster ${cluster}`)}`);
  console.log(`  abort:   ${hints(`abort --cluster ${cluster} --reason "..."`)}`);
  await warnWithoutWorker(steward, g);
  if (!wait) return EXIT.ok;
  console.log('');
  return watch(steward, g, steward.temporal.workflow.getHandle(op.workflowId, runId), hints);
}

// ---- input files --------------------------------------------------------------------------

function readDoc(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SpecError(file, [`cannot be read: ${(e as Error).message}`]);
  }
  try {
    return file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new SpecError(file, [`is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`]);
  }
}

const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a whole number from 1 up.`);
  return n;
};

// ---- the commands -------------------------------------------------------------------------

const program = new Command('etcd-steward')
  .description('Operate etcd-steward: check a cluster, scale it out or in, replace a member, restart it member by member, and watch, approve, pause, resume or abort its operation.')
  .addOption(new Option('--address <host:port>', 'Temporal frontend').env('STEWARD_TEMPORAL_ADDRESS').default('127.0.0.1:7233'))
  .addOption(new Option('--namespace <name>', 'Temporal namespace').env('STEWARD_NAMESPACE').default('default'))
  .addOption(new Option('--task-queue <name>', "the workers' task queue").env('STEWARD_TASK_QUEUE').default('etcd-steward'))
  .showHelpAfterError('(add --help for usage)')
  .addHelpText('after', '\nExit status: 0 ok, 1 failed or unhealthy or error, 2 bad input, 3 an operation is already running, 4 aborted, 5 the operation refused the action.')
  // Usage errors exit 2 like bad input files; help and version exit 0.
  .exitOverride((e: CommanderError) => process.exit(e.exitCode === 0 ? 0 : EXIT.badInput));

/**
 * Runs a command with a connected client; expected errors become one line and an exit status.
 * `prepare` checks the input first (files, options), before any connection is tried.
 */
function action<O, P = undefined>(
  f: (steward: StewardClient, o: O, g: Globals, hints: (cmd: string) => string, prepared: P) => Promise<number>,
  prepare?: (o: O) => P,
) {
  return async (o: O, cmd: Command) => {
    const g = cmd.optsWithGlobals<Globals & O>();
    // Hints repeat the global options given on the command line, so they can be pasted as they are.
    const given = (['address', 'namespace', 'taskQueue'] as const).filter((k) => cmd.getOptionValueSourceWithGlobals(k) === 'cli');
    const flags = given.map((k) => ` --${k === 'taskQueue' ? 'task-queue' : k} ${g[k]}`).join('');
    const hints = (c: string) => `${SELF}${flags} ${c}`;
    let code: number;
    let steward: StewardClient | undefined;
    try {
      const prepared = prepare ? prepare(o) : (undefined as P);
      steward = await connect(g);
      code = await f(steward, o, g, hints, prepared);
    } catch (e) {
      code = report(e);
    }
    await steward?.close().catch(() => undefined);
    process.exit(code);
  };
}

function report(e: unknown): number {
  if (process.env.STEWARD_DEBUG) console.error(e);
  if (e instanceof SpecError) {
    console.error(e.message);
    return EXIT.badInput;
  }
  if (e instanceof OperationRunningError) {
    console.error(e.message);
    return EXIT.running;
  }
  if (e instanceof CliError) {
    console.error(e.message);
    return e.exitCode;
  }
  console.error(`error: ${causeMessage(e)}`);
  return EXIT.failed;
}

program
  .command('health')
  .description('run the clusterHealth workflow and print its report (exit 1 when unhealthy)')
  .requiredOption('--spec <file>', 'the cluster spec (YAML or JSON)')
  .option('--json', 'print the report as JSON')
  .action(
    action<{ spec: string; json?: boolean }, ClusterSpec>(
      async (steward, o, g, _hints, spec) => {
        await warnWithoutWorker(steward, g);
        let r: HealthReport;
        try {
          r = await steward.clusterHealth(spec);
        } catch (e) {
          throw new CliError(`the health check of ${spec.name} failed: ${causeMessage(e)}`);
        }
        console.log(o.json ? JSON.stringify(r, null, 2) : formatHealth(r));
        return r.healthy ? EXIT.ok : EXIT.failed;
      },
      (o) => loadClusterSpec(o.spec),
    ),
  );

program
  .command('scale-out')
  .description('start adding members to a cluster, one at a time as learners')
  .requiredOption('--spec <file>', 'the cluster spec (YAML or JSON)')
  .requiredOption('--add <file>', 'the members to add: a YAML or JSON list, each shaped like a spec member')
  .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
  .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
  .option('--catch-up-timeout <duration>', 'how long a learner may take to catch up before it is rolled back')
  .option('--step-timeout <duration>', 'deadline of each other step, retries included')
  .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
  .action(
    action<{ spec: string; add: string; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; catchUpTimeout?: string; stepTimeout?: string; wait?: boolean }, ScaleOutInput>(
      async (steward, o, g, hints, input) => {
        const { spec, add, policy } = input;
        const op = await steward.startScaleOut(input);
        console.log(`started scale-out of ${spec.name}: ${spec.members.length} → ${spec.members.length + add.length} (adding ${add.map((m) => m.name).join(', ')}), approval ${policy.approval}`);
        return started(steward, g, hints, op, spec.name, policy.approval !== 'never', !!o.wait);
      },
      (o) =>
        // The whole request is checked here (SpecError names each bad field, e.g. add[0].name); the worker's preflight then checks it against the cluster.
        parseScaleOutInput({
          spec: loadClusterSpec(o.spec),
          add: readDoc(o.add),
          policy: {
            ...(o.approval ? { approval: o.approval } : {}),
            ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
            ...(o.catchUpTimeout ? { catchUpTimeout: o.catchUpTimeout } : {}),
            ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
          },
        }),
    ),
  );

/** `KEY=value` (repeatable) into a record; the request's validation names a bad key. */
const collectSet = (v: string, prev: Record<string, string> = {}) => {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`"${v}" must look like ETCD_NAME=value`);
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

program
  .command('restart')
  .description('rolling restart: members in quorum-safe batches decided from live health, followers first, the leader last after MoveLeader')
  .requiredOption('--spec <file>', 'the cluster spec (YAML or JSON)')
  .requiredOption('--reason <text>', 'why the members are restarted (shown to operators)')
  .option('--members <names>', 'comma-separated members to restart (default: all)')
  .option('--set <KEY=value>', 'set an env-file variable on each member while it is stopped (repeatable)', collectSet)
  .option('--unset <KEY>', 'remove an env-file variable on each member while it is stopped (repeatable)', collect)
  .option('--binary <path>', 'a rolling upgrade: the new etcd binary, already on each member\'s host at this path ({name}: the member\'s name), installed at layout.etcdBinary while the member is stopped')
  .option('--max-unavailable <n>', 'at most this many members down at once (the cluster\'s failure tolerance still bounds it)', positiveInt('--max-unavailable'))
  .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
  .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
  .option('--ready-timeout <duration>', 'how long a restarted member may take to answer and catch up')
  .option('--step-timeout <duration>', 'deadline of each restart step, retries included')
  .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
  .action(
    action<
      { spec: string; reason: string; members?: string; set?: Record<string, string>; unset?: string[]; binary?: string; maxUnavailable?: number; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; readyTimeout?: string; stepTimeout?: string; wait?: boolean },
      RollingRestartInput
    >(
      async (steward, o, g, hints, input) => {
        const { spec, policy } = input;
        const op = await steward.startRollingRestart(input);
        console.log(`started rolling ${input.binary ? 'upgrade' : 'restart'} of ${spec.name} (${input.members.join(', ')}): ${input.reason}; at most ${policy.maxUnavailable} down at once, approval ${policy.approval}${input.binary ? `; new binary ${input.binary}` : ''}`);
        return started(steward, g, hints, op, spec.name, policy.approval !== 'never', !!o.wait);
      },
      (o) =>
        parseRollingRestartInput({
          spec: loadClusterSpec(o.spec),
          reason: o.reason,
          ...(o.members ? { members: o.members.split(',').map((x) => x.trim()).filter(Boolean) } : {}),
          ...(o.set || o.unset ? { change: { set: o.set ?? {}, unset: o.unset ?? [] } } : {}),
          ...(o.binary !== undefined ? { binary: o.binary } : {}),
          policy: {
            ...(o.maxUnavailable ? { maxUnavailable: o.maxUnavailable } : {}),
            ...(o.approval ? { approval: o.approval } : {}),
            ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
            ...(o.readyTimeout ? { readyTimeout: o.readyTimeout } : {}),
            ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
          },
        }),
    ),
  );

program
  .command('scale-in')
  .description('remove members one per batch without losing quorum: down members first, the leader last after MoveLeader; nothing that stays is restarted')
  .requiredOption('--spec <file>', 'the cluster spec (YAML or JSON)')
  .requiredOption('--remove <names>', 'comma-separated members to remove')
  .addOption(new Option('--retire <what>', "what becomes of a removed member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies))
  .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
  .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
  .option('--step-timeout <duration>', 'deadline of each step, retries included')
  .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
  .action(
    action<{ spec: string; remove: string; retire?: (typeof retirePolicies)[number]; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; stepTimeout?: string; wait?: boolean }, ScaleInInput>(
      async (steward, o, g, hints, input) => {
        const { spec, remove, policy } = input;
        const op = await steward.startScaleIn(input);
        console.log(`started scale-in of ${spec.name}: ${spec.members.length} → ${spec.members.length - remove.length} (removing ${remove.join(', ')}), approval ${policy.approval}, data dirs: ${policy.retire}`);
        return started(steward, g, hints, op, spec.name, policy.approval !== 'never', !!o.wait);
      },
      (o) =>
        parseScaleInInput({
          spec: loadClusterSpec(o.spec),
          remove: o.remove.split(',').map((x) => x.trim()).filter(Boolean),
          policy: {
            ...(o.retire ? { retire: o.retire } : {}),
            ...(o.approval ? { approval: o.approval } : {}),
            ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
            ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
          },
        }),
    ),
  );

program
  .command('replace')
  .description('replace one member by a new one without losing quorum: add first when the old one answers, remove first when it is down or the new one takes its name or address')
  .requiredOption('--spec <file>', 'the cluster spec (YAML or JSON)')
  .requiredOption('--member <name>', 'the member to replace')
  .requiredOption('--with <file>', 'the new member: a YAML or JSON object shaped like a spec member (the old name on a rebuilt host is allowed)')
  .addOption(new Option('--strategy <order>', 'remove-first, add-first, or auto (decided from live health and the etcd version)').choices(replaceStrategies))
  .addOption(new Option('--retire <what>', "what becomes of the old member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies))
  .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
  .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
  .option('--catch-up-timeout <duration>', 'how long the new learner may take to catch up before it is rolled back')
  .option('--step-timeout <duration>', 'deadline of each step, retries included')
  .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
  .action(
    action<
      {
        spec: string;
        member: string;
        with: string;
        strategy?: (typeof replaceStrategies)[number];
        retire?: (typeof retirePolicies)[number];
        approval?: (typeof approvalPolicies)[number];
        gateTimeout?: string;
        catchUpTimeout?: string;
        stepTimeout?: string;
        wait?: boolean;
      },
      ReplaceMemberInput
    >(
      async (steward, o, g, hints, input) => {
        const { spec, policy } = input;
        const op = await steward.startReplaceMember(input);
        console.log(`started replacement of ${input.replace} by ${input.with.name} in ${spec.name}: strategy ${policy.strategy}, approval ${policy.approval}, data dir: ${policy.retire}`);
        return started(steward, g, hints, op, spec.name, policy.approval !== 'never', !!o.wait);
      },
      (o) =>
        parseReplaceMemberInput({
          spec: loadClusterSpec(o.spec),
          replace: o.member,
          with: readDoc(o.with),
          policy: {
            ...(o.strategy ? { strategy: o.strategy } : {}),
            ...(o.retire ? { retire: o.retire } : {}),
            ...(o.approval ? { approval: o.approval } : {}),
            ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
            ...(o.catchUpTimeout ? { catchUpTimeout: o.catchUpTimeout } : {}),
            ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
          },
        }),
    ),
  );

program
  .command('status')
  .description("print the cluster's current (or latest) operation: phase, batch, members, what it waits for, warnings, last events")
  .requiredOption('--cluster <name>', 'the cluster name')
  .option('--json', 'print the raw status query result')
  .option('--events <n>', 'how many of the latest events to print', positiveInt('--events'), 10)
  .action(
    action<{ cluster: string; json?: boolean; events: number }>(async (steward, o, g, hints) => {
      const { handle, description } = await describeOperation(steward, o.cluster);
      const s = await query(steward.temporal, handle, g);
      console.log(o.json ? JSON.stringify(s, null, 2) : formatStatus(s, description, hints, o.events));
      return EXIT.ok;
    }),
  );

program
  .command('watch')
  .description('follow the operation until it ends, printing each event (exit 0 completed, 1 failed, 4 aborted)')
  .requiredOption('--cluster <name>', 'the cluster name')
  .option('--interval <seconds>', 'how often to poll', positiveInt('--interval'), 1)
  .action(
    action<{ cluster: string; interval: number }>(async (steward, o, g, hints) => {
      const { handle, description: d } = await describeOperation(steward, o.cluster);
      console.log(`watching ${d.type} ${d.workflowId} (run ${d.runId}, ${d.status.name}, started ${dateTime(d.startTime)}); Ctrl-C stops watching, not the operation`);
      return watch(steward, g, handle, hints, o.interval * 1000);
    }),
  );

program
  .command('approve')
  .description('let the operation past the quorum gate of the batch waiting for approval')
  .requiredOption('--cluster <name>', 'the cluster name')
  .option('--batch <n>', 'the batch to approve, as numbered in status (1 = first); default: the one waiting now', positiveInt('--batch'))
  .option('--by <name>', 'who approves', osUser())
  .option('--comment <text>', 'recorded with the approval')
  .action(
    action<{ cluster: string; batch?: number; by: string; comment?: string }>((steward, o, g) =>
      send(
        steward,
        g,
        o.cluster,
        'approve',
        async (op) => {
          const r = await op.approve({ ...(o.batch !== undefined ? { batch: o.batch - 1 } : {}), by: o.by, ...(o.comment ? { comment: o.comment } : {}) });
          return `batch ${r.batch + 1} (${r.members.join(', ')}) approved`;
        },
        (s) => {
          if (o.batch === undefined || !s.plan) return;
          const batches = s.plan.batches;
          if (o.batch > batches.length) {
            throw new CliError(`there is no batch ${o.batch}: the operation on ${o.cluster} has ${batches.length} batch(es): ${batches.map((m, i) => `${i + 1} (${m})`).join(', ')}`, EXIT.badInput);
          }
          if (s.batch && o.batch - 1 < s.batch.index) throw new CliError(`batch ${o.batch} (${batches[o.batch - 1]}) is already past; the operation is at batch ${s.batch.index + 1}`, EXIT.badInput);
        },
      ),
    ),
  );

program
  .command('abort')
  .description('stop at the next safe point and roll back what is not committed (a learner not yet promoted)')
  .requiredOption('--cluster <name>', 'the cluster name')
  .requiredOption('--reason <text>', 'why (recorded in the history)')
  .option('--by <name>', 'who aborts', osUser())
  .action(
    action<{ cluster: string; reason: string; by: string }>((steward, o, g) =>
      send(steward, g, o.cluster, 'abort', async (op) => {
        const r = await op.abort({ reason: o.reason, by: o.by });
        return `accepted during ${r.phase}; ${r.willRollBack.length ? `will roll back: ${r.willRollBack.join('; ')}` : 'nothing to roll back'}`;
      }),
    ),
  );

program
  .command('pause')
  .description('hold the operation at its next gate until resumed')
  .requiredOption('--cluster <name>', 'the cluster name')
  .option('--reason <text>', 'why')
  .option('--by <name>', 'who pauses', osUser())
  .action(
    action<{ cluster: string; reason?: string; by: string }>((steward, o, g) =>
      send(steward, g, o.cluster, 'pause', async (op) => {
        const r = await op.pause({ by: o.by, ...(o.reason ? { reason: o.reason } : {}) });
        return `paused (phase ${r.phase}); it holds at its next gate`;
      }),
    ),
  );

program
  .command('resume')
  .description('release a paused operation')
  .requiredOption('--cluster <name>', 'the cluster name')
  .option('--by <name>', 'who resumes', osUser())
  .action(
    action<{ cluster: string; by: string }>((steward, o, g) =>
      send(steward, g, o.cluster, 'resume', async (op) => {
        const r = await op.resume({ by: o.by });
        return `resumed (phase ${r.phase})`;
      }),
    ),
  );

program
  .command('quorum')
  .description("pass a monitoring verdict to the quorum gate: while the latest is unhealthy the gate stays closed")
  .requiredOption('--cluster <name>', 'the cluster name')
  .addOption(new Option('--healthy', 'the cluster is healthy').conflicts('unhealthy'))
  .addOption(new Option('--unhealthy', 'the cluster is unhealthy').conflicts('healthy'))
  .option('--reason <text>', 'why')
  .option('--source <name>', 'who says so (e.g. the monitoring system)')
  .action(
    action<{ cluster: string; healthy?: boolean; unhealthy?: boolean; reason?: string; source?: string }>(
      (steward, o, g) =>
        send(steward, g, o.cluster, 'quorum', async (op) => {
          await op.reportQuorum({ healthy: !!o.healthy, ...(o.reason ? { reason: o.reason } : {}), ...(o.source ? { source: o.source } : {}) });
        }),
      (o) => {
        if (!o.healthy && !o.unhealthy) throw new CliError('quorum needs --healthy or --unhealthy', EXIT.badInput);
        return undefined;
      },
    ),
  );

program
  .command('list')
  .description('recent etcd-steward operations: running ones first, then the latest closed')
  .option('--limit <n>', 'how many', positiveInt('--limit'), 20)
  .option('--cluster <name>', "only this cluster's (by the EtcdCluster search attribute)")
  .option('--all', 'health checks too')
  .option('--json', 'print JSON')
  .action(
    action<{ limit: number; cluster?: string; all?: boolean; json?: boolean }>(async (steward, o) => {
      const ops = await steward.listOperations({ limit: o.limit, includeHealthChecks: !!o.all, ...(o.cluster !== undefined ? { cluster: o.cluster } : {}) });
      if (o.json) console.log(JSON.stringify(ops, null, 2));
      else if (!ops.length) console.log('no etcd-steward operations in this namespace');
      else
        console.log(
          table([
            ['CLUSTER', 'TYPE', 'STATUS', 'STARTED', 'CLOSED', 'WORKFLOW ID', 'RUN ID'],
            ...ops.map((w) => [w.cluster, w.type, w.status, dateTime(w.startTime), dateTime(w.closeTime), w.workflowId, w.runId]),
          ]),
        );
      return EXIT.ok;
    }),
  );

program.parseAsync().catch((e: unknown) => process.exit(report(e)));
