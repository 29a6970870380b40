import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ClusterObservation } from '../common/observation';
import type { ClusterSpec } from '../spec/cluster';
import { failureTolerance, quorum } from '../common/quorum';
import { mixedVersionsWarning } from '../common/versions';

const { observeCluster } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

export interface HealthReport {
  cluster: string;
  healthy: boolean;
  voters: number;
  learners: number;
  leader: string | null;
  quorum: number;
  /** How many more voting members may fail without losing quorum. */
  failureTolerance: number;
  problems: string[];
  members: { name: string; id: string; learner: boolean; answers: boolean; raftAppliedIndex?: string; dbSizeBytes?: number; version?: string; clusterVersion?: string; error?: string }[];
  /** Set when the members run more than one etcd version (an upgrade under way). */
  mixedVersions?: string;
}

/** Reads the cluster's health through the etcd API and reports it (changes nothing). */
export async function clusterHealth(spec: ClusterSpec): Promise<HealthReport> {
  const o: ClusterObservation = await observeCluster({ endpoints: spec.members.flatMap((m) => m.clientURLs), withVersions: true });
  const unhealthyVoters = o.statuses.filter((s) => !s.isLearner && !s.ok).length;
  return {
    cluster: spec.name,
    healthy: o.healthy,
    voters: o.voters,
    learners: o.learners,
    leader: o.statuses.find((s) => s.id === o.leaderId)?.name ?? null,
    quorum: o.voters > 0 ? quorum(o.voters) : 0,
    failureTolerance: o.voters > 0 ? failureTolerance(o.voters, unhealthyVoters) : 0,
    problems: o.problems,
    ...(mixedVersionsWarning(o) ? { mixedVersions: mixedVersionsWarning(o)! } : {}),
    members: o.statuses.map((s) => ({
      name: s.name,
      id: s.id,
      learner: s.isLearner,
      answers: s.ok,
      ...(s.raftAppliedIndex !== undefined ? { raftAppliedIndex: s.raftAppliedIndex } : {}),
      ...(s.dbSizeBytes !== undefined ? { dbSizeBytes: s.dbSizeBytes } : {}),
      ...(s.version !== undefined ? { version: s.version } : {}),
      ...(s.clusterVersion !== undefined ? { clusterVersion: s.clusterVersion } : {}),
      ...(s.error !== undefined ? { error: s.error } : {}),
    })),
  };
}
