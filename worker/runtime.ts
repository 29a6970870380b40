/**
 * The worker process's runtime: its logs and its metrics.
 *
 * Logs: one JSON object per line on stderr when stderr is not a terminal (a service manager, a
 * container), plain lines on a terminal. Each carries what the SDK attaches (workflowId, runId,
 * workflowType, activityType, attempt, namespace, taskQueue) and, from the operations' events,
 * `cluster`, `operation` and `step` (the phase). Activity inputs are never logged, so no secret is.
 *
 * Metrics (names in common/metrics.ts): activity retries by step, counted by an activity
 * interceptor, and the Prometheus endpoint the SDK's runtime serves them on with its own
 * (`temporal_*`) and the workflows' (`etcd_steward_*`).
 */
import type { Context } from '@temporalio/activity';
import { type ActivityInterceptorsFactory, DefaultLogger, type LogEntry, type LogLevel, type Logger, Runtime, type RuntimeOptions } from '@temporalio/worker';
import { METRICS, clusterOfWorkflowId } from '../common/metrics';

/** Counts every activity attempt after the first, by step, cluster and operation. */
export const retryMetrics: ActivityInterceptorsFactory = (ctx: Context) => ({
  inbound: {
    async execute(input, next) {
      const info = ctx.info;
      if (info.attempt > 1) {
        ctx.metricMeter
          .createCounter(METRICS.activityRetries, 'attempts', 'activity attempts after the first, by step')
          .add(1, { step: info.activityType, cluster: clusterOfWorkflowId(info.workflowExecution?.workflowId ?? ''), operation: info.workflowType ?? 'unknown' });
      }
      return next(input);
    },
  },
});

/**
 * The runtime options that serve metrics on `bindAddress` (`host:port`, path /metrics): counters
 * end in `_total` and durations are in seconds, as Prometheus conventions want.
 */
export function prometheusRuntime(bindAddress: string): Pick<RuntimeOptions, 'telemetryOptions'> {
  return { telemetryOptions: { metrics: { prometheus: { bindAddress, countersTotalSuffix: true, useSecondsForDurations: true } } } };
}

/** One log entry as a JSON line: time, level, message, then its attributes (errors by their message). */
export function jsonLogLine(entry: LogEntry): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  return JSON.stringify({ time, level: entry.level, message: entry.message, ...entry.meta }, (_k, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Error ? { error: v.name, message: v.message } : v,
  );
}

/** The worker's logger: JSON lines when `json`, the SDK's plain format otherwise. */
export function workerLogger(json: boolean, level: LogLevel = 'INFO'): Logger {
  return json ? new DefaultLogger(level, (entry) => process.stderr.write(`${jsonLogLine(entry)}\n`)) : new DefaultLogger(level);
}

/**
 * Installs the process's runtime (once, before any connection): the logger (JSON unless stderr
 * is a terminal) and, given an address, the Prometheus endpoint.
 */
export function installWorkerRuntime(o: { metricsAddress?: string; json?: boolean }): Logger {
  const logger = workerLogger(o.json ?? !process.stderr.isTTY);
  Runtime.install({ logger, ...(o.metricsAddress ? prometheusRuntime(o.metricsAddress) : {}) });
  return logger;
}
