/**
 * The typed client for automation services: start operations, signal and query them.
 *
 *   const steward = await StewardClient.connect({ address: 'temporal.example:7233' });
 *   const spec = loadClusterSpec('prod-etcd.yaml');
 *   const op = await steward.startScaleOut({ spec, add: [{ name: 'etcd4', address: '192.0.2.14', ssh: { hostKey: '...' } }] });
 *   console.log(await op.status());
 *   await op.result();
 *
 * One operation per cluster: the workflow id is derived from the cluster name, and starting a
 * second one while the first runs fails with OperationRunningError.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, type WorkflowHandle, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Duration, SearchAttributePair } from '@temporalio/common';
import { DEFAULT_TASK_QUEUE, ETCD_CLUSTER, ETCD_OPERATION, HEALTH_ID_PREFIX, PLAN_ID_PREFIX, type OperationType, operationWorkflowId } from '../common/ids';
import type { OperationPlanReport, PlanRequest } from '../common/planText';
import { type ClusterSpec, type MemberInput, type ClusterSpecInput, parseClusterSpec } from '../spec/cluster';
import {
  type EnvChange,
  type ReplaceMemberPolicyInput,
  type RollingRestartPolicyInput,
  type ScaleInPolicyInput,
  type ScaleOutPolicyInput,
  parseReplaceMemberInput,
  parseRollingRestartInput,
  parseScaleInInput,
  parseScaleOutInput,
} from '../spec/operations';
import type { HealthReport } from '../workflows/health';
import { type TemporalConnection, temporalConnection } from './connection';
import type { RollingRestartResult } from '../workflows/rollingRestart';
import type { ScaleOutResult } from '../workflows/scaleOut';
import type { ScaleInResult } from '../workflows/scaleIn';
import type { ReplaceMemberResult } from '../workflows/replaceMember';
import {
  type AbortArgs,
  type AbortResult,
  type ApproveArgs,
  type ApproveResult,
  type OperationStatus,
  type PauseArgs,
  type PauseState,
  type QuorumVerdict,
  type ResumeArgs,
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  quorumSignal,
  resumeUpdate,
  statusQuery,
} from '../workflows/messages';

export type { HealthReport } from '../workflows/health';
export type { ScaleOutResult } from '../workflows/scaleOut';
export type { RollingRestartResult, RestartRecord } from '../workflows/rollingRestart';
export type { ScaleInResult } from '../workflows/scaleIn';
export type { ReplaceMemberResult } from '../workflows/replaceMember';
export type { OperationPlanReport } from '../common/planText';
export type { OperationStatus, ApproveArgs, AbortArgs, AbortResult, ApproveResult, PauseArgs, PauseState, ResumeArgs, QuorumVerdict } from '../workflows/messages';
export { type TemporalConnection, TemporalConfigError, temporalConnection } from './connection';
export { loadClusterSpec, parseClusterSpec, SpecError } from '../spec/cluster';
export { operationWorkflowId } from '../common/ids';

export interface StewardClientOptions {
  /**
   * Where Temporal is, and as what namespace. Unset: from the Temporal environment and config
   * profile, as the Temporal CLI reads them (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*,
   * TEMPORAL_API_KEY, TEMPORAL_PROFILE: see client/connection.ts); given: these win.
   */
  address?: string;
  namespace?: string;
  /** The config profile to read (else TEMPORAL_PROFILE, else `default`). */
  profile?: string;
  /** The environment to read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Settings already resolved by temporalConnection(): used as they are (the options above are then ignored). */
  temporal?: TemporalConnection;
  taskQueue?: string;
  /** How long connecting may take before it fails (default: the SDK's, 10 seconds). */
  connectTimeout?: Duration;
}

/** One etcd-steward workflow run, as listed by `listOperations()`. */
export interface OperationSummary {
  workflowId: string;
  runId: string;
  /** The workflow type: `scaleOut`, `rollingRestart`, or `clusterHealth` for a health check. */
  type: string;
  /** The cluster it is about (its EtcdCluster search attribute; read from the workflow id for runs started before it existed). */
  cluster: string;
  /** RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, ... */
  status: string;
  startTime: Date;
  closeTime?: Date;
}

