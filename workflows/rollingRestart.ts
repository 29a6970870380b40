/**
 * rollingRestart: restarts members for a config, binary or certificate change without ever
 * taking more members down than the cluster can lose.
 *
 * Before each batch the quorum gate observes the cluster and decides the batch from live health
 * (common/restartPlan.ts): members already down first, then followers at most
 * min(maxUnavailable, failureTolerance - down) at a time, the leader last after MoveLeader.
 * Per member: read its pid (and the env values the change touches) → stop → apply the change →
 * start → the new process must show the change → wait until it answers as a voter with its
 * applied index near the leader's → next gate. Until the member is ready its undo is on the
 * kernel's compensation stack: put the old values back and start it, so a change that keeps etcd
 * from starting leaves no member down. An abort is honoured at the next gate: every member runs.
 */
import { ApplicationFailure, continueAsNew } from '@temporalio/workflow';
import { FailureType } from '../common/errors';
import { gateBlockers } from '../common/gate';
import { type RestartBatch, planRestartBatch, projectRestartPlan } from '../common/restartPlan';
import type { Member } from '../spec/cluster';
import type { EnvChange, RollingRestartInput } from '../spec/operations';
import { endpoints } from './memberSteps';
import { OperationKernel, type Outcome } from './kernel';
import type { AbortArgs } from './messages';
import { activityProfiles } from './profiles';

export interface RestartRecord {
  member: string;
  /** 1-based batch number. */
  batch: number;
  /** null when the member was already down. */
  pidBefore: number | null;
  pid: number;
  wasDown: boolean;
  /** Env-file keys changed on this member. */
  envChanged: string[];
  /** With a binary change: the etcd version the member reported once ready. */
  version?: string;
  /** From the stop to the member answering as a caught-up voter, as the activities measured it. */
  readyMs: number;
}

export interface RollingRestartResult {
  outcome: Outcome;
  cluster: string;
  reason: string;
  restarted: RestartRecord[];
  /** Members asked for that were not restarted (abort or failure). */
  notRestarted: string[];
  leaderMoves: { from: string; to: string }[];
  /** The largest batch run: the most members this operation had down at once. */
  largestBatch: number;
  warnings: string[];
  abort?: AbortArgs;
}

/** The change that undoes `change`, from the values the env file had before. */
export function inverseChange(change: EnvChange, previous: Record<string, string | null>): EnvChange {
  const set: Record<string, string> = {};
  const unset: string[] = [];
  for (const k of [...Object.keys(change.set), ...change.unset]) {
    const v = previous[k];
    if (v === null || v === undefined) unset.push(k);
    else set[k] = v;
  }
  return { set, unset };
}


