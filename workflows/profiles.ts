/**
 * Activity option profiles, defined once for every operation: how long a kind of step may take,
 * how it is retried, and how soon a dead worker's attempt is noticed.
 *
 * Every activity heartbeats (activities/index.ts), so a worker that dies mid-step is noticed
 * within HEARTBEAT_TIMEOUT and the step is retried on another worker, well before its
 * startToCloseTimeout.
 */
import { proxyActivities, type RetryPolicy } from '@temporalio/workflow';
import type { Activities } from '../activities';

export const HEARTBEAT_TIMEOUT = 8_000;

const RETRY: RetryPolicy = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '15 seconds' };
const FEW_TRIES: RetryPolicy = { ...RETRY, maximumAttempts: 3 };

export function activityProfiles(policy: { stepTimeout: number }) {
  const heartbeatTimeout = HEARTBEAT_TIMEOUT;
  const attempt = Math.min(policy.stepTimeout, 120_000);
  const step = { scheduleToCloseTimeout: policy.stepTimeout, startToCloseTimeout: attempt, heartbeatTimeout };
  return {
    /** Read-only looks at the cluster (the gate loops on its own, so a few tries each). */
    observe: proxyActivities<Activities>({ startToCloseTimeout: '30 seconds', heartbeatTimeout, retry: FEW_TRIES }),
    /** Preflight: a few tries (a host may be briefly unreachable); bad input fails at once. */
    preflight: proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', heartbeatTimeout, retry: FEW_TRIES }),
    /** A host or membership step, retried with backoff until policy.stepTimeout. */
    step: proxyActivities<Activities>({ ...step, retry: RETRY }),
    /** A step whose repeated failure means something is wrong (a service that will not start): a few tries. */
    stepFewTries: proxyActivities<Activities>({ ...step, retry: FEW_TRIES }),
    /** A wait for etcd (a learner catching up, a restarted member reloading) bounded by its own policy deadline. */
    longWait: (timeout: number) => proxyActivities<Activities>({ scheduleToCloseTimeout: timeout, startToCloseTimeout: timeout, heartbeatTimeout, retry: RETRY }),
    /** Compensation: retried for a long time (15 min), since giving up leaves work for a person. */
    undo: proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', scheduleToCloseTimeout: '15 minutes', heartbeatTimeout, retry: RETRY }),
    /** Cleaning up a host that may stay unreachable: tried for a while, then reported, not fatal. */
    bestEffort: proxyActivities<Activities>({ startToCloseTimeout: '1 minute', scheduleToCloseTimeout: attempt, heartbeatTimeout, retry: RETRY }),
    /**
     * Cleaning up the host of a member already removed (scale-in): a few tries, then reported.
     * Its host is often dead (why it is removed), and nothing waits on it.
     */
    hostCleanup: proxyActivities<Activities>({ startToCloseTimeout: '1 minute', heartbeatTimeout, retry: FEW_TRIES }),
  };
}

export type ActivityProfiles = ReturnType<typeof activityProfiles>;
