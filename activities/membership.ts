/**
 * Membership changes through the etcd API. Each is idempotent: a member is found by its peer
 * URLs before anything is added or removed, so a retry after a lost reply changes nothing.
 *
 * Facts they respect (etcd 3.4, measured here):
 * - the etcd3 client retries a failed call on another endpoint, so a MemberAdd that succeeded
 *   can come back as "Peer URLs already exists": look the member up by peer URL;
 * - MemberAdd soon after any member (re)starts can answer "unhealthy cluster" (strict reconfig
 *   check: every peer connected for 5 s): retryable;
 * - "too many learner members in cluster" and "can only promote a learner member which is in
 *   sync with leader" are states to wait out; "member not learner" on promote means done.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import type { Member } from '../spec/cluster';
import type { Etcd3 } from 'etcd3';
import { type EtcdCredentials, type ListedMember, etcdClient, listMembers } from './etcd';

export interface LearnerRef {
  /** Client URLs of current members, to reach the cluster. */
  endpoints: string[];
  member: Pick<Member, 'name' | 'peerURLs' | 'clientURLs'>;
}

export interface JoinResult {
  id: string;
  /** true when a member with these peer URLs was already there (a retry, or a leftover adopted). */
  existed: boolean;
  isLearner: boolean;
}

export interface CatchUpResult {
  id: string;
  tookMs: number;
  leaderApplied: string;
  learnerApplied: string;
  lag: number;
  samples: number;
}

/** A state to wait out, not an error: retried by the activity's retry policy and logged at DEBUG only. */
function waitState(message: string, type: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: false, category: 'BENIGN' });
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

function findByPeer(members: ListedMember[], peerURLs: string[]): ListedMember | undefined {
  return members.find((x) => x.peerURLs.some((u) => peerURLs.includes(u)));
}

/** How long addLearner and removeMember wait out etcd's "not now" answers themselves, and how often they ask again. */
const REFUSAL_WAIT_MS = 20_000;
const REFUSAL_RETRY_MS = 250;

/** One MemberAdd attempt (see addLearner): the existing member if these peer URLs are taken, else a new learner. */
async function addLearnerOnce(c: Etcd3, member: LearnerRef['member']): Promise<JoinResult> {
  const found = findByPeer(await listMembers(c), member.peerURLs);
  if (found) {
    if (found.name !== '' && found.name !== member.name) {
      throw ApplicationFailure.nonRetryable(`peer URL ${member.peerURLs.join(',')} already belongs to member "${found.name}" (${found.id}), not ${member.name}`, FailureType.PeerUrlTaken);
    }
    return { id: found.id, existed: true, isLearner: found.isLearner };
  }
  try {
    const r = await c.cluster.memberAdd({ peerURLs: member.peerURLs, isLearner: true });
    return { id: String(r.member!.ID), existed: false, isLearner: true };
  } catch (e) {
    const msg = errText(e);
    if (/already exists/i.test(msg)) {
      const again = findByPeer(await listMembers(c), member.peerURLs);
      if (again) return { id: again.id, existed: true, isLearner: again.isLearner };
    }
    if (/too many learner/i.test(msg)) throw waitState(`another learner is pending; waiting for it: ${msg}`, FailureType.TooManyLearners);
    if (/unhealthy cluster/i.test(msg)) throw waitState(`etcd refuses membership changes until every peer has been connected for 5 s: ${msg}`, FailureType.UnhealthyCluster);
    throw e;
  }
}

/** etcd's answers that mean "not now" (see waitOutRefusals). */
const WAIT_OUT = new Set<string>([FailureType.UnhealthyCluster, FailureType.TooManyLearners, FailureType.MemberLeads]);

/**
 * Runs `attempt` (which makes a fresh client each time: a refused call must not leave the next one
 * behind a tripped circuit breaker) until etcd stops answering "not now" (unhealthy cluster: a
 * peer connected less than 5 s ago; too many learners; a leader that must move first), asking
 * again every 250 ms for up to 20 s and heartbeating why, so the change goes through within a
 * quarter second of etcd allowing it rather than after the retry policy's next backoff. Past
 * that the refusal goes to the retry policy like any other.
 */
async function waitOutRefusals<T>(attempt: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const deadline = Date.now() + REFUSAL_WAIT_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      const waitable = e instanceof ApplicationFailure && WAIT_OUT.has(e.type ?? '');
      if (!waitable || Date.now() + REFUSAL_RETRY_MS > deadline) throw e;
      ctx.heartbeat({ waiting: e.message });
      await ctx.sleep(REFUSAL_RETRY_MS);
    }
  }
}


