/**
 * The quorum gate's verdict on one observation. Pure: the workflow calls it on what the
 * observeCluster activity saw, and tests call it on made-up observations.
 */
import type { ClusterObservation } from '../activities/etcd';
import type { QuorumVerdict } from './signals';

export interface GateExpectation {
  /** Names of the voting members there must be, all answering. */
  voters: string[];
}

/** Everything that keeps the gate closed; empty means open. */
export function gateBlockers(o: ClusterObservation, expect: GateExpectation, monitoring: QuorumVerdict | null): string[] {
  const out = [...o.problems];
  const liveVoters = o.members.filter((m) => !m.isLearner).map((m) => m.name);
  for (const name of expect.voters) if (!liveVoters.includes(name)) out.push(`expected voting member ${name} is not in the member list as a voter`);
  for (const name of liveVoters) if (!expect.voters.includes(name)) out.push(`unexpected voting member ${name || '(unnamed)'}`);
  for (const l of o.members.filter((m) => m.isLearner)) out.push(`a learner is pending: ${l.name || '(not started)'} ${l.peerURLs.join(',')}`);
  if (monitoring && !monitoring.healthy) out.push(`monitoring${monitoring.source ? ` (${monitoring.source})` : ''} reports unhealthy${monitoring.reason ? `: ${monitoring.reason}` : ''}`);
  return [...new Set(out)];
}