/**
 * An operator action the workflow refused (an Update's validator): e.g. approve with no batch
 * waiting. Nothing was changed; `reason` says why.
 */
export class OperationRejectedError extends Error {
  constructor(
    readonly action: string,
    readonly workflowId: string,
    readonly reason: string,
  ) {
    super(`${action} rejected by ${workflowId}: ${reason}`);
    this.name = 'OperationRejectedError';
  }
}

const searchAttributes = (cluster: string, operation: OperationType | 'clusterHealth' | 'plan'): SearchAttributePair[] => [
  { key: ETCD_CLUSTER, value: cluster },
  { key: ETCD_OPERATION, value: operation },
];

/** A start refused because the cluster already has an operation running (I9). */
export class OperationRunningError extends Error {
  constructor(
    readonly cluster: string,
    readonly workflowId: string,
  ) {
    super(
      `cluster "${cluster}" already has an operation running (workflow ${workflowId}); ` +
        'wait for it to end, or watch, approve or abort it (etcd-steward status|approve|abort --cluster ' +
        `${cluster}), then start again`,
    );
    this.name = 'OperationRunningError';
  }
}

/** A running (or finished) operation on one cluster. */
export class Operation<R> {
  constructor(readonly handle: WorkflowHandle) {}
  get workflowId(): string {
    return this.handle.workflowId;
  }
  status(): Promise<OperationStatus> {
    return this.handle.query(statusQuery);
  }
  /** Approves the batch waiting at the gate; OperationRejectedError when none waits (or another batch does). */
  approve(args: ApproveArgs = {}): Promise<ApproveResult> {
    return this.update('approve', () => this.handle.executeUpdate(approveUpdate, { args: [args] }));
  }
  /** Aborts at the next safe point; answers what will be rolled back. */
  abort(args: AbortArgs): Promise<AbortResult> {
    return this.update('abort', () => this.handle.executeUpdate(abortUpdate, { args: [args] }));
  }
  pause(args: PauseArgs = {}): Promise<PauseState> {
    return this.update('pause', () => this.handle.executeUpdate(pauseUpdate, { args: [args] }));
  }
  resume(args: ResumeArgs = {}): Promise<PauseState> {
    return this.update('resume', () => this.handle.executeUpdate(resumeUpdate, { args: [args] }));
  }
  private async update<T>(action: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (e) {
      if (e instanceof WorkflowUpdateFailedError) throw new OperationRejectedError(action, this.workflowId, e.cause?.message ?? e.message);
      if (e instanceof WorkflowNotFoundError && /already completed/i.test(e.message)) throw new OperationRejectedError(action, this.workflowId, 'the operation has already ended');
      throw e;
    }
  }
  /** Passes a monitoring system's verdict to the quorum gate. */
  reportQuorum(v: QuorumVerdict): Promise<void> {
    return this.handle.signal(quorumSignal, v);
  }
  /** Waits for the end; a failed operation throws (WorkflowFailedError, whose cause says why). */
  result(): Promise<R> {
    return this.handle.result() as Promise<R>;
  }
}

export interface ScaleOutRequest {
  spec: ClusterSpec | ClusterSpecInput;
  add: MemberInput[];
  policy?: ScaleOutPolicyInput;
}

export interface RollingRestartRequest {
  spec: ClusterSpec | ClusterSpecInput;
  /** Members to restart (default: every member of the spec). */
  members?: string[];
  /** Why: shown to operators in the status, the Web UI and the result. */
  reason: string;
  policy?: RollingRestartPolicyInput;
  /** Env-file variables to set/unset on each member while it is stopped. */
  change?: Partial<EnvChange>;
  /**
   * A rolling upgrade: the new etcd binary, already on each member's host at this path
   * (`{name}`: the member's name). Preflight reads its version and refuses an upgrade etcd does
   * not support (a skipped minor, a downgrade, a patch release older than the upgrade guide asks).
   */
  binary?: string;
}

export interface ScaleInRequest {
  spec: ClusterSpec | ClusterSpecInput;
  /** Members to remove, by name (one per batch; the order is decided from live health). */
  remove: string[];
  policy?: ScaleInPolicyInput;
}