export function membershipActivities(creds: EtcdCredentials) {
  async function withClient<T>(endpoints: string[], f: (c: ReturnType<typeof etcdClient>) => Promise<T>): Promise<T> {
    const c = etcdClient(endpoints, creds, { timeoutMs: 10_000 });
    try {
      return await f(c);
    } finally {
      c.close();
    }
  }

  return {
    /**
     * MemberAdd{isLearner: true}; a member already holding these peer URLs is reused. Never adds
     * a voter. etcd's refusals that only time cures ("unhealthy cluster": a peer connected less
     * than 5 s ago; "too many learner members") are waited out here, trying again every 250 ms
     * for up to 20 s (heartbeating why), so the join goes through within a quarter second of
     * etcd allowing it rather than after the retry policy's next backoff; past that the
     * refusal goes to the retry policy like any other.
     */
    async addLearner({ endpoints, member }: LearnerRef): Promise<JoinResult> {
      return waitOutRefusals(() => withClient(endpoints, (c) => addLearnerOnce(c, member)));
    },

    /** MemberPromote; "member not learner" means it already was promoted. */
    async promoteLearner({ endpoints, member }: LearnerRef): Promise<{ id: string; alreadyVoter: boolean }> {
      return withClient(endpoints, async (c) => {
        const found = findByPeer(await listMembers(c), member.peerURLs);
        if (!found) throw ApplicationFailure.nonRetryable(`${member.name} is not a member any more (peer URLs ${member.peerURLs.join(',')}): it cannot be promoted`, FailureType.LearnerGone);
        if (!found.isLearner) return { id: found.id, alreadyVoter: true };
        try {
          await c.cluster.memberPromote({ ID: found.id });
          return { id: found.id, alreadyVoter: false };
        } catch (e) {
          const msg = errText(e);
          if (/not learner/i.test(msg)) return { id: found.id, alreadyVoter: true };
          if (/in sync with leader/i.test(msg)) throw waitState(`${member.name} is not in sync with the leader yet: ${msg}`, FailureType.LearnerNotInSync);
          throw e;
        }
      });
    },

    /** Compensation: removes the member with these peer URLs if it is a learner; never removes a voter. */
    async removeLearner({ endpoints, member }: LearnerRef): Promise<{ removed: boolean; id?: string }> {
      return withClient(endpoints, async (c) => {
        const found = findByPeer(await listMembers(c), member.peerURLs);
        if (!found) return { removed: false };
        if (!found.isLearner) throw ApplicationFailure.nonRetryable(`${member.name} (${found.id}) is a voting member; compensation removes learners only`, FailureType.NotALearner);
        try {
          await c.cluster.memberRemove({ ID: found.id });
        } catch (e) {
          if (!/member not found/i.test(errText(e))) throw e;
        }
        return { removed: true, id: found.id };
      });
    },

    /**
     * MemberRemove of a voting member (scale-in), sent through the members that stay. Found by
     * its peer URLs first: a member already gone is done (a retry after a removal whose reply was
     * lost). A member that leads right now is not removed: leadership moves first (the workflow
     * does it at the gate), so this waits for that like etcd's own "not now" (unhealthy cluster,
     * not enough started members), within the activity for up to 20 s, then by retries.
     */
    async removeMember({ endpoints, member }: LearnerRef): Promise<{ removed: boolean; id?: string }> {
      return waitOutRefusals(() =>
        withClient(endpoints, async (c) => {
          const found = findByPeer(await listMembers(c), member.peerURLs);
          if (!found) return { removed: false };
          if (found.name !== '' && found.name !== member.name) {
            throw ApplicationFailure.nonRetryable(`the member with peer URL ${member.peerURLs.join(',')} is named "${found.name}" (${found.id}), not ${member.name}: not removing it`, FailureType.PeerUrlTaken);
          }
          const leader = String((await c.maintenance.status()).leader);
          if (leader === found.id) throw waitState(`${member.name} (${found.id}) leads: leadership must move to a member that stays before it is removed`, FailureType.MemberLeads);
          try {
            await c.cluster.memberRemove({ ID: found.id });
          } catch (e) {
            const msg = errText(e);
            if (/member not found/i.test(msg)) return { removed: true, id: found.id }; // removed by the call whose reply was lost
            if (/unhealthy cluster|not enough started members/i.test(msg)) throw waitState(`etcd refuses to remove ${member.name} now (strict reconfig check: every member that stays must have been connected for 5 s): ${msg}`, FailureType.UnhealthyCluster);
            throw e;
          }
          return { removed: true, id: found.id };
        }),
      );
    },

    /**
     * Waits until the learner's applied index is within `maxLag` of the leader's, on two samples
     * in a row, heartbeating the lag. Cancellable (abort): it stops at the next heartbeat.
     */
    async awaitCatchUp({ endpoints, member, maxLag, pollMs }: LearnerRef & { maxLag: number; pollMs?: number }): Promise<CatchUpResult> {
      const sampler = new MemberSampler(creds, endpoints);
      const r = await pollUntilTwice(
        () => sampler.sample(member, FailureType.LearnerGone),
        (s) => ({ ok: s.lag <= maxLag, details: { lag: s.lag, leaderApplied: s.leaderApplied, learnerApplied: s.applied } }),
        pollMs ?? SAMPLE_EVERY_MS,
      ).finally(() => sampler.close());
      return { id: r.sample.id, tookMs: r.tookMs, leaderApplied: r.sample.leaderApplied, learnerApplied: r.sample.applied, lag: r.sample.lag, samples: r.samples };
    },
  };
}

