/**
 * scaleOut: adds members one at a time as learners, never restarting an existing member.
 *
 * Per batch (one new member): quorum gate → cert → join as learner → config-sync → start →
 * catch up → promote. A member that joined but was not promoted is rolled back on abort or
 * failure (learner removed, service stopped, data dir emptied, env files restored). A promoted
 * member is kept. Every member's env file tells the truth at the end.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  type RetryPolicy,
  setCurrentDetails,
  setHandler,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ClusterObservation } from '../activities/etcd';
import type { ScaleOutPlan } from '../activities/preflight';
import type { ClusterSpec, Member } from '../spec/cluster';
import type { ScaleOutInput } from '../spec/operations';
import { innermostMessage } from './errors';
import { gateBlockers } from './gate';
import {
  type AbortArgs,
  type MemberState,
  type OperationStatus,
  type PauseArgs,
  type Phase,
  type QuorumVerdict,
  QUERY_DESCRIPTIONS,
  SIGNAL_DESCRIPTIONS,
  abortSignal,
  approveSignal,
  pauseSignal,
  quorumSignal,
  resumeSignal,
  statusQuery,
} from './signals';

export interface ScaleOutResult {
  outcome: 'completed' | 'aborted';
  cluster: string;
  /** Voting members at the end. */
  members: string[];
  added: string[];
  rolledBack: string[];
  warnings: string[];
  abort?: AbortArgs;
  /** Learner catch-up time per added member, ms. */
  catchUpMs: Record<string, number>;
}

/** Raised inside the workflow when an abort is honoured at a safe point. */
class AbortRequested extends Error {}

