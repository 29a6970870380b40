/**
 * The operation kernel: what every etcd-steward operation shares, so that an operation is its
 * step list and nothing else.
 *
 * - status (the `status` query, the Web UI's current details) and its event log;
 * - the messages: approve / abort / pause / resume as signals and as Updates with validators,
 *   the monitoring `quorum` signal;
 * - the quorum gate: health through the etcd API with backoff until gateTimeout, the
 *   monitoring verdict, operator approval per policy, pause;
 * - `interruptible` for steps that wait long (an abort cancels them);
 * - a compensation stack, saga style: the step that makes a change registers its undo, the step
 *   that commits it clears it; on abort or failure the pending undos run, newest first;
 * - one way to end: completed, aborted (compensation done), or failed — and a compensation that
 *   fails never hides the failure that caused it;
 * - a short history however long it waits: at a gate, with nothing to undo, a run whose history
 *   has grown long (monitoring verdicts every few seconds through a weekend's wait for approval)
 *   continues as new, handing the next run its progress (KernelCarry plus the operation's own).
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityProfiles } from './profiles';
import { type HostAccess, accessLine } from '../common/access';
import { type OperationMetrics, operationMetrics } from './metrics';
import { FailureType, innermostMessage } from '../common/errors';
import { type QuorumVerdict, monitoringBlocker } from '../common/gate';
import type { OperationType } from '../common/ids';
import type { ClusterObservation } from '../common/observation';
import type { ApprovalPolicy } from '../spec/operations';
import {
  type AbortArgs,
  type ApproveArgs,
  type MemberState,
  type OperationStatus,
  type PauseArgs,
  type Phase,
  type ResumeArgs,
  QUERY_DESCRIPTIONS,
  SIGNAL_DESCRIPTIONS,
  UPDATE_DESCRIPTIONS,
  abortSignal,
  abortUpdate,
  approveSignal,
  approveUpdate,
  pauseSignal,
  pauseUpdate,
  quorumSignal,
  resumeSignal,
  resumeUpdate,
  statusQuery,
} from './messages';

/** Raised inside the workflow when an abort is honoured at a safe point. */
export class AbortRequested extends Error {}

/** The activity's own error, not "Activity task failed". */
export const causeOf = (err: unknown): string => innermostMessage(err, (e) => e instanceof ActivityFailure);

export type Outcome = 'completed' | 'aborted' | 'failed';

/** A run continues as new at a gate once its history has this many events (or the server suggests it). */
export const DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 10_000;

/** What one run hands the next when it continues as new (see OperationKernel.gate). */
export interface KernelCarry {
  /** Runs before the next one. */
  runs: number;
  events: OperationStatus['events'];
  warnings: string[];
  monitoring: QuorumVerdict | null;
  paused: PauseArgs | null;
  /** Batches approved so far (0-based). */
  approvals: number[];
  memberStates: [string, MemberState][];
}

export interface KernelOptions {
  operation: OperationType;
  cluster: string;
  policy: { approval: ApprovalPolicy; gateTimeout: number; maxIndexSpread: number; continueAsNewAfterEvents?: number };
  /** Every member the status shows, with its state at the start. */
  members: ReadonlyArray<readonly [string, MemberState]>;
  observe: ActivityProfiles['observe'];
  /** What the previous run handed over, when this run continues an operation. */
  carried?: KernelCarry;
  /**
   * Continues the operation as a new run from the gate of `batch` (the operation adds its own
   * progress to `carry` and calls the SDK's continueAsNew). Without it a run never continues as new.
   */
  continueAsNew?: (carry: KernelCarry, batch: number) => Promise<never>;
}

export interface GateSpec<T> {
  /** 0-based batch number (approval is per batch). */
  batch: number;
  /** Client URLs to observe the cluster through. */
  endpoints: string[];
  needApproval: boolean;
  /** The operation's verdict on one observation: what keeps the gate closed, and what it decided (e.g. the batch). */
  check: (o: ClusterObservation) => { blockers: string[]; value: T };
  /** Names the batch for people ("etcd4"), from the latest verdict. */
  label: (value: T) => string;
  /** The health check after the last batch: no batch follows it (not counted as one). */
  final?: boolean;
}

/** One entry of the compensation stack. */
interface Undo {
  key: string;
  /** What it undoes, for people ("remove learner etcd4, ..."); empty for a bookkeeping-only undo. */
  what: string;
  /** What a person must do if this undo itself fails. */
  manual: string;
  run: () => Promise<void>;
}

