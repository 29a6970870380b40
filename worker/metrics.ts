/**
 * The worker's side of etcd-steward's metrics (names in common/metrics.ts): activity retries by
 * step, counted by an activity interceptor, and the Prometheus endpoint the SDK's runtime serves
 * them on with its own (`temporal_*`) and the workflows' (`etcd_steward_*`).
 */
import type { Context } from '@temporalio/activity';
import { type ActivityInterceptorsFactory, Runtime, type RuntimeOptions } from '@temporalio/worker';
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

/** Installs the process's runtime with a Prometheus endpoint (once, before any connection). */
export function installMetricsRuntime(bindAddress: string, extra: Omit<RuntimeOptions, 'telemetryOptions'> = {}): void {
  Runtime.install({ ...extra, ...prometheusRuntime(bindAddress) });
}
