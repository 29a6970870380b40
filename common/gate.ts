/**
 * The quorum gate's verdict on one observation. Pure: workflows call it on what the
 * observeCluster activity saw, and tests call it on made-up observations.
 */
import type { ClusterObservation } from './observation';

/** A monitoring system's verdict on the cluster: while the latest one is unhealthy the gate stays closed. */
export interface QuorumVerdict {
  healthy: boolean;
  reason?: string;
  source?: string;
}

export interface GateExpectation {
  /** Names of the voting members there must be, all answering (except those in `mayBeDown`). */
  voters: string[];
  /**
   * Voting members allowed not to answer: a rolling restart restarts a member that is already
   * down first (its own batch), and counts down members against the failure tolerance instead.
   */
  mayBeDown?: string[];
}

/** The problem observeCluster reports for a voting member that does not answer. */
export function notAnsweringProblem(member: string): string {
  return `voting member ${member} does not answer`;
}

/** Everything that keeps the gate closed; empty means open. */
export function gateBlockers(o: ClusterObservation, expect: GateExpectation, monitoring: QuorumVerdict | null): string[] {
  const tolerated = (expect.mayBeDown ?? []).map((n) => `${notAnsweringProblem(n)}:`);
  const out = o.problems.filter((p) => !tolerated.some((t) => p.startsWith(t)));
  const liveVoters = o.members.filter((m) => !m.isLearner).map((m) => m.name);
  for (const name of expect.voters) if (!liveVoters.includes(name)) out.push(`expected voting member ${name} is not in the member list as a voter`);
  for (const name of liveVoters) if (!expect.voters.includes(name)) out.push(`unexpected voting member ${name || '(unnamed)'}`);
  for (const l of o.members.filter((m) => m.isLearner)) out.push(`a learner is pending: ${l.name || '(not started)'} ${l.peerURLs.join(',')}`);
  const m = monitoringBlocker(monitoring);
  if (m) out.push(m);
  return [...new Set(out)];
}

/** What a monitoring system's latest verdict adds to the gate's blockers (null when healthy or none given). */
export function monitoringBlocker(monitoring: QuorumVerdict | null): string | null {
  if (!monitoring || monitoring.healthy) return null;
  return `monitoring${monitoring.source ? ` (${monitoring.source})` : ''} reports unhealthy${monitoring.reason ? `: ${monitoring.reason}` : ''}`;
}