export interface EndSpec<R> {
  /** The operation's result for an outcome (also the failure's details). */
  result: (outcome: Outcome) => R;
  /** The failure's message, from the cause's message (compensation failures are appended by the kernel). */
  failureMessage: (cause: string) => string;
  failureType: FailureType;
  /** Appended to the "aborted" event (e.g. the membership now). */
  abortedNote?: () => string;
}

export class OperationKernel {
  readonly status: OperationStatus;
  private readonly memberStates: Map<string, MemberState>;
  private approvals = new Set<number>();
  private waitingApproval: { batch: number; members: string[] } | null = null;
  private undos: Undo[] = [];
  /** The operation's metrics (replay-safe; common/metrics.ts). */
  readonly metrics: OperationMetrics;

  constructor(private readonly opts: KernelOptions) {
    const carried = opts.carried;
    this.metrics = operationMetrics(opts.cluster, opts.operation);
    if (!carried) this.metrics.started.add(1);
    this.memberStates = new Map(carried ? carried.memberStates : opts.members.map(([n, st]) => [n, st]));
    this.approvals = new Set(carried?.approvals ?? []);
    this.status = {
      operation: opts.operation,
      cluster: opts.cluster,
      phase: 'preflight',
      batch: null,
      plan: null,
      members: [],
      waitingFor: [],
      paused: carried?.paused ?? null,
      abort: null,
      monitoring: carried?.monitoring ?? null,
      warnings: [...(carried?.warnings ?? [])],
      events: [...(carried?.events ?? [])],
    };
    this.registerHandlers();
    if (carried) this.event(`run ${carried.runs + 1} of this operation: carried on from the previous run (continued as new to keep the history short)`);
  }

  // ---- status -------------------------------------------------------------------------------

  event(message: string): void {
    this.status.events.push({ at: new Date().toISOString(), message });
    if (this.status.events.length > 50) this.status.events.shift();
    log.info(message, { cluster: this.opts.cluster, operation: this.opts.operation, step: this.status.phase });
    this.publish();
  }

  publish(): void {
    this.status.members = [...this.memberStates].map(([name, state]) => ({ name, state }));
    setCurrentDetails(renderDetails(this.status));
  }

  phase(p: Phase): void {
    this.status.phase = p;
    this.publish();
  }

  setMember(name: string, s: MemberState): void {
    this.memberStates.set(name, s);
    this.publish();
  }

  memberState(name: string): MemberState | undefined {
    return this.memberStates.get(name);
  }

  /** Says, once per host, how preflight reached it (user, bastion, sudo): read before any change. */
  reportAccess(access: HostAccess[] | undefined): void {
    for (const a of access ?? []) {
      const line = `access ${accessLine(a)}`;
      if (!this.status.events.some((e) => e.message === line)) this.event(line);
    }
  }

  warn(w: string): void {
    this.status.warnings.push(w);
    this.event(`warning: ${w}`);
  }

  private get ended(): boolean {
    return this.status.phase === 'completed' || this.status.phase === 'aborted' || this.status.phase === 'failed';
  }

  // ---- messages -----------------------------------------------------------------------------

  private requestAbort(a: AbortArgs | undefined): void {
    if (this.status.abort) return;
    this.status.abort = { reason: a?.reason || 'no reason given', ...(a?.by ? { by: a.by } : {}) };
    this.event(`abort requested${a?.by ? ` by ${a.by}` : ''}: ${this.status.abort.reason}`);
  }

  private approve(batch: number, by?: string, comment?: string): void {
    this.approvals = new Set([...this.approvals, batch]);
    this.event(`batch ${batch + 1} approved${by ? ` by ${by}` : ''}${comment ? `: ${comment}` : ''}`);
  }

  private pause(p: PauseArgs | undefined): void {
    this.status.paused = p ?? {};
    this.event(`paused${p?.by ? ` by ${p.by}` : ''}${p?.reason ? `: ${p.reason}` : ''}`);
  }

  private resume(by: string | undefined): void {
    this.status.paused = null;
    this.event(`resumed${by ? ` by ${by}` : ''}`);
  }

