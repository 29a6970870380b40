/**
 * How a member is replaced: remove the old one first, or add the new one first. Pure: decided by
 * preflight from live health, the etcd version the members report, and the request; tests call
 * it on made-up observations.
 *
 * - **add first** (learner → catch up → promote, then remove the old one) when the old member
 *   answers: the cluster never tolerates fewer failures during the swap;
 * - **remove first** when the old member is down, or when the new member takes the old one's
 *   name or peer URL (a rebuilt host). With the old member down, etcd 3.4, 3.5 before 3.5.30 and
 *   3.6 before 3.6.11 refuse *any* MemberAdd, learners included (strict reconfig check: the
 *   serving member must have seen every voter within 5 s), so there the dead member has to go
 *   first; on later versions removing it first still restores the failure tolerance at once.
 */
import type { ClusterObservation } from './observation';
import { projectRemoval } from './scaleInPlan';
import { lowestVersion } from './versions';

export type ReplaceOrder = 'remove-first' | 'add-first';

export interface ReplaceDecision {
  strategy: ReplaceOrder;
  /** Why, for people (it goes into the plan). */
  why: string;
  /** Why the replacement cannot go ahead at all (empty when it can). */
  problems: string[];
  warnings: string[];
  /** The lowest etcd version an answering member reports ("unknown" when none does). */
  version: string;
}

/**
 * Whether this etcd version refuses every MemberAdd while a voting member is unreachable: 3.4 and
 * older, 3.5 before 3.5.30, 3.6 before 3.6.11. An unknown version counts as refusing.
 */
export function refusesAddWhileVoterDown(version: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return true;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 3) return major < 3;
  return minor <= 4 || (minor === 5 && patch < 30) || (minor === 6 && patch < 11);
}

/**
 * The order for replacing voting member `old` by `neu`, as asked (`auto`: decided here).
 * `inPlace`: the new member takes the old one's name or peer URL.
 */
export function decideReplace(o: ClusterObservation, old: string, neu: string, inPlace: boolean, asked: 'auto' | ReplaceOrder): ReplaceDecision {
  const version = lowestVersion(o);
  const status = o.statuses.find((s) => !s.isLearner && s.name === old);
  const oldDown = !status?.ok;
  const strict = refusesAddWhileVoterDown(version === 'unknown' ? undefined : version);
  const problems: string[] = [];
  const warnings: string[] = [];
  const strictWhy = `etcd ${version} refuses any MemberAdd, learners included, while a voting member is unreachable (strict reconfig check; relaxed in 3.5.30 and 3.6.11)`;

  let strategy: ReplaceOrder;
  let why: string;
  if (asked === 'auto') {
    if (inPlace) {
      strategy = 'remove-first';
      why = `${neu} takes ${old}'s name or peer URL (a rebuilt host): ${old} must leave before ${neu} can join`;
    } else if (oldDown) {
      strategy = 'remove-first';
      why = `${old} does not answer: ${strict ? `${strictWhy}, so it must go first` : 'removing it first restores the failure tolerance at once'}`;
    } else {
      strategy = 'add-first';
      why = `${old} answers: ${neu} joins and is promoted before ${old} leaves, so the cluster never tolerates fewer failures during the swap`;
    }
  } else {
    strategy = asked;
    why = `asked for (policy.strategy ${asked})`;
    if (asked === 'add-first' && oldDown) {
      if (strict) problems.push(`add-first cannot work while ${old} does not answer: ${strictWhy}; use remove-first or auto`);
      else warnings.push(`${old} does not answer and is removed only after ${neu} is promoted: until then the cluster tolerates one failure fewer than its size suggests`);
    }
    if (asked === 'remove-first' && !oldDown && !inPlace) {
      warnings.push(`${old} answers, yet it is removed before ${neu} joins (policy.strategy remove-first): until ${neu} is promoted the cluster has one voting member fewer`);
    }
  }
  if (strategy === 'remove-first') {
    const p = projectRemoval(o, [old]);
    if (p.problem) problems.push(p.problem);
  }
  return { strategy, why, problems, warnings, version };
}