export async function scaleOut(input: ScaleOutInput): Promise<ScaleOutResult> {
  const { spec, add, policy } = input;
  // Every activity heartbeats (activities/index.ts): a worker that dies mid-step is noticed within
  // heartbeatTimeout and the step is retried on another worker, well before startToCloseTimeout.
  const heartbeatTimeout = 8_000;
  const step = { scheduleToCloseTimeout: policy.stepTimeout, startToCloseTimeout: Math.min(policy.stepTimeout, 120_000), heartbeatTimeout };
  const retry: RetryPolicy = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '15 seconds' };
  const acts = proxyActivities<Activities>({ ...step, retry });
  const { preflightScaleOut } = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', heartbeatTimeout, retry: { ...retry, maximumAttempts: 3 } });
  const { observeCluster } = proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', heartbeatTimeout, retry: { ...retry, maximumAttempts: 3 } });
  const { startMember } = proxyActivities<Activities>({ ...step, retry: { ...retry, maximumAttempts: 3 } });
  const { awaitCatchUp } = proxyActivities<Activities>({
    scheduleToCloseTimeout: policy.catchUpTimeout,
    startToCloseTimeout: policy.catchUpTimeout,
    heartbeatTimeout,
    retry,
  });
  const undo = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', scheduleToCloseTimeout: '15 minutes', heartbeatTimeout, retry });
  // Cleaning the rolled-back host is best effort: if it stays unreachable, say so and go on.
  const { retireHost } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', scheduleToCloseTimeout: Math.min(policy.stepTimeout, 120_000), heartbeatTimeout, retry });

  // ---- state, signals, query -------------------------------------------------------------
  const memberStates = new Map<string, MemberState>([...spec.members.map((m) => [m.name, 'voter'] as const), ...add.map((m) => [m.name, 'planned'] as const)]);
  const status: OperationStatus = {
    operation: 'scaleOut',
    cluster: spec.name,
    phase: 'preflight',
    batch: null,
    plan: null,
    members: [],
    waitingFor: [],
    paused: null,
    abort: null,
    monitoring: null,
    warnings: [],
    events: [],
  };
  let approvals = new Set<number>();
  let waitingApproval: number | null = null;
  const event = (message: string) => {
    status.events.push({ at: new Date().toISOString(), message });
    if (status.events.length > 50) status.events.shift();
    log.info(message, { cluster: spec.name });
    publish();
  };
  const publish = () => {
    status.members = [...memberStates].map(([name, state]) => ({ name, state }));
    setCurrentDetails(renderDetails(status));
  };
  const phase = (p: Phase) => {
    status.phase = p;
    publish();
  };
  const setMember = (name: string, s: MemberState) => {
    memberStates.set(name, s);
    publish();
  };

  setHandler(
    approveSignal,
    (a) => {
      const batch = a?.batch ?? waitingApproval;
      if (batch === null || batch === undefined) {
        event(`approve${a?.by ? ` by ${a.by}` : ''} ignored: no batch is waiting for approval`);
        return;
      }
      approvals = new Set([...approvals, batch]);
      event(`batch ${batch + 1} approved${a?.by ? ` by ${a.by}` : ''}${a?.comment ? `: ${a.comment}` : ''}`);
    },
    { description: SIGNAL_DESCRIPTIONS.approve },
  );
  setHandler(
    abortSignal,
    (a) => {
      if (status.abort) return;
      status.abort = { reason: a?.reason || 'no reason given', ...(a?.by ? { by: a.by } : {}) };
      event(`abort requested${a?.by ? ` by ${a.by}` : ''}: ${status.abort.reason}`);
    },
    { description: SIGNAL_DESCRIPTIONS.abort },
  );
  setHandler(
    pauseSignal,
    (p?: PauseArgs) => {
      status.paused = p ?? {};
      event(`paused${p?.by ? ` by ${p.by}` : ''}${p?.reason ? `: ${p.reason}` : ''}`);
    },
    { description: SIGNAL_DESCRIPTIONS.pause },
  );
  setHandler(
    resumeSignal,
    (r) => {
      if (!status.paused) return;
      status.paused = null;
      event(`resumed${r?.by ? ` by ${r.by}` : ''}`);
    },
    { description: SIGNAL_DESCRIPTIONS.resume },
  );
  setHandler(
    quorumSignal,
    (v: QuorumVerdict) => {
      const was = status.monitoring?.healthy;
      status.monitoring = v;
      if (was !== v.healthy) event(`monitoring${v.source ? ` (${v.source})` : ''} says ${v.healthy ? 'healthy' : 'unhealthy'}${v.reason ? `: ${v.reason}` : ''}`);
    },
    { description: SIGNAL_DESCRIPTIONS.quorum },
  );
  setHandler(statusQuery, () => status, { description: QUERY_DESCRIPTIONS.status });

  const checkAbort = () => {
    if (status.abort) throw new AbortRequested();
  };

  /** Runs `f`, cancelling it if an abort arrives meanwhile (for steps that wait long). */
  async function interruptible<T>(f: () => Promise<T>): Promise<T> {
    checkAbort();
    const scope = new CancellationScope();
    const watcher = new CancellationScope();
    void watcher.run(() => condition(() => status.abort !== null).then(() => scope.cancel())).catch(() => undefined);
    try {
      return await scope.run(f);
    } catch (e) {
      if (status.abort && isCancellation(e)) throw new AbortRequested();
      throw e;
    } finally {
      watcher.cancel();
    }
  }

  // ---- the quorum gate --------------------------------------------------------------------
  const endpoints = (members: Member[]) => members.flatMap((m) => m.clientURLs);

  async function gate(batch: number, voters: Member[], needApproval: boolean): Promise<ClusterObservation> {
    phase('gate');
    let deadline = Date.now() + policy.gateTimeout;
    let delay = 1_000;
    let approved = !needApproval;
    for (;;) {
      checkAbort();
      if (status.paused) {
        status.waitingFor = [`resume (paused${status.paused.by ? ` by ${status.paused.by}` : ''}${status.paused.reason ? `: ${status.paused.reason}` : ''})`];
        publish();
        await condition(() => !status.paused || status.abort !== null);
        deadline = Date.now() + policy.gateTimeout; // time paused does not count against the health deadline
        continue;
      }
      const o = await observeCluster({ endpoints: endpoints(voters), maxIndexSpread: policy.maxIndexSpread });
      const blockers = gateBlockers(o, { voters: voters.map((m) => m.name) }, status.monitoring);
      if (blockers.length === 0 && approved) {
        status.waitingFor = [];
        waitingApproval = null;
        publish();
        return o;
      }
      if (blockers.length === 0) {
        waitingApproval = batch;
        status.waitingFor = [`approval of batch ${batch + 1} (${add[batch]!.name}): send the "approve" signal`];
        event(`gate: cluster healthy; waiting for approval of batch ${batch + 1}`);
        await condition(() => approvals.has(batch) || status.abort !== null || status.paused !== null);
        if (approvals.has(batch)) approved = true;
        continue; // health is checked again after approval
      }
      if (Date.now() >= deadline) {
        throw ApplicationFailure.nonRetryable(
          `the quorum gate before batch ${batch + 1} (${add[batch]!.name}) stayed closed for ${Math.round(policy.gateTimeout / 1000)} s: ${blockers.join('; ')}`,
          'GateTimeout',
        );
      }
      if (status.waitingFor.join() !== blockers.join()) event(`gate closed: ${blockers.join('; ')}`);
      status.waitingFor = blockers;
      publish();
      const verdict = status.monitoring?.healthy;
      await condition(() => status.abort !== null || status.paused !== null || status.monitoring?.healthy !== verdict, delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  // ---- the batches ------------------------------------------------------------------------
  const voters: Member[] = [...spec.members];
  const added: string[] = [];
  const rolledBack: string[] = [];
  const catchUpMs: Record<string, number> = {};
  const currentSpec = (): ClusterSpec => ({ ...spec, members: [...voters] });
  let inFlight: { member: Member; joined: boolean } | null = null;
  /** Set once preflight has matched the live membership to the spec: from then on `voters` is known to be true. */
  let membershipVerified = false;

  async function rollBack(m: Member): Promise<void> {
    phase('compensating');
    event(`rolling back ${m.name}: removing the learner, stopping its service, emptying its data dir`);
    const ref = { endpoints: endpoints(voters), member: m };
    const r = await undo.removeLearner(ref);
    let hostNote = '';
    try {
      await retireHost({ spec: currentSpec(), member: m });
    } catch (e) {
      hostNote = `; its host could not be cleaned (${causeOf(e)}): stop etcd there and empty ${m.name}'s data dir before adding it again`;
      status.warnings.push(`${m.name}: host not cleaned after rollback: ${causeOf(e)}`);
    }
    await undo.syncConfig({ spec: currentSpec(), members: voters });
    setMember(m.name, 'rolled-back');
    rolledBack.push(m.name);
    event(`${m.name} rolled back${r.removed ? ` (learner ${r.id} removed)` : ' (it was not in the member list)'}; env files list ${voters.map((v) => v.name).join(', ')} again${hostNote}`);
  }

  const result = (outcome: ScaleOutResult['outcome']): ScaleOutResult => ({
    outcome,
    cluster: spec.name,
    members: voters.map((m) => m.name),
    added: [...added],
    rolledBack: [...rolledBack],
    warnings: status.warnings,
    ...(status.abort ? { abort: status.abort } : {}),
    catchUpMs,
  });

  try {
    event(`scale-out of ${spec.name}: ${spec.members.length} → ${spec.members.length + add.length} members (adding ${add.map((m) => m.name).join(', ')}), approval ${policy.approval}`);
    const plan: ScaleOutPlan = await preflightScaleOut(input);
    membershipVerified = true;
    status.plan = { from: plan.from, to: plan.to, batches: plan.batches.map((b) => b.member) };
    status.warnings.push(...plan.warnings);
    for (const w of plan.warnings) event(`warning: ${w}`);
    if (plan.adoptedLearners.length) event(`reusing learner(s) left by an earlier attempt: ${plan.adoptedLearners.join(', ')}`);

    for (const [i, m] of add.entries()) {
      status.batch = { index: i, of: add.length, member: m.name };
      const needApproval = policy.approval === 'each-batch' || (policy.approval === 'first-batch' && i === 0);
      await interruptible(() => gate(i, voters, needApproval));
      event(`batch ${i + 1}/${add.length}: adding ${m.name}`);
      inFlight = { member: m, joined: false };
      const ref = { endpoints: endpoints(voters), member: m };

      phase('cert');
      setMember(m.name, 'cert');
      const cert = await acts.issueCert({ spec: currentSpec(), member: m });
      event(`${m.name}: certificate ${cert.issued ? 'issued' : 'already valid'} for ${cert.sans.join(', ')}`);
      checkAbort();

      phase('join');
      inFlight.joined = true; // from here on an abort or failure rolls back (a no-op if the add never happened)
      const joined = await acts.addLearner(ref);
      setMember(m.name, 'learner');
      event(`${m.name}: ${joined.existed ? 'already in the member list' : 'added'} as learner ${joined.id}`);
      checkAbort();

      phase('config-sync');
      const sync = await acts.syncConfig({ spec: currentSpec(), members: [...voters, m], joining: m.name });
      event(`config-sync: ETCD_INITIAL_CLUSTER now lists ${[...voters, m].map((x) => x.name).join(', ')} (${sync.changed.length ? `rewrote ${sync.changed.join(', ')}` : 'already so'}; nothing restarted)`);
      checkAbort();

      phase('start');
      setMember(m.name, 'starting');
      await startMember({ spec: currentSpec(), member: m });
      event(`${m.name}: service started`);

      phase('catch-up');
      setMember(m.name, 'catching-up');
      const caught = await interruptible(() => awaitCatchUp({ ...ref, maxLag: policy.maxCatchUpLag }));
      catchUpMs[m.name] = caught.tookMs;
      event(`${m.name}: caught up in ${caught.tookMs} ms (applied ${caught.learnerApplied} vs leader ${caught.leaderApplied})`);
      checkAbort(); // the last safe point: after this the member is promoted and kept

      phase('promote');
      setMember(m.name, 'promoting');
      const promoted = await acts.promoteLearner(ref);
      inFlight = null;
      voters.push(m);
      added.push(m.name);
      setMember(m.name, 'added');
      event(`${m.name}: promoted to voting member${promoted.alreadyVoter ? ' (it already was)' : ''}; ${voters.length} voting members`);
    }

    phase('final-check');
    status.batch = null;
    await gate(add.length, voters, false);
    await acts.syncConfig({ spec: currentSpec(), members: voters });
    phase('completed');
    event(`completed: ${voters.length} voting members (${voters.map((v) => v.name).join(', ')}); every env file lists them`);
    return result('completed');
  } catch (err) {
    status.waitingFor = [];
    const cancelled = isCancellation(err) && !(err instanceof AbortRequested);
    if (cancelled && !status.abort) status.abort = { reason: 'the workflow was cancelled' };
    const failure = err instanceof AbortRequested || cancelled ? null : err;
    // Compensation must run to its end even when the workflow itself is being cancelled.
    await CancellationScope.nonCancellable(async () => {
      if (failure) event(`failed during ${status.phase}${inFlight ? ` of ${inFlight.member.name}` : ''}: ${causeOf(failure)}`);
      if (inFlight?.joined) await rollBack(inFlight.member);
      else if (inFlight) setMember(inFlight.member.name, 'planned');
    });
    if (!failure) {
      phase('aborted');
      event(`aborted: ${status.abort?.reason}; voting members ${voters.map((v) => v.name).join(', ')}`);
      if (cancelled) throw err;
      return result('aborted');
    }
    phase('failed');
    const res = result('aborted');
    throw ApplicationFailure.nonRetryable(
      `scale-out of ${spec.name} failed: ${causeOf(failure)}` +
        (rolledBack.length ? `. Rolled back: ${rolledBack.join(', ')} (learner removed, service stopped, data dir emptied)` : '') +
        (membershipVerified ? `. Voting members now: ${voters.map((v) => v.name).join(', ')}${added.length ? ` (added and kept: ${added.join(', ')})` : ''}.` : '. Nothing was changed.'),
      'ScaleOutFailed',
      res,
    );
  }
}

/** The activity's own error, not "Activity task failed". */
const causeOf = (err: unknown) => innermostMessage(err, (e) => e instanceof ActivityFailure);

function renderDetails(s: OperationStatus): string {
  const lines = [
    `**scaleOut ${s.cluster}** — ${s.phase}${s.batch ? ` — batch ${s.batch.index + 1}/${s.batch.of}: ${s.batch.member}` : ''}`,
    '',
    `members: ${s.members.map((m) => `${m.name} (${m.state})`).join(', ')}`,
  ];
  if (s.waitingFor.length) lines.push('', `**waiting for:** ${s.waitingFor.join('; ')}`);
  if (s.paused) lines.push('', `**paused**${s.paused.by ? ` by ${s.paused.by}` : ''}${s.paused.reason ? `: ${s.paused.reason}` : ''}`);
  if (s.abort) lines.push('', `**abort requested**: ${s.abort.reason}`);
  for (const w of s.warnings) lines.push('', `warning: ${w}`);
  const last = s.events.at(-1);
  if (last) lines.push('', `last event: ${last.message}`);
  return lines.join('\n');
}