  private registerHandlers(): void {
    const s = this.status;
    setHandler(
      approveSignal,
      (a) => {
        const batch = a?.batch ?? this.waitingApproval?.batch;
        if (batch === null || batch === undefined) {
          this.event(`approve${a?.by ? ` by ${a.by}` : ''} ignored: no batch is waiting for approval`);
          return;
        }
        this.approve(batch, a?.by, a?.comment);
      },
      { description: SIGNAL_DESCRIPTIONS.approve },
    );
    setHandler(
      approveUpdate,
      (a: ApproveArgs | undefined) => {
        const w = this.waitingApproval!;
        this.approve(w.batch, a?.by, a?.comment);
        return { batch: w.batch, members: w.members };
      },
      {
        description: UPDATE_DESCRIPTIONS.approve,
        validator: (a: ApproveArgs | undefined) => {
          const w = this.waitingApproval;
          if (this.ended) throw new Error(`the operation has ended (${s.phase}): there is nothing to approve`);
          if (!w) {
            const where = s.paused ? 'it is paused' : s.batch ? `batch ${s.batch.index + 1} (${s.batch.member}) is in phase ${s.phase}` : `it is in phase ${s.phase}`;
            throw new Error(`no batch is waiting for approval: ${where}`);
          }
          if (a?.batch !== undefined && a.batch !== w.batch) {
            throw new Error(`batch ${a.batch + 1} is not the one waiting for approval: batch ${w.batch + 1} (${w.members.join(', ')}) is${a.batch < w.batch ? `; batch ${a.batch + 1} is already past` : ''}`);
          }
        },
      },
    );
    setHandler(abortSignal, (a) => this.requestAbort(a), { description: SIGNAL_DESCRIPTIONS.abort });
    setHandler(
      abortUpdate,
      (a) => {
        this.requestAbort(a);
        return { willRollBack: this.pendingUndos(), phase: s.phase };
      },
      {
        description: UPDATE_DESCRIPTIONS.abort,
        validator: (a) => {
          if (this.ended) throw new Error(`the operation has already ended (${s.phase})`);
          if (s.abort) throw new Error(`an abort is already under way: ${s.abort.reason}`);
          if (!a || typeof a.reason !== 'string' || !a.reason.trim()) throw new Error('an abort needs a reason: {"reason": "..."}');
        },
      },
    );
    setHandler(pauseSignal, (p) => this.pause(p), { description: SIGNAL_DESCRIPTIONS.pause });
    setHandler(
      pauseUpdate,
      (p: PauseArgs | undefined) => {
        this.pause(p);
        return { paused: true, phase: s.phase };
      },
      {
        description: UPDATE_DESCRIPTIONS.pause,
        validator: (_p: PauseArgs | undefined) => {
          if (this.ended) throw new Error(`the operation has already ended (${s.phase})`);
          if (s.paused) throw new Error(`already paused${s.paused.by ? ` by ${s.paused.by}` : ''}${s.paused.reason ? `: ${s.paused.reason}` : ''}`);
        },
      },
    );
    setHandler(
      resumeSignal,
      (r) => {
        if (s.paused) this.resume(r?.by);
      },
      { description: SIGNAL_DESCRIPTIONS.resume },
    );
    setHandler(
      resumeUpdate,
      (r: ResumeArgs | undefined) => {
        this.resume(r?.by);
        return { paused: false, phase: s.phase };
      },
      {
        description: UPDATE_DESCRIPTIONS.resume,
        validator: (_r: ResumeArgs | undefined) => {
          if (!s.paused) throw new Error(`not paused (phase ${s.phase})`);
        },
      },
    );
    setHandler(
      quorumSignal,
      (v: QuorumVerdict) => {
        const was = s.monitoring?.healthy;
        s.monitoring = v;
        if (was !== v.healthy) this.event(`monitoring${v.source ? ` (${v.source})` : ''} says ${v.healthy ? 'healthy' : 'unhealthy'}${v.reason ? `: ${v.reason}` : ''}`);
      },
      { description: SIGNAL_DESCRIPTIONS.quorum },
    );
    setHandler(statusQuery, () => s, { description: QUERY_DESCRIPTIONS.status });
  }

  // ---- safe points ----------------------------------------------------------------------------

  /** A safe point: honours a pending abort. */
  checkAbort(): void {
    if (this.status.abort) throw new AbortRequested();
  }

  /** Runs `f`, cancelling it if an abort arrives meanwhile (for steps that wait long). */
  async interruptible<T>(f: () => Promise<T>): Promise<T> {
    this.checkAbort();
    const scope = new CancellationScope();
    const watcher = new CancellationScope();
    void watcher.run(() => condition(() => this.status.abort !== null).then(() => scope.cancel())).catch(() => undefined);
    try {
      return await scope.run(f);
    } catch (e) {
      if (this.status.abort && isCancellation(e)) throw new AbortRequested();
      throw e;
    } finally {
      watcher.cancel();
    }
  }

