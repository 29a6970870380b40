/**
 * What an operation would do, for people: the `plan` command's report (a dry run, changing
 * nothing), built from the operation's own preflight and one observation of the cluster. Pure:
 * the planOperation workflow calls it, tests call it on made-up observations. The same planners
 * the operations use decide the batches (common/restartPlan.ts, scaleInPlan.ts, replacePlan.ts);
 * each operation decides every batch again from live health at its gate, so a plan is what would
 * happen if the cluster stayed as observed.
 */
import type { ReplacePlan, RollingRestartPlan, ScaleInPlan, ScaleOutPlan } from '../activities/preflight';
import type { ReplaceMemberInput, RollingRestartInput, ScaleInInput, ScaleOutInput } from '../spec/operations';
import type { ClusterObservation } from './observation';
import { accessLine } from './access';
import { failureTolerance } from './quorum';
import { projectRestartPlan } from './restartPlan';
import { projectRemovalOrder } from './scaleInPlan';

export type PlanRequest =
  | { operation: 'scaleOut'; input: ScaleOutInput }
  | { operation: 'rollingRestart'; input: RollingRestartInput }
  | { operation: 'scaleIn'; input: ScaleInInput }
  | { operation: 'replaceMember'; input: ReplaceMemberInput };

export interface OperationPlanReport {
  operation: PlanRequest['operation'];
  cluster: string;
  /** The leader as observed (null when none). */
  leader: string | null;
  /** Voting members now and after. */
  from: number;
  to: number;
  /** One entry per batch, in order: what happens to whom. */
  batches: { members: string[]; steps: string }[];
  /** How leadership is handled. */
  leadership: string;
  /** What is left alone. */
  untouched: string;
  /** What the quorum gate waits for before each batch (and approval, per the policy). */
  gate: string[];
  warnings: string[];
  /** How preflight reached each host (user, bastion, sudo): one line each. */
  access?: string[];
}

const min = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`);
const list = (xs: string[]) => xs.join(', ') || 'none';

function gateLines(policy: { approval: string; gateTimeout: number; maxIndexSpread: number }, voters: string): string[] {
  return [
    `every voting member (${voters}) answers, one leader that all agree on, no learner pending, applied indexes within ${policy.maxIndexSpread} of each other`,
    'no unhealthy verdict from monitoring (the `quorum` signal)',
    policy.approval === 'never' ? 'no approval (policy: never)' : policy.approval === 'first-batch' ? "an operator's approve before the first batch" : "an operator's approve before every batch",
    `at most ${min(policy.gateTimeout)} for all of it, else the operation fails there (nothing changed in that batch)`,
  ];
}

export function describeScaleOut(input: ScaleOutInput, plan: ScaleOutPlan, o: ClusterObservation): OperationPlanReport {
  const names = input.spec.members.map((m) => m.name);
  const leader = o.statuses.find((s) => s.id === o.leaderId)?.name ?? null;
  return {
    operation: 'scaleOut',
    cluster: input.spec.name,
    leader,
    from: plan.from,
    to: plan.to,
    batches: plan.batches.map((b) => ({
      members: [b.member],
      steps:
        `${plan.adoptedLearners.includes(b.member) ? 'reuse the learner an earlier attempt left' : 'add as a learner (MemberAddAsLearner)'} → ETCD_INITIAL_CLUSTER rewritten on every member (no restart) → ` +
        `start ${b.member} (${b.address}) → wait until its applied index is within ${input.policy.maxCatchUpLag} of the leader's (at most ${min(input.policy.catchUpTimeout)}, else it is rolled back) → promote to voter`,
    })),
    leadership: leader ? `${leader} leads and keeps leading: a scale-out moves no leadership` : 'no leader now: the gate waits for one',
    untouched: `${list(names)}: not restarted (their env files' ETCD_INITIAL_CLUSTER rewritten in place); certificates for ${list(input.add.map((m) => m.name))} issued up front on the new hosts, signed on ${input.spec.ca.host}`,
    gate: gateLines(input.policy, list(names)),
    warnings: plan.warnings,
    access: (plan.access ?? []).map(accessLine),
  };
}