/** One look at a member next to its leader (see MemberSampler.sample). */
export interface MemberSample {
  id: string;
  isLearner: boolean;
  /** The leader as the member sees it. */
  leaderId: string;
  leaderName: string;
  /** The leader says so itself (false for a moment around an election). */
  leaderAgrees: boolean;
  /** Raft applied index of the member and of its leader (decimal strings). */
  applied: string;
  leaderApplied: string;
  /** How far the member's applied index is behind the leader's (0 when ahead). */
  lag: number;
  /** The etcd version the member reports (its Status). */
  version: string;
}

/**
 * Looks at members next to their leader, again and again, over connections it keeps open (one
 * per client URL, no retry on another endpoint, so an unreachable member shows as such): a
 * sample every 100 ms costs three small RPCs, not three TLS handshakes. `close()` when done.
 */
export class MemberSampler {
  private readonly clients = new Map<string, Etcd3>();
  /** The endpoint that last answered the member list (asked first next time). */
  private preferred = 0;

  constructor(
    private readonly creds: EtcdCredentials,
    private readonly endpoints: string[],
  ) {}

  /** The kept connection to `url` whose calls time out after `timeoutMs` (the deadline is set per client). */
  private client(url: string, timeoutMs: number): Etcd3 {
    const key = `${timeoutMs} ${url}`;
    let c = this.clients.get(key);
    if (!c) {
      c = etcdClient([url], this.creds, { retry: false, timeoutMs });
      this.clients.set(key, c);
    }
    return c;
  }

  /** The member list from the first endpoint that answers, starting with the one that answered last. */
  private async list(): Promise<ListedMember[]> {
    let last: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const at = (this.preferred + i) % this.endpoints.length;
      try {
        const members = await listMembers(this.client(this.endpoints[at]!, 5_000));
        this.preferred = at;
        return members;
      } catch (e) {
        last = e;
      }
    }
    throw new Error(`the member list is unavailable from ${this.endpoints.join(', ')}: ${errText(last)}`);
  }

  /**
   * The member's applied index against the leader's, each asked of that member alone. Throws a
   * plain (retryable, waited-out) error while the member does not answer or sees no leader, and
   * a non-retryable `goneType` failure when the member is not in the member list at all.
   */
  async sample(member: LearnerRef['member'], goneType: string): Promise<MemberSample> {
    const members = await this.list();
    const me = findByPeer(members, member.peerURLs);
    if (!me) throw ApplicationFailure.nonRetryable(`${member.name} is no longer in the member list`, goneType);
    const status = (url: string) => this.client(url, 3_000).maintenance.status();
    const mine = await status(member.clientURLs[0]!).catch((e: unknown) => {
      throw new Error(`${member.name} does not answer yet: ${errText(e)}`);
    });
    const leader = members.find((x) => x.id === String(mine.leader));
    if (!leader || leader.clientURLs.length === 0) throw new Error(`${member.name} sees no leader yet`);
    const ls = leader.id === me.id ? mine : await status(leader.clientURLs[0]!);
    const applied = (s: typeof ls) => BigInt((s as { raftAppliedIndex?: string }).raftAppliedIndex ?? s.raftIndex);
    const lag = applied(ls) - applied(mine);
    return {
      id: me.id,
      isLearner: me.isLearner,
      leaderId: leader.id,
      leaderName: leader.name,
      leaderAgrees: String(ls.leader) === leader.id,
      applied: applied(mine).toString(),
      leaderApplied: applied(ls).toString(),
      lag: Number(lag < 0n ? 0n : lag),
      version: mine.version,
    };
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** How often a wait for etcd looks again (catch-up, a restarted member's readiness). */
export const SAMPLE_EVERY_MS = 100;

/**
 * Samples every `pollMs` until `check` says ok on two samples in a row, heartbeating each
 * sample's details (or what it waits for). Cancellable: the sleep between samples throws once
 * the activity is cancelled (the cancellation arrives with a heartbeat). Plain errors from a
 * sample are states to wait out; a non-retryable ApplicationFailure ends the wait.
 */
export async function pollUntilTwice<S>(
  sample: () => Promise<S>,
  check: (s: S) => { ok: boolean; details: Record<string, unknown> },
  pollMs: number,
): Promise<{ sample: S; samples: number; tookMs: number }> {
  const ctx = Context.current();
  const t0 = Date.now();
  let good = 0;
  let samples = 0;
  for (;;) {
    samples++;
    let s: S | undefined;
    try {
      s = await sample();
    } catch (e) {
      if (e instanceof ApplicationFailure && e.nonRetryable) throw e;
      good = 0;
      ctx.heartbeat({ waiting: errText(e) });
    }
    if (s !== undefined) {
      const { ok, details } = check(s);
      ctx.heartbeat(details);
      good = ok ? good + 1 : 0;
      if (good >= 2) return { sample: s, samples, tookMs: Date.now() - t0 };
    }
    await ctx.sleep(pollMs);
  }
}