  // ---- the quorum gate ----------------------------------------------------------------------

  /**
   * Blocks until the cluster passes `check` (and the monitoring verdict, if any, is healthy),
   * then until approval where asked; paused time does not count against gateTimeout. Fails with
   * GateTimeout (nothing changed in this batch) when health does not come within gateTimeout.
   * Call it through `interruptible` so an abort ends the wait.
   */
  async gate<T>(g: GateSpec<T>): Promise<{ observation: ClusterObservation; value: T }> {
    this.phase('gate');
    const opened = Date.now();
    try {
      const r = await this.gateLoop(g);
      this.metrics.gateWaitSeconds.record((Date.now() - opened) / 1000);
      if (!g.final) this.metrics.batches.add(1);
      return r;
    } finally {
      this.metrics.gateWaiting.set(0);
    }
  }

  private async gateLoop<T>(g: GateSpec<T>): Promise<{ observation: ClusterObservation; value: T }> {
    const s = this.status;
    const { gateTimeout, maxIndexSpread } = this.opts.policy;
    let deadline = Date.now() + gateTimeout;
    let delay = 1_000;
    let approved = !g.needApproval;
    for (;;) {
      this.checkAbort();
      this.metrics.gateWaiting.set(1); // again on each pass: a worker that replayed up to here emitted nothing
      if (this.historyLong()) await this.continueAsNew(g.batch);
      if (s.paused) {
        s.waitingFor = [`resume (paused${s.paused.by ? ` by ${s.paused.by}` : ''}${s.paused.reason ? `: ${s.paused.reason}` : ''})`];
        this.publish();
        await condition(() => !s.paused || s.abort !== null || this.historyLong());
        deadline = Date.now() + gateTimeout; // time paused does not count against the health deadline
        continue;
      }
      const observation = await this.opts.observe.observeCluster({ endpoints: g.endpoints, maxIndexSpread });
      const verdict = g.check(observation);
      const fromMonitoring = monitoringBlocker(s.monitoring);
      const blockers = [...new Set([...verdict.blockers, ...(fromMonitoring ? [fromMonitoring] : [])])];
      const label = g.label(verdict.value);
      if (blockers.length === 0 && approved) {
        s.waitingFor = [];
        this.waitingApproval = null;
        this.publish();
        return { observation, value: verdict.value };
      }
      if (blockers.length === 0) {
        this.waitingApproval = { batch: g.batch, members: label.split(', ') };
        s.waitingFor = [`approval of batch ${g.batch + 1} (${label}): send "approve" (signal or update)`];
        this.event(`gate: cluster healthy; waiting for approval of batch ${g.batch + 1}`);
        await condition(() => this.approvals.has(g.batch) || s.abort !== null || s.paused !== null || this.historyLong());
        if (this.approvals.has(g.batch)) {
          approved = true;
          this.waitingApproval = null;
        } // while paused the batch may still be approved, so that resuming goes on at once
        continue; // health is checked again after approval
      }
      if (Date.now() >= deadline) {
        throw ApplicationFailure.nonRetryable(
          `the quorum gate before batch ${g.batch + 1} (${label}) stayed closed for ${Math.round(gateTimeout / 1000)} s: ${blockers.join('; ')}`,
          FailureType.GateTimeout,
        );
      }
      if (s.waitingFor.join() !== blockers.join()) this.event(`gate closed: ${blockers.join('; ')}`);
      s.waitingFor = blockers;
      this.publish();
      const seen = s.monitoring?.healthy;
      await condition(() => s.abort !== null || s.paused !== null || s.monitoring?.healthy !== seen || this.historyLong(), delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  /**
   * The history of this run has grown long (continueAsNewAfterEvents, or the server suggests
   * continuing as new) and there is nothing to undo, so the operation may go on in a new run.
   */
  private historyLong(): boolean {
    if (!this.opts.continueAsNew || this.undos.some((u) => u.what)) return false;
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= (this.opts.policy.continueAsNewAfterEvents ?? DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS);
  }

  /** Hands the operation to a new run at the gate of `batch` (messages being handled finish first). */
  private async continueAsNew(batch: number): Promise<never> {
    const info = workflowInfo();
    this.event(`continuing as new at the gate of batch ${batch + 1}: this run's history has ${info.historyLength} events (${Math.round(info.historySize / 1024)} KB)`);
    await condition(allHandlersFinished);
    return this.opts.continueAsNew!(
      {
        runs: (this.opts.carried?.runs ?? 0) + 1,
        events: [...this.status.events],
        warnings: [...this.status.warnings],
        monitoring: this.status.monitoring,
        paused: this.status.paused,
        approvals: [...this.approvals],
        memberStates: [...this.memberStates],
      },
      batch,
    );
  }

  // ---- compensation -------------------------------------------------------------------------

  /** Registers (or replaces, by key) the undo of a change just about to be made. */
  onUndo(key: string, undo: { what: string; manual: string; run: () => Promise<void> }): void {
    this.undos = [...this.undos.filter((u) => u.key !== key), { key, ...undo }];
  }

  /** The change under `key` is committed: it will not be undone. */
  commit(key: string): void {
    this.undos = this.undos.filter((u) => u.key !== key);
  }

  /** What an abort or failure would undo now, for people. */
  pendingUndos(): string[] {
    return this.undos.map((u) => u.what).filter(Boolean);
  }

  /** Runs the pending undos, newest first. Returns what failed and what a person must do. */
  private async compensate(): Promise<{ error: string; manual: string } | null> {
    while (this.undos.length > 0) {
      const u = this.undos[this.undos.length - 1]!;
      try {
        await u.run();
      } catch (e) {
        const rest = this.undos.slice(0, -1).filter((x) => x.what);
        const manual = [u.manual, ...rest.map((x) => x.manual)].filter(Boolean).join('; then ');
        this.undos = [];
        return { error: `${u.what || u.key}: ${causeOf(e)}`, manual };
      }
      this.undos = this.undos.slice(0, -1);
    }
    return null;
  }

  // ---- the end ------------------------------------------------------------------------------

  /**
   * Runs the operation's steps and ends it: `completed`; on abort (signal, update or workflow
   * cancellation) the pending undos run and it ends `aborted`; on failure they run too and the
   * workflow fails with the cause. A failing undo turns either into a failure whose message
   * names the cause, the undo that failed, and what is left for a person to do.
   */
  async run<R>(body: () => Promise<R>, end: EndSpec<R>): Promise<R> {
    const s = this.status;
    try {
      return await body();
    } catch (err) {
      if (err instanceof ContinueAsNew) throw err; // not an end: the next run goes on
      s.waitingFor = [];
      this.waitingApproval = null;
      const cancelled = isCancellation(err) && !(err instanceof AbortRequested);
      if (cancelled && !s.abort) s.abort = { reason: 'the workflow was cancelled' };
      const failure = err instanceof AbortRequested || cancelled ? null : err;
      // Compensation must run to its end even when the workflow itself is being cancelled.
      const undoFailed = await CancellationScope.nonCancellable(async () => {
        if (failure) this.event(`failed during ${s.phase}${s.batch ? ` of ${s.batch.member}` : ''}: ${causeOf(failure)}`);
        if (this.undos.some((u) => u.what)) {
          this.phase('compensating');
          this.metrics.rollbacks.add(1);
        }
        return this.compensate();
      });
      if (!failure && !undoFailed) {
        this.phase('aborted');
        this.metrics.ended.add(1, { outcome: 'aborted' });
        this.event(`aborted: ${s.abort?.reason}${end.abortedNote ? `; ${end.abortedNote()}` : ''}`);
        if (cancelled) throw err;
        return end.result('aborted');
      }
      this.phase('failed');
      this.metrics.ended.add(1, { outcome: 'failed' });
      if (undoFailed) this.metrics.compensationFailures.add(1);
      const cause = failure ? causeOf(failure) : `aborted (${s.abort?.reason})`;
      let message = end.failureMessage(cause);
      if (undoFailed) {
        this.event(`compensation failed: ${undoFailed.error}`);
        message += ` Rolling back failed too: ${undoFailed.error}. Left for a person to do: ${undoFailed.manual}.`;
      }
      throw ApplicationFailure.nonRetryable(message, end.failureType, end.result('failed'));
    }
  }

  /** Marks the operation completed. */
  complete(message: string): void {
    this.phase('completed');
    this.metrics.ended.add(1, { outcome: 'completed' });
    this.event(message);
  }
}

function renderDetails(s: OperationStatus): string {
  const lines = [
    `**${s.operation} ${s.cluster}** — ${s.phase}${s.batch ? ` — batch ${s.batch.index + 1}/${s.batch.of}: ${s.batch.member}` : ''}`,
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
