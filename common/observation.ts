/**
 * What an observation of a cluster through the etcd API looks like. Pure types, shared by the
 * activity that makes it (activities/etcd.ts), the workflows that decide on it, and the tests.
 */

/** One member as the cluster's member list reports it (ids are uint64 decimal strings). */
export interface ListedMember {
  id: string;
  /** Empty for a member that was added but has not started yet. */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** One member's own answer to Status, or why it gave none. */
export interface MemberStatus {
  id: string;
  name: string;
  endpoint: string | null;
  ok: boolean;
  error?: string;
  leaderId?: string;
  raftTerm?: string;
  raftIndex?: string;
  raftAppliedIndex?: string;
  dbSizeBytes?: number;
  /** The server's version (Status). */
  version?: string;
  /** The cluster version this member runs at (GET /version), when asked for. */
  clusterVersion?: string;
  isLearner: boolean;
}

export interface ClusterObservation {
  members: ListedMember[];
  statuses: MemberStatus[];
  /** The leader all answering voters agree on, if they agree. */
  leaderId: string | null;
  /** Voting members, learners excluded. */
  voters: number;
  learners: number;
  /** Every reason the cluster is not healthy right now; empty when it is. */
  problems: string[];
  healthy: boolean;
}
