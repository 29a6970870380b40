/**
 * The activities the worker registers: every side effect of an operation lives here.
 *
 * Activities receive names, paths and URLs, never secrets: the SSH identity and the etcd client
 * certificate are given to `createActivities` by the worker from its own configuration.
 * Every activity is idempotent: running it twice leaves the same state as running it once.
 */
import { type ClusterObservation, type EtcdCredentials, observeCluster } from './etcd';
import { hostActivities } from './host';
import { membershipActivities } from './membership';
import { preflightActivities } from './preflight';
import type { SshIdentity } from './ssh';

export interface ActivityDeps {
  ssh: SshIdentity;
  etcd: EtcdCredentials;
}

export interface ObserveInput {
  /** Client URLs to ask for the member list. */
  endpoints: string[];
  maxIndexSpread?: number;
}

export function createActivities(deps: ActivityDeps) {
  return {
    /** Reads the member list and each member's status; read-only, so trivially idempotent. */
    async observeCluster(input: ObserveInput): Promise<ClusterObservation> {
      return observeCluster(deps.etcd, input);
    },
    ...preflightActivities(deps.ssh, deps.etcd),
    ...hostActivities(deps.ssh),
    ...membershipActivities(deps.etcd),
  };
}

export type Activities = ReturnType<typeof createActivities>;
