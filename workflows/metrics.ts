/**
 * The operation's metrics (names in common/metrics.ts), through the SDK's workflow metric meter:
 * replay-safe (nothing is emitted while a worker replays history), tagged with the cluster and
 * the operation. Emitting a metric is not a command: adding or moving one needs no patch.
 */
import { metricMeter } from '@temporalio/workflow';
import { METRICS } from '../common/metrics';

export type OperationMetrics = ReturnType<typeof operationMetrics>;

export function operationMetrics(cluster: string, operation: string) {
  const m = metricMeter.withTags({ cluster, operation });
  return {
    started: m.createCounter(METRICS.operationsStarted, 'operations', 'etcd-steward operations started'),
    ended: m.createCounter(METRICS.operationsEnded, 'operations', 'etcd-steward operations ended, by outcome (completed, aborted, failed)'),
    batches: m.createCounter(METRICS.batches, 'batches', 'batches let through their quorum gate'),
    rollbacks: m.createCounter(METRICS.rollbacks, 'operations', 'operations that ran their compensation'),
    compensationFailures: m.createCounter(METRICS.compensationFailures, 'operations', 'compensations that could not finish (a person must act)'),
    gateWaiting: m.createGauge(METRICS.gateWaiting, 'int', '', '1 while the operation waits at a quorum gate'),
    gateWaitSeconds: m.createHistogram(METRICS.gateWaitSeconds, 'float', 's', 'seconds a quorum gate took to open'),
    learnerCatchUpSeconds: m.createHistogram(METRICS.learnerCatchUpSeconds, 'float', 's', 'seconds a new member took to catch up as a learner'),
  };
}
