/**
 * The activities the worker registers: every side effect of an operation lives here.
 *
 * Activities receive names, paths and URLs, never secrets: the SSH identity and the etcd client
 * certificate are given to `createActivities` by the worker from its own configuration.
 * Every activity is idempotent: running it twice leaves the same state as running it once.
 */
import { Context } from '@temporalio/activity';
import { type ClusterObservation, type EtcdCredentials, observeCluster } from './etcd';
import { hostActivities } from './host';
import { membershipActivities } from './membership';
import { preflightActivities } from './preflight';
import { restartActivities } from './restart';
import type { SshIdentity } from './ssh';

export interface ActivityDeps {
  ssh: SshIdentity;
  etcd: EtcdCredentials;
}

export interface ObserveInput {
  /** Client URLs to ask for the member list. */
  endpoints: string[];
  maxIndexSpread?: number;
  /** Also read each member's cluster version (health reports). */
  withVersions?: boolean;
}

/** How often an activity heartbeats while it works: a worker that dies is noticed within the workflow's heartbeatTimeout. */
export const HEARTBEAT_EVERY_MS = 2_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyActivity = (...args: any[]) => Promise<unknown>;

/**
 * Heartbeats every HEARTBEAT_EVERY_MS while `f` runs, so that the workflow's heartbeatTimeout
 * (not the much longer startToCloseTimeout) bounds how long a dead worker's attempt goes
 * unnoticed, and so that cancellation (abort) reaches the activity.
 */
function heartbeating<F extends AnyActivity>(f: F): F {
  return (async (...args: Parameters<F>) => {
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      return await f(...args);
    } finally {
      clearInterval(timer);
    }
  }) as F;
}

/** Wraps one activity (before heartbeating is added); the worker's fault-injection fixture uses it. */
export type ActivityWrapper = <F extends AnyActivity>(name: string, f: F) => F;

export function createActivities(deps: ActivityDeps, around: ActivityWrapper = (_name, f) => f) {
  const allHeartbeating = <T extends Record<string, AnyActivity>>(acts: T): T =>
    Object.fromEntries(Object.entries(acts).map(([k, f]) => [k, heartbeating(around(k, f))])) as T;
  const membership = membershipActivities(deps.etcd);
  const { awaitCatchUp, ...quick } = membership; // awaitCatchUp heartbeats its own progress
  const { awaitMemberReady, ...restartSteps } = restartActivities(deps.ssh, deps.etcd); // so does awaitMemberReady
  return {
    ...allHeartbeating({
      /** Reads the member list and each member's status; read-only, so trivially idempotent. */
      async observeCluster(input: ObserveInput): Promise<ClusterObservation> {
        return observeCluster(deps.etcd, input);
      },
    }),
    ...allHeartbeating({ ...preflightActivities(deps.ssh, deps.etcd), ...hostActivities(deps.ssh), ...quick, ...restartSteps }),
    awaitCatchUp: around('awaitCatchUp', awaitCatchUp),
    awaitMemberReady: around('awaitMemberReady', awaitMemberReady),
  };
}

export type Activities = ReturnType<typeof createActivities>;