export function describeRollingRestart(input: RollingRestartInput, plan: RollingRestartPlan, o: ClusterObservation): OperationPlanReport {
  const names = input.spec.members.map((m) => m.name);
  const leader = o.statuses.find((s) => s.id === o.leaderId)?.name ?? null;
  const batches = projectRestartPlan(o, input.members, input.policy.maxUnavailable);
  const voters = o.statuses.filter((s) => !s.isLearner).length;
  const change = input.change ? [...Object.entries(input.change.set).map(([k, v]) => `${k}=${v}`), ...input.change.unset.map((k) => `unset ${k}`)] : [];
  const what = [change.length ? `env file: ${change.join(', ')}` : '', input.binary ? `binary ${input.binary} installed at ${input.spec.layout.etcdBinary}` : ''].filter(Boolean).join('; ');
  return {
    operation: 'rollingRestart',
    cluster: input.spec.name,
    leader,
    from: names.length,
    to: names.length,
    batches: batches.map((b) => {
      const members = b.replace(/ \(.*\)$/, '').split(', ');
      const versions = plan.binaries ? ` (etcd ${members.map((m) => `${o.statuses.find((s) => s.name === m)?.version ?? '?'} → ${plan.binaries![m] ?? '?'}`).join(', ')})` : '';
      return {
        members,
        steps:
          `${b.includes('(leader') ? `MoveLeader to the most caught-up follower, then ` : ''}stop → ${what || 'no change'} → start → wait until it answers as a voter within ${input.policy.maxIndexSpread} of the leader` +
          `${plan.binaries ? ' and reports the new version' : ''} (at most ${min(input.policy.readyTimeout)})${versions}; until then a failure puts the old ${input.binary ? 'binary and ' : ''}values back and starts it`,
      };
    }),
    leadership: leader && input.members.includes(leader) ? `${leader} leads: restarted last, after MoveLeader` : `${leader ?? 'no member'} leads${leader ? ' and is not restarted' : ''}`,
    untouched: `${list(names.filter((n) => !input.members.includes(n)))} not restarted; at most ${Math.max(1, Math.min(input.policy.maxUnavailable, failureTolerance(voters)))} member(s) down at once (the cluster of ${voters} tolerates ${failureTolerance(voters)})`,
    gate: gateLines(input.policy, list(names)),
    warnings: plan.warnings,
    access: (plan.access ?? []).map(accessLine),
  };
}

export function describeScaleIn(input: ScaleInInput, plan: ScaleInPlan, o: ClusterObservation): OperationPlanReport {
  const leader = o.statuses.find((s) => s.id === o.leaderId)?.name ?? null;
  const order = plan.order.length ? plan.order : projectRemovalOrder(o, input.remove);
  const staying = input.spec.members.map((m) => m.name).filter((n) => !input.remove.includes(n));
  return {
    operation: 'scaleIn',
    cluster: input.spec.name,
    leader,
    from: plan.from,
    to: plan.to,
    batches: order.map((m) => ({
      members: [m],
      steps:
        `${m === leader ? 'MoveLeader to the healthiest follower, then ' : ''}MemberRemove through the members that stay → stop its service${plan.down.includes(m) ? ' (best effort: it does not answer now)' : ''} → ` +
        `data dir ${input.policy.retire === 'wipe' ? 'wiped' : 'moved aside with a timestamp'} → ETCD_INITIAL_CLUSTER rewritten on the members that stay (no restart)`,
    })),
    leadership: leader && input.remove.includes(leader) ? `${leader} leads: removed last, after MoveLeader` : `${leader ?? 'no member'} leads and stays`,
    untouched: `${list(staying)}: not restarted`,
    gate: gateLines(input.policy, list(input.spec.members.map((m) => m.name))),
    warnings: plan.warnings,
    access: (plan.access ?? []).map(accessLine),
  };
}

export function describeReplace(input: ReplaceMemberInput, plan: ReplacePlan, o: ClusterObservation): OperationPlanReport {
  const leader = o.statuses.find((s) => s.id === o.leaderId)?.name ?? null;
  const [old, neu] = [input.replace, input.with.name];
  const add = {
    members: [neu],
    steps: `${plan.adoptedLearner ? 'reuse the learner an earlier attempt left' : 'add as a learner'} → env files rewritten (no restart) → start ${neu} → catch up (at most ${min(input.policy.catchUpTimeout)}, else rolled back) → promote`,
  };
  const remove = {
    members: [old],
    steps: `${old === leader ? 'MoveLeader to the healthiest follower, then ' : ''}MemberRemove → stop its service${plan.oldDown ? ' (best effort: it does not answer now)' : ''} → data dir ${input.policy.retire === 'wipe' ? 'wiped' : 'moved aside'} → env files rewritten (no restart)`,
  };
  const names = input.spec.members.map((m) => m.name);
  return {
    operation: 'replaceMember',
    cluster: input.spec.name,
    leader,
    from: names.length,
    to: names.length,
    batches: plan.strategy === 'add-first' ? [add, remove] : [remove, add],
    leadership: old === leader ? `${old} leads: leadership moves before it is removed` : `${leader ?? 'no member'} leads and stays`,
    untouched: `${list(names.filter((n) => n !== old))}: not restarted. Order ${plan.strategy}: ${plan.why}`,
    gate: gateLines(input.policy, list(names)),
    warnings: plan.warnings,
    access: (plan.access ?? []).map(accessLine),
  };
}