export async function rollingRestart(input: RollingRestartInput): Promise<RollingRestartResult> {
  const { spec, policy, change, binary, continued } = input;
  const act = activityProfiles(policy);
  const { awaitMemberReady } = act.longWait(policy.readyTimeout);

  // Progress, carried over when an earlier run continued as new.
  const restarted: RestartRecord[] = [...(continued?.restarted ?? [])];
  const remaining = input.members.filter((n) => !restarted.some((r) => r.member === n));
  const leaderMoves: { from: string; to: string }[] = [...(continued?.leaderMoves ?? [])];
  let largestBatch = continued?.largestBatch ?? 0;

  const k = new OperationKernel({
    operation: 'rollingRestart',
    cluster: spec.name,
    policy,
    members: spec.members.map((m) => [m.name, input.members.includes(m.name) ? 'pending' : 'voter'] as const),
    observe: act.observe,
    ...(continued ? { carried: continued.kernel } : {}),
    continueAsNew: (kernel, nextBatch) =>
      continueAsNew<typeof rollingRestart>({
        spec,
        members: input.members,
        reason: input.reason,
        policy,
        ...(change ? { change } : {}),
        ...(binary ? { binary } : {}),
        continued: { kernel, restarted: [...restarted], leaderMoves: [...leaderMoves], largestBatch, nextBatch },
      }),
  });
  const status = k.status;
  const names = spec.members.map((m) => m.name);
  const byName = (n: string): Member => spec.members.find((m) => m.name === n)!;
  const changedKeys = change ? [...Object.keys(change.set), ...change.unset] : [];
  /** Members whose failed restart was undone (old values back, started again). */
  const putBack: string[] = [];
  /** With a binary change: the version each member's new binary reports (from the preflight). */
  let binaries: Record<string, string> | undefined;

  const result = (outcome: Outcome): RollingRestartResult => ({
    outcome,
    cluster: spec.name,
    reason: input.reason,
    restarted: [...restarted],
    notRestarted: [...remaining],
    leaderMoves: [...leaderMoves],
    largestBatch,
    warnings: status.warnings,
    ...(status.abort ? { abort: status.abort } : {}),
  });

  /** Restarts one member and waits until it is a caught-up voter again. */
  async function restartOne(name: string, batch: number, wasDown: boolean): Promise<void> {
    const m = byName(name);
    k.setMember(name, 'restarting');
    const before = await act.observe.readMemberPid({ spec, member: m, envKeys: changedKeys });
    const key = `restart:${name}`;
    if (binary) {
      // a rolling upgrade: until the member is ready on the new binary, its undo puts the previous one back
      const back = change ? inverseChange(change, before.env ?? {}) : undefined;
      k.onUndo(key, {
        what: `${name}: put the previous etcd binary${change ? ` and ${changedKeys.join(', ')}` : ''} back and start it`,
        manual: `on ${name}, move ${spec.layout.etcdBinary.replaceAll('{name}', name)}.steward-previous back to ${spec.layout.etcdBinary.replaceAll('{name}', name)}${change ? `, restore ${changedKeys.map((x) => `${x}=${before.env?.[x] ?? '(unset)'}`).join(', ')} in its env file` : ''} and start etcd`,
        run: async () => {
          const now = await act.undo.readMemberPid({ spec, member: m });
          await act.undo.restartMember({ spec, member: m, pidBefore: now.pid, binary: { restore: true }, ...(back ? { change: back } : {}) });
          k.setMember(name, 'restart-failed');
          putBack.push(name);
          k.event(`${name}: the previous etcd binary${change ? ` and ${changedKeys.join(', ')}` : ''} put back and started again`);
        },
      });
    } else if (change) {
      const back = inverseChange(change, before.env ?? {});
      k.onUndo(key, {
        what: `${name}: put ${changedKeys.join(', ')} back as they were and start it`,
        manual: `on ${name}, restore ${changedKeys.map((x) => `${x}=${before.env?.[x] ?? '(unset)'}`).join(', ')} in its env file and start etcd`,
        run: async () => {
          const now = await act.undo.readMemberPid({ spec, member: m });
          await act.undo.restartMember({ spec, member: m, pidBefore: now.pid, change: back });
          k.setMember(name, 'restart-failed');
          putBack.push(name);
          k.event(`${name}: ${changedKeys.join(', ')} put back and started again`);
        },
      });
    } else {
      k.onUndo(key, {
        what: `${name}: start it again`,
        manual: `start etcd on ${name} (its service command: ${spec.service.start})`,
        run: async () => {
          // a few tries: a member that will not start now will not start in 15 minutes either
          await act.stepFewTries.startMember({ spec, member: m });
          k.setMember(name, 'restart-failed');
          putBack.push(name);
        },
      });
    }
    const r = await act.stepFewTries.restartMember({ spec, member: m, pidBefore: before.pid, ...(change ? { change } : {}), ...(binary ? { binary: { install: binary } } : {}) });
    if (r.pid === before.pid) {
      throw ApplicationFailure.nonRetryable(`${name}: its etcd process is still pid ${r.pid} after the restart`, FailureType.StartFailed);
    }
    k.event(
      `${name}: ${wasDown ? 'started (it was down)' : `restarted (pid ${before.pid} → ${r.pid})`}` +
        (r.envChanged.length ? `; ${r.envChanged.map((x) => `${x}=${r.running[x] ?? '(unset)'}`).join(', ')} in the running process` : ''),
    );
    k.phase('wait-ready');
    k.setMember(name, 'waiting-ready');
    const ready = await awaitMemberReady({ endpoints: endpoints(spec.members), member: m, maxIndexSpread: policy.maxIndexSpread });
    const expected = binaries?.[name];
    if (binary && ready.version !== expected) {
      throw ApplicationFailure.nonRetryable(`${name}: restarted onto ${binary}, it reports etcd ${ready.version}, not ${expected} (its new binary's version): is the service running another binary than ${spec.layout.etcdBinary.replaceAll('{name}', name)}?`, FailureType.BinaryNotInEffect);
    }
    k.commit(key);
    k.setMember(name, 'restarted');
    restarted.push({ member: name, batch: batch + 1, pidBefore: before.pid, pid: r.pid, wasDown, envChanged: r.envChanged, readyMs: ready.tookMs, ...(binary ? { version: ready.version } : {}) });
    remaining.splice(remaining.indexOf(name), 1);
    k.event(`${name}: answering as a voter${binary ? ` on etcd ${ready.version}` : ''}, applied index ${ready.applied} (leader ${ready.leaderApplied}), ready ${ready.tookMs} ms after start`);
  }

  return k.run(
    async () => {
      const describeChange = change
        ? `; change: ${[...Object.entries(change.set).map(([x, v]) => `${x}=${v}`), ...change.unset.map((x) => `unset ${x}`)].join(', ')}`
        : '';
      if (!continued) k.event(`rolling restart of ${spec.name} (${input.members.join(', ')}): ${input.reason}; at most ${policy.maxUnavailable} down at once, approval ${policy.approval}${describeChange}${binary ? `; new etcd binary: ${binary}` : ''}`);
      const plan = await act.preflight.preflightRollingRestart({ spec, members: input.members, reason: input.reason, policy, ...(change ? { change } : {}), ...(binary ? { binary } : {}) });
      binaries = plan.binaries;
      if (binary && !continued && binaries) k.event(`upgrade: ${[...new Set(Object.values(binaries))].join(', ')} for ${Object.keys(binaries).join(', ')}`);
      k.reportAccess(plan.access);
      for (const w of plan.warnings.filter((x) => !status.warnings.includes(x))) k.warn(w);

      for (let i = continued?.nextBatch ?? 0; remaining.length > 0; i++) {
        const needApproval = policy.approval === 'each-batch' || (policy.approval === 'first-batch' && i === 0);
        status.batch = { index: i, of: i + Math.max(1, status.plan?.batches.length ?? 1), member: remaining.join(', '), members: [...remaining] }; // until the gate decides
        const { value: batch } = await k.interruptible(() =>
          k.gate<RestartBatch | null>({
            batch: i,
            endpoints: endpoints(spec.members),
            needApproval,
            check: (o) => {
              const d = planRestartBatch(o, remaining, policy.maxUnavailable);
              status.plan = { from: names.length, to: names.length, batches: projectRestartPlan(o, remaining, policy.maxUnavailable) };
              const next = d.batch?.members ?? remaining;
              status.batch = { index: i, of: i + status.plan.batches.length, member: next.join(', '), members: [...next] };
              return { blockers: [...gateBlockers(o, { voters: names, mayBeDown: d.down }, null), ...d.blockers], value: d.batch };
            },
            label: (b) => (b ? b.members.join(', ') : remaining.join(', ')),
          }),
        );
        if (!batch) throw new Error('the gate opened without a batch'); // cannot happen: no batch is a blocker
        largestBatch = Math.max(largestBatch, batch.members.length);
        k.event(
          `batch ${i + 1}: restarting ${batch.members.join(', ')}` +
            (batch.alreadyDown.length ? ' (already down: restarting it cannot lower availability)' : ` (at most ${batch.bound} down at once)`),
        );

        if (batch.moveLeaderTo) {
          k.phase('move-leader');
          const moved = await act.step.moveLeader({ endpoints: endpoints(spec.members), to: byName(batch.moveLeaderTo.name) });
          leaderMoves.push({ from: moved.from, to: moved.to });
          k.event(moved.moved ? `leadership moved from ${moved.from} to ${moved.to}` : `${moved.to} already leads`);
        }

        k.phase('restart');
        const settled = await Promise.allSettled(batch.members.map((n) => restartOne(n, i, batch.alreadyDown.includes(n))));
        const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failed) throw failed.reason;
      }

      k.phase('final-check');
      status.batch = null;
      const askedFor = input.members;
      await k.gate({
        final: true,
        batch: restarted.length,
        endpoints: endpoints(spec.members),
        needApproval: false,
        check: (o) => {
          const down = o.statuses.filter((s) => !s.isLearner && !s.ok && !askedFor.includes(s.name)).map((s) => s.name);
          return { blockers: gateBlockers(o, { voters: names, mayBeDown: down }, null), value: null };
        },
        label: () => 'final check',
      });
      k.complete(`completed: restarted ${restarted.map((r) => r.member).join(', ')}; at most ${largestBatch} down at once`);
      return result('completed');
    },
    {
      result,
      failureType: FailureType.RollingRestartFailed,
      failureMessage: (cause) =>
        `rolling restart of ${spec.name} failed: ${cause}.` +
        (restarted.length ? ` Restarted: ${restarted.map((r) => r.member).join(', ')}.` : ' No member was restarted.') +
        (remaining.length ? ` Not restarted: ${remaining.join(', ')}.` : '') +
        (putBack.length ? ` Started again${binary ? ' on the previous binary' : ''}${change ? ' with the previous values' : ''}: ${putBack.join(', ')}.` : '') +
        ' No further member was stopped.',
      abortedNote: () => `restarted ${restarted.map((r) => r.member).join(', ') || 'none'}; not restarted ${remaining.join(', ') || 'none'}; every member runs`,
    },
  );
}
