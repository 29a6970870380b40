/**
 * etcd-steward's own metrics: names, units and what they count. Workflow-side ones are emitted
 * through the SDK's replay-safe workflow metric meter (workflows/metrics.ts), activity retries by
 * the worker's activity interceptor (worker/metrics.ts); the SDK's runtime exports them with its
 * own on the worker's Prometheus endpoint (STEWARD_METRICS_ADDRESS). Every series carries the
 * cluster's name (`cluster`) and the operation (`operation`: scaleOut, rollingRestart, scaleIn,
 * replaceMember); a counter's Prometheus name ends in `_total`.
 */
export const METRICS = {
  /** Operations started (a run continued as new is not a new operation). */
  operationsStarted: 'etcd_steward_operations_started',
  /** Operations ended, by `outcome`: completed, aborted, failed. */
  operationsEnded: 'etcd_steward_operations_ended',
  /** Batches let through their quorum gate. */
  batches: 'etcd_steward_batches',
  /** Operations that ran their compensation (an abort or a failure with changes to undo). */
  rollbacks: 'etcd_steward_rollbacks',
  /** Compensations that could not finish: something is left for a person to do. */
  compensationFailures: 'etcd_steward_compensation_failures',
  /** 1 while the operation waits at a quorum gate (health, approval, or paused there), else 0. */
  gateWaiting: 'etcd_steward_gate_waiting',
  /** Seconds each gate took to open (health and approval). */
  gateWaitSeconds: 'etcd_steward_gate_wait_seconds',
  /** Seconds a new member took from start to caught up (as a learner). */
  learnerCatchUpSeconds: 'etcd_steward_learner_catch_up_seconds',
  /** Activity attempts after the first, by `step` (the activity). */
  activityRetries: 'etcd_steward_activity_retries',
} as const;

/** The cluster a workflow id names (`etcd-steward-<cluster>`), or `unknown`. */
export function clusterOfWorkflowId(workflowId: string): string {
  const m = /^etcd-steward-(?:health-|plan-)?(.+?)(?:-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$/.exec(workflowId);
  return m ? m[1]! : 'unknown';
}
