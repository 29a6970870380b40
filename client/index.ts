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
import { Client, Connection, type WorkflowHandle, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { type ClusterSpec, type MemberInput, type ClusterSpecInput, parseClusterSpec } from '../spec/cluster';
import { type ScaleOutPolicyInput, parseScaleOutInput } from '../spec/operations';
import type { HealthReport } from '../workflows/health';
import type { ScaleOutResult } from '../workflows/scaleOut';
import {
  type AbortArgs,
  type ApproveArgs,
  type OperationStatus,
  type PauseArgs,
  type QuorumVerdict,
  type ResumeArgs,
  abortSignal,
  approveSignal,
  pauseSignal,
  quorumSignal,
  resumeSignal,
  statusQuery,
} from '../workflows/signals';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

export type { HealthReport } from '../workflows/health';
export type { ScaleOutResult } from '../workflows/scaleOut';
export type { OperationStatus, ApproveArgs, AbortArgs, PauseArgs, ResumeArgs, QuorumVerdict } from '../workflows/signals';
export { loadClusterSpec, parseClusterSpec, SpecError } from '../spec/cluster';

export interface StewardClientOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
  /** How long connecting may take before it fails (default: the SDK's, 10 seconds). */
  connectTimeout?: Duration;
}

/** One etcd-steward workflow run, as listed by `listOperations()`. */
export interface OperationSummary {
  workflowId: string;
  runId: string;
  /** The workflow type: `scaleOut`, or `clusterHealth` for a health check. */
  type: string;
  /** The cluster it is about, read from the workflow id. */
  cluster: string;
  /** RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, ... */
  status: string;
  startTime: Date;
  closeTime?: Date;
}

const HEALTH_ID_PREFIX = 'etcd-steward-health-';

/** The workflow id of a cluster's operation: one at a time per cluster. */
export function operationWorkflowId(cluster: string): string {
  return `etcd-steward-${cluster}`;
}

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
  approve(args: ApproveArgs = {}): Promise<void> {
    return this.handle.signal(approveSignal, args);
  }
  abort(args: AbortArgs): Promise<void> {
    return this.handle.signal(abortSignal, args);
  }
  pause(args: PauseArgs = {}): Promise<void> {
    return this.handle.signal(pauseSignal, args);
  }
  resume(args: ResumeArgs = {}): Promise<void> {
    return this.handle.signal(resumeSignal, args);
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

export class StewardClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly taskQueue: string,
  ) {}

  static async connect(opts: StewardClientOptions = {}): Promise<StewardClient> {
    const connection = await Connection.connect({ address: opts.address ?? '127.0.0.1:7233', ...(opts.connectTimeout !== undefined ? { connectTimeout: opts.connectTimeout } : {}) });
    return new StewardClient(new Client({ connection, namespace: opts.namespace ?? 'default' }), connection, opts.taskQueue ?? DEFAULT_TASK_QUEUE);
  }

  /** Runs the read-only health workflow and returns its report. */
  async clusterHealth(spec: ClusterSpec | ClusterSpecInput): Promise<HealthReport> {
    const valid = parseClusterSpec(spec);
    return this.temporal.workflow.execute('clusterHealth', {
      taskQueue: this.taskQueue,
      workflowId: `${HEALTH_ID_PREFIX}${valid.name}-${randomUUID()}`,
      args: [valid],
      workflowExecutionTimeout: '2 minutes',
    });
  }

  /**
   * Starts a scale-out. The request is validated here first (SpecError names each bad field);
   * the worker's preflight then checks it against the live cluster and the hosts.
   */
  async startScaleOut(req: ScaleOutRequest): Promise<Operation<ScaleOutResult>> {
    const input = parseScaleOutInput(req);
    const workflowId = operationWorkflowId(input.spec.name);
    try {
      const handle = await this.temporal.workflow.start('scaleOut', {
        taskQueue: this.taskQueue,
        workflowId,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        staticSummary: `scale out ${input.spec.name}: ${input.spec.members.length} → ${input.spec.members.length + input.add.length} (+${input.add.map((m) => m.name).join(', ')})`,
      });
      return new Operation<ScaleOutResult>(handle);
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError) throw new OperationRunningError(input.spec.name, workflowId);
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
  async listOperations(opts: { limit?: number; includeHealthChecks?: boolean } = {}): Promise<OperationSummary[]> {
    const limit = opts.limit ?? 20;
    const query = `WorkflowId STARTS_WITH '${operationWorkflowId('')}'` + (opts.includeHealthChecks ? '' : " AND WorkflowType != 'clusterHealth'");
    const out: OperationSummary[] = [];
    if (limit <= 0) return out;
    for await (const w of this.temporal.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
      const cluster = w.type === 'clusterHealth' && w.workflowId.startsWith(HEALTH_ID_PREFIX)
        ? w.workflowId.slice(HEALTH_ID_PREFIX.length, -37) // `-<uuid>` is 37 characters
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
