/**
 * Whether removing members is safe, and which one a scale-in removes next, decided from live
 * health. Pure: the preflight activity refuses an unsafe request with it, the workflow decides
 * each batch with it at the gate, tests call it on made-up observations.
 *
 * Rules:
 * - quorum projection (as Cluster API's `targetEtcdClusterHealthy` does): after removing
 *   members R, the voting members left are n' = voters − R and the healthy ones h' = answering
 *   voters not in R; the removal is refused unless h' ≥ quorum(n'). Health is live, never the
 *   inventory's;
 * - one member per batch; a member that does not answer first (removing it cannot lower
 *   availability, and it raises the failure tolerance of the rest), then followers, the leader
 *   last, after leadership is moved to the most caught-up answering member that stays;
 * - an even size at the end is allowed but worth a warning: 4 members tolerate no more failures
 *   than 3, with a larger quorum.
 */
import type { ClusterObservation, MemberStatus } from './observation';
import { quorum } from './quorum';

export interface RemovalProjection {
  /** Voting members after the removal, and how many of them answer now. */
  voters: number;
  healthy: number;
  /** quorum(voters); 0 when no member would be left. */
  quorum: number;
  /** null when the removal keeps a healthy quorum; else why not, for people. */
  problem: string | null;
}

export interface RemovalBatch {
  member: string;
  /** It does not answer now (a dead host): its removal goes through the others; its host cleanup is best effort. */
  wasDown: boolean;
  /** Set when it leads: move leadership to this member first. */
  moveLeaderTo?: { name: string; id: string };
}

export interface RemovalDecision {
  /** Why no member may be removed now (empty when `batch` is set). */
  blockers: string[];
  batch: RemovalBatch | null;
  /** Voting members that do not answer right now. */
  down: string[];
}

const applied = (s: MemberStatus): bigint => (s.raftAppliedIndex ? BigInt(s.raftAppliedIndex) : -1n);
const list = (names: string[]) => (names.length ? names.join(', ') : 'none');

/** What the cluster would look like after removing `remove` (names of voting members), from live health. */
export function projectRemoval(o: ClusterObservation, remove: string[]): RemovalProjection {
  const voters = o.statuses.filter((s) => !s.isLearner);
  const staying = voters.filter((s) => !remove.includes(s.name));
  const healthy = staying.filter((s) => s.ok);
  if (staying.length === 0) {
    return { voters: 0, healthy: 0, quorum: 0, problem: `removing ${list(remove)} would leave no voting member: a cluster cannot remove its last member` };
  }
  const q = quorum(staying.length);
  if (healthy.length >= q) return { voters: staying.length, healthy: healthy.length, quorum: q, problem: null };
  const down = staying.filter((s) => !s.ok).map((s) => s.name);
  return {
    voters: staying.length,
    healthy: healthy.length,
    quorum: q,
    problem:
      `removing ${list(remove)} would leave ${staying.length} voting member(s) (${staying.map((s) => s.name).join(', ')}) of which ${healthy.length} answer(s) now ` +
      `(down: ${list(down)}), below their quorum of ${q}: bring ${list(down)} back first, or remove fewer members`,
  };
}

/**
 * The order the removals are expected to run in from here, for the plan shown to people: members
 * that do not answer first, then followers, the leader last. The workflow decides each batch
 * again from live health when it gets there.
 */
export function projectRemovalOrder(o: ClusterObservation, remaining: string[]): string[] {
  const down = new Set(o.statuses.filter((s) => !s.isLearner && !s.ok).map((s) => s.name));
  const leader = o.statuses.find((s) => s.id === o.leaderId)?.name;
  const rank = (n: string) => (down.has(n) ? 0 : n === leader ? 2 : 1);
  return [...remaining].sort((a, b) => rank(a) - rank(b) || remaining.indexOf(a) - remaining.indexOf(b)).map((n) => (down.has(n) ? `${n} (down)` : n === leader ? `${n} (leader: leadership moved first)` : n));
}

/** The member to remove next from `remaining`, or why none may be removed now. */
export function planRemoval(o: ClusterObservation, remaining: string[]): RemovalDecision {
  const voters = o.statuses.filter((s) => !s.isLearner);
  const down = voters.filter((s) => !s.ok).map((s) => s.name);
  if (remaining.length === 0) return { blockers: ['nothing left to remove'], batch: null, down };
  const missing = remaining.filter((n) => !voters.some((s) => s.name === n));
  if (missing.length) return { blockers: [`${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a voting member of the cluster`], batch: null, down };

  // Every removal still asked for must keep a healthy quorum, as health is now (a member may have gone down since preflight).
  const all = projectRemoval(o, remaining);
  if (all.problem) return { blockers: [all.problem], batch: null, down };

  const first = remaining.find((n) => down.includes(n));
  if (first) return { blockers: [], batch: { member: first, wasDown: true }, down };

  const leader = voters.find((s) => s.id === o.leaderId);
  if (!leader) return { blockers: ['no leader: a member can only be removed through a cluster that has one'], batch: null, down };
  const follower = remaining.find((n) => n !== leader.name);
  if (follower) return { blockers: [], batch: { member: follower, wasDown: false }, down };

  // Only the leader is left to remove: hand leadership to the most caught-up answering member that stays.
  const candidates = voters.filter((s) => s.ok && !remaining.includes(s.name)).sort((a, b) => (applied(b) > applied(a) ? 1 : applied(b) < applied(a) ? -1 : a.name.localeCompare(b.name)));
  const to = candidates[0];
  if (!to) return { blockers: [`no member that stays answers to take over leadership from ${leader.name}`], batch: null, down };
  return { blockers: [], batch: { member: leader.name, wasDown: false, moveLeaderTo: { name: to.name, id: to.id } }, down };
}