export interface ReplaceMemberRequest {
  spec: ClusterSpec | ClusterSpecInput;
  /** The member to replace, by name. */
  replace: string;
  /** The new member, shaped like a spec member (the old one's name on a rebuilt host is allowed). */
  with: MemberInput;
  policy?: ReplaceMemberPolicyInput;
}

/** What `plan` is asked about: an operation and the request its start would take. */
export type PlanOperationRequest =
  | { operation: 'scaleOut'; request: ScaleOutRequest }
  | { operation: 'rollingRestart'; request: RollingRestartRequest }
  | { operation: 'scaleIn'; request: ScaleInRequest }
  | { operation: 'replaceMember'; request: ReplaceMemberRequest };

export class StewardClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly taskQueue: string,
  ) {}

  static async connect(opts: StewardClientOptions = {}): Promise<StewardClient> {
    const t =
      opts.temporal ??
      temporalConnection({
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.address !== undefined ? { address: opts.address } : {}),
        ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
        ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
      });
    const connection = await Connection.connect({ ...t.options, ...(opts.connectTimeout !== undefined ? { connectTimeout: opts.connectTimeout } : {}) });
    return new StewardClient(new Client({ connection, namespace: t.namespace }), connection, opts.taskQueue ?? DEFAULT_TASK_QUEUE);
  }

  /** Runs the read-only health workflow and returns its report. */
  async clusterHealth(spec: ClusterSpec | ClusterSpecInput): Promise<HealthReport> {
    const valid = parseClusterSpec(spec);
    return this.temporal.workflow.execute('clusterHealth', {
      taskQueue: this.taskQueue,
      workflowId: `${HEALTH_ID_PREFIX}${valid.name}-${randomUUID()}`,
      args: [valid],
      workflowExecutionTimeout: '2 minutes',
      typedSearchAttributes: searchAttributes(valid.name, 'clusterHealth'),
    });
  }

  /** The cluster's running operation as the OperationRunningError a start would throw, or null when none runs. */
  async runningOperation(cluster: string): Promise<OperationRunningError | null> {
    try {
      const d = await this.operation(cluster).handle.describe();
      return d.status.name === 'RUNNING' ? new OperationRunningError(cluster, d.workflowId) : null;
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) return null;
      throw e;
    }
  }

  /**
   * What an operation would do, from live health, changing nothing (the `plan` command): the
   * batches and who is in each, leadership, what is left alone, what the gate waits for. Runs
   * the operation's own preflight, so a request it would refuse is refused here the same way.
   * Validated first like the operation's start (SpecError names each bad field).
   */
  async plan(req: PlanOperationRequest): Promise<OperationPlanReport> {
    const r: PlanRequest =
      req.operation === 'scaleOut'
        ? { operation: 'scaleOut', input: parseScaleOutInput(req.request) }
        : req.operation === 'rollingRestart'
          ? { operation: 'rollingRestart', input: parseRollingRestartInput(req.request) }
          : req.operation === 'scaleIn'
            ? { operation: 'scaleIn', input: parseScaleInInput(req.request) }
            : { operation: 'replaceMember', input: parseReplaceMemberInput(req.request) };
    const cluster = r.input.spec.name;
    return this.temporal.workflow.execute('planOperation', {
      taskQueue: this.taskQueue,
      workflowId: `${PLAN_ID_PREFIX}${cluster}-${randomUUID()}`,
      args: [r],
      workflowExecutionTimeout: '5 minutes',
      typedSearchAttributes: searchAttributes(cluster, 'plan'),
    });
  }

  /**
   * Starts a scale-out. The request is validated here first (SpecError names each bad field);
   * the worker's preflight then checks it against the live cluster and the hosts.
   */
  async startScaleOut(req: ScaleOutRequest): Promise<Operation<ScaleOutResult>> {
    const input = parseScaleOutInput(req);
    const summary = `scale out ${input.spec.name}: ${input.spec.members.length} → ${input.spec.members.length + input.add.length} (+${input.add.map((m) => m.name).join(', ')})`;
    return this.start<ScaleOutResult>('scaleOut', input.spec.name, input, summary);
  }

  /**
   * Starts a rolling restart (validated here first: SpecError names each bad field). Batches
   * are decided from live health before each one; the leader goes last, after MoveLeader.
   */
  async startRollingRestart(req: RollingRestartRequest): Promise<Operation<RollingRestartResult>> {
    const input = parseRollingRestartInput(req);
    const summary = `rolling ${input.binary ? 'upgrade' : 'restart'} of ${input.spec.name} (${input.members.join(', ')}): ${input.reason}`;
    return this.start<RollingRestartResult>('rollingRestart', input.spec.name, input, summary);
  }

  /**
   * Starts a scale-in (validated here first: SpecError names each bad field; removing every
   * member is refused). Preflight refuses a removal that would leave the staying members
   * without a healthy quorum, from live health; the order is decided before each batch.
   */
  async startScaleIn(req: ScaleInRequest): Promise<Operation<ScaleInResult>> {
    const input = parseScaleInInput(req);
    const summary = `scale in ${input.spec.name}: ${input.spec.members.length} → ${input.spec.members.length - input.remove.length} (−${input.remove.join(', ')})`;
    return this.start<ScaleInResult>('scaleIn', input.spec.name, input, summary);
  }

  /**
   * Starts a replacement of one member by a new one (validated here first: SpecError names each
   * bad field). Preflight decides remove-first or add-first from live health and the etcd
   * version (or refuses the order asked for when it cannot work).
   */
  async startReplaceMember(req: ReplaceMemberRequest): Promise<Operation<ReplaceMemberResult>> {
    const input = parseReplaceMemberInput(req);
    const summary = `replace ${input.replace} by ${input.with.name} in ${input.spec.name} (strategy ${input.policy.strategy})`;
    return this.start<ReplaceMemberResult>('replaceMember', input.spec.name, input, summary);
  }

  private async start<R>(type: OperationType, cluster: string, input: unknown, summary: string): Promise<Operation<R>> {
    const workflowId = operationWorkflowId(cluster);
    try {
      const handle = await this.temporal.workflow.start(type, {
        taskQueue: this.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: searchAttributes(cluster, type),
        staticSummary: summary,
      });
      return new Operation<R>(handle);
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError) throw new OperationRunningError(cluster, workflowId);
      throw e;
    }
  }

  /** The current (or latest) operation on a cluster. */
  operation<R = unknown>(cluster: string): Operation<R> {
    return new Operation<R>(this.temporal.workflow.getHandle(operationWorkflowId(cluster)));
  }

  /**
   * Recent etcd-steward workflow runs in this namespace, running ones first, then the most
   * recently closed (the visibility store's order). Health checks only with `includeHealthChecks`.
   */
  async listOperations(opts: { limit?: number; includeHealthChecks?: boolean; cluster?: string } = {}): Promise<OperationSummary[]> {
    const limit = opts.limit ?? 20;
    const query =
      (opts.cluster !== undefined ? `${ETCD_CLUSTER.name} = '${opts.cluster.replaceAll("'", "\\'")}'` : `WorkflowId STARTS_WITH '${operationWorkflowId('')}'`) +
      (opts.includeHealthChecks ? '' : " AND WorkflowType != 'clusterHealth' AND WorkflowType != 'planOperation'");
    const out: OperationSummary[] = [];
    if (limit <= 0) return out;
    for await (const w of this.temporal.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
      const tagged = w.typedSearchAttributes.get(ETCD_CLUSTER);
      const prefix = [HEALTH_ID_PREFIX, PLAN_ID_PREFIX].find((x) => w.workflowId.startsWith(x) && (w.type === 'clusterHealth' || w.type === 'planOperation'));
      const cluster = tagged !== undefined ? tagged : prefix
        ? w.workflowId.slice(prefix.length, -37) // `-<uuid>` is 37 characters
        : w.workflowId.slice(operationWorkflowId('').length);
      out.push({
        workflowId: w.workflowId,
        runId: w.runId,
        type: w.type,
        cluster,
        status: w.status.name,
        startTime: w.startTime,
        ...(w.closeTime ? { closeTime: w.closeTime } : {}),
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
