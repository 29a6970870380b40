/**
 * Which members a rolling restart may take down next, decided from live health. Pure: the
 * workflow calls it at the gate before each batch; tests and the CLI's dry run call it too.
 *
 * Rules (etcd needs a majority of voters; see common/quorum.ts):
 * - a member that is already down is restarted first, on its own batch: restarting it cannot
 *   lower availability, and it is not counted twice;
 * - otherwise the batch holds at most min(maxUnavailable, failureTolerance(voters) - down) members,
 *   from live health, never from the inventory; 0 means wait, and say why;
 * - followers first; the leader last and alone, after leadership is moved to the most
 *   caught-up follower.
 */
import type { ClusterObservation, MemberStatus } from './observation';
import { failureTolerance, quorum } from './quorum';

export interface RestartBatch {
  /** Members to restart now. */
  members: string[];
  /** The members of this batch that were already down (restarted first). */
  alreadyDown: string[];
  /** Set when the batch is the leader: move leadership to this member first. */
  moveLeaderTo?: { name: string; id: string };
  /** How many members may be down at once for this batch (the bound it respects). */
  bound: number;
}

export interface RestartDecision {
  /** Why no batch may start now (empty when `batch` is set). */
  blockers: string[];
  batch: RestartBatch | null;
  /** Voting members that do not answer right now. */
  down: string[];
}

const applied = (s: MemberStatus): bigint => (s.raftAppliedIndex ? BigInt(s.raftAppliedIndex) : -1n);

export function planRestartBatch(o: ClusterObservation, remaining: string[], maxUnavailable: number): RestartDecision {
  const voters = o.statuses.filter((s) => !s.isLearner);
  const down = voters.filter((s) => !s.ok).map((s) => s.name);
  if (voters.length === 0) return { blockers: ['no voting member answers'], batch: null, down };

  const downRemaining = remaining.filter((n) => down.includes(n));
  if (downRemaining.length > 0) {
    return { blockers: [], batch: { members: downRemaining, alreadyDown: downRemaining, bound: down.length }, down };
  }

  const n = voters.length;
  const tolerance = failureTolerance(n, down.length);
  const bound = Math.min(maxUnavailable, tolerance);
  if (bound <= 0) {
    const why = down.length
      ? `${down.length} of ${n} voting members already down (${down.join(', ')}), and ${n} members tolerate ${n - quorum(n)} down`
      : `${n} voting members tolerate no member down (quorum ${quorum(n)})`;
    return { blockers: [`no member may be restarted now: ${why}`], batch: null, down };
  }

  const leader = voters.find((s) => s.id === o.leaderId);
  if (!leader) return { blockers: ['no leader'], batch: null, down };
  const followers = remaining.filter((name) => name !== leader.name);
  if (followers.length > 0) return { blockers: [], batch: { members: followers.slice(0, bound), alreadyDown: [], bound }, down };

  // Only the leader is left: hand leadership to the most caught-up answering follower first.
  const candidates = voters.filter((s) => s.ok && s.id !== leader.id).sort((a, b) => (applied(b) > applied(a) ? 1 : applied(b) < applied(a) ? -1 : a.name.localeCompare(b.name)));
  const to = candidates[0];
  if (!to) return { blockers: [`no follower answers that could take over leadership from ${leader.name}`], batch: null, down };
  return { blockers: [], batch: { members: [leader.name], alreadyDown: [], moveLeaderTo: { name: to.name, id: to.id }, bound }, down };
}

/**
 * The batches a rolling restart expects to run from here, for the plan shown to people:
 * down members first, then followers `bound` at a time, the leader last. The workflow decides
 * each batch again from live health when it gets there.
 */
export function projectRestartPlan(o: ClusterObservation, remaining: string[], maxUnavailable: number): string[] {
  const voters = o.statuses.filter((s) => !s.isLearner);
  const down = voters.filter((s) => !s.ok).map((s) => s.name);
  const leader = voters.find((s) => s.id === o.leaderId)?.name;
  const out: string[] = [];
  const first = remaining.filter((n) => down.includes(n));
  if (first.length) out.push(`${first.join(', ')} (already down)`);
  const stillDown = down.filter((n) => !remaining.includes(n)).length;
  const bound = voters.length > 0 ? Math.max(1, Math.min(maxUnavailable, failureTolerance(voters.length, stillDown))) : 1;
  const followers = remaining.filter((n) => !down.includes(n) && n !== leader);
  for (let i = 0; i < followers.length; i += bound) out.push(followers.slice(i, i + bound).join(', '));
  if (leader && remaining.includes(leader)) out.push(`${leader} (leader, after MoveLeader)`);
  return out;
}
