/**
 * The worker: connects to Temporal, registers the workflows (bundled from workflows/) and the
 * activities wired to this worker's secrets, and polls the task queue.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps, type ActivityWrapper } from '../activities';
import type { WorkerLimits } from './config';
import { retryMetrics } from './runtime';
import type { Tracing } from './tracing';

export const WORKFLOWS_PATH = require.resolve('../workflows');

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** Wraps each activity (the crash tests' fault-injection fixture). */
  around?: ActivityWrapper;
  /** A prebuilt bundle (tests build one and share it); otherwise workflows/ is bundled now. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Concurrency limits (worker/config.ts, from STEWARD_MAX_*); absent ones take the SDK's defaults. */
  limits?: WorkerLimits;
  /** OpenTelemetry tracing (worker/tracing.ts), when asked for. */
  tracing?: Tracing['workerOptions'];
}

export async function createWorker(opts: CreateWorkerOptions): Promise<Worker> {
  if (opts.tracing && opts.workflowBundle) {
    throw new Error('tracing (OTEL_TRACES_EXPORTER=otlp) needs the workflows bundled with its interceptors at start: unset STEWARD_WORKFLOW_BUNDLE');
  }
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities(opts.deps, opts.around),
    // etcd-steward's activity metrics (retries by step); the workflows emit theirs themselves
    interceptors: {
      activity: [retryMetrics, ...(opts.tracing?.interceptors.activity ?? [])],
      ...(opts.tracing ? { workflowModules: opts.tracing.interceptors.workflowModules } : {}),
    },
    ...(opts.tracing?.sinks ? { sinks: opts.tracing.sinks } : {}),
    ...opts.limits,
  });
}
