/**
 * replaceMember: one member out, a new one in, without losing quorum and without restarting any
 * other member (I2). Two step lists on the shared member steps (memberSteps.ts), in the order
 * preflight decides from live health and the etcd version (common/replacePlan.ts):
 *
 * - add first (the old member answers): gate → certificate → join (learner → config-sync →
 *   start → catch up → promote) → gate → leave (MoveLeader if the old one leads → MemberRemove →
 *   its host retired → config-sync) → final gate. Tolerance never drops during the swap;
 * - remove first (the old member is down, or the new one takes its name or peer URL: a rebuilt
 *   host): gate → certificate (issued while the CA host is certainly still a member) → leave →
 *   gate → join → final gate. A failure after the removal and before the promotion rolls the
 *   learner back and leaves the cluster at n − 1 voters with env files that say so; the failure
 *   says exactly that.
 *
 * The old member's host is retired only when it is another host than the new member's (a rebuilt
 * host under the same address belongs to the new member).
 */
import { continueAsNew } from '@temporalio/workflow';
import { FailureType } from '../common/errors';
import { gateBlockers } from '../common/gate';
import { planRemoval } from '../common/scaleInPlan';
import type { ReplaceMemberInput, RetiredHost } from '../spec/operations';
import { OperationKernel, type Outcome } from './kernel';
import { MemberSteps, endpoints } from './memberSteps';
import type { AbortArgs } from './messages';
import { activityProfiles } from './profiles';

export interface ReplaceMemberResult {
  outcome: Outcome;
  cluster: string;
  /** Voting members at the end. */
  members: string[];
  replaced: string;
  by: string;
  strategy: 'remove-first' | 'add-first' | null;
  /** Why that order (from preflight). */
  why: string | null;
  removed: boolean;
  added: boolean;
  /** The new member's learner was rolled back (abort or failure before its promotion). */
  rolledBack: boolean;
  hosts: RetiredHost[];
  leaderMoves: { from: string; to: string }[];
  catchUpMs: number | null;
  warnings: string[];
  abort?: AbortArgs;
}


export async function replaceMember(input: ReplaceMemberInput): Promise<ReplaceMemberResult> {
  const { spec, replace, with: neu, policy, continued } = input;
  const act = activityProfiles(policy);
  const old = spec.members.find((m) => m.name === replace)!;
  const sameHost = old.ssh.host === neu.ssh.host && old.ssh.port === neu.ssh.port;

  // Progress, carried over when an earlier run continued as new.
  let strategy: 'remove-first' | 'add-first' | null = continued?.strategy ?? null;
  let why: string | null = null;
  let removed = continued?.removed ?? false;
  let added = continued?.added ?? false;
  let certified = continued?.certified ?? false;
  let catchUpMs: number | null = continued?.catchUpMs ?? null;
  const leaderMoves: { from: string; to: string }[] = [...(continued?.leaderMoves ?? [])];

  const k: OperationKernel = new OperationKernel({
    operation: 'replaceMember',
    cluster: spec.name,
    policy,
    members: [...spec.members.map((m) => [m.name, m.name === replace ? 'to-remove' : 'voter'] as const), ...(neu.name === replace ? [] : [[neu.name, 'planned'] as const])],
    observe: act.observe,
    ...(continued ? { carried: continued.kernel } : {}),
    continueAsNew: (kernel) =>
      continueAsNew<typeof replaceMember>({
        spec,
        replace,
        with: neu,
        policy,
        continued: { kernel, strategy: strategy!, removed, added, certified, hosts: [...steps.retired], leaderMoves: [...leaderMoves], catchUpMs },
      }),
  });
  const status = k.status;
  const steps: MemberSteps = new MemberSteps(k, act, spec, [...spec.members.filter((m) => !(removed && m.name === replace)), ...(added ? [neu] : [])]);
  steps.retired.push(...(continued?.hosts ?? []));
  let membershipVerified = false;

  const result = (outcome: Outcome): ReplaceMemberResult => ({
    outcome,
    cluster: spec.name,
    members: steps.names,
    replaced: replace,
    by: neu.name,
    strategy,
    why,
    removed,
    added,
    rolledBack: steps.rolledBack.includes(neu.name),
    hosts: [...steps.retired],
    leaderMoves: [...leaderMoves],
    catchUpMs,
    warnings: status.warnings,
    ...(status.abort ? { abort: status.abort } : {}),
  });

  /** The gate before a half of the swap; `mayBeDown`: the old member, when it is the one leaving next. */
  async function gateBefore(what: string, leaving: boolean) {
    const i = (removed ? 1 : 0) + (added ? 1 : 0); // the same batch number in a run that continued as new
    const needApproval = policy.approval === 'each-batch' || (policy.approval === 'first-batch' && i === 0);
    status.batch = { index: i, of: 2, member: leaving ? replace : neu.name };
    const names = steps.names;
    return k.interruptible(() =>
      k.gate({
        batch: i,
        endpoints: endpoints(steps.voters),
        needApproval,
        check: (o) => {
          if (!leaving) return { blockers: gateBlockers(o, { voters: names }, null), value: null };
          const d = planRemoval(o, [replace]);
          return { blockers: [...gateBlockers(o, { voters: names, mayBeDown: d.down.filter((n) => n === replace) }, null), ...d.blockers], value: d.batch };
        },
        label: () => what,
      }),
    );
  }

  async function certify(): Promise<void> {
    if (certified) return;
    k.phase('cert');
    k.setMember(neu.name, 'cert');
    const c = await act.step.issueCert({ spec, member: neu });
    certified = true;
    k.event(`${neu.name}: certificate ${c.issued ? 'issued' : 'already valid'} for ${c.sans.join(', ')}`);
    k.setMember(neu.name, 'planned');
    k.checkAbort();
  }

  async function removeOld(): Promise<void> {
    const { value: d } = await gateBefore(`remove ${replace}`, true);
    if (!d) throw new Error('the gate opened without a decision'); // cannot happen: no decision is a blocker
    await certify(); // remove-first: the certificate before anything changes (the CA host may be the one leaving)
    k.event(`removing ${replace}${d.wasDown ? ' (it does not answer: removed through the others)' : d.moveLeaderTo ? ' (it leads: leadership moves first)' : ''}`);
    const moveTo = d.moveLeaderTo ? steps.voters.find((m) => m.name === d.moveLeaderTo!.name) : undefined;
    const gone = await steps.leave(old, { ...(moveTo ? { moveLeaderTo: moveTo } : {}), retire: policy.retire, retireHost: !sameHost });
    if (gone.leaderMove) leaderMoves.push(gone.leaderMove);
    removed = true;
  }

  async function addNew(): Promise<void> {
    await gateBefore(`add ${neu.name}`, false);
    await certify();
    k.event(`adding ${neu.name}`);
    const j = await steps.join(neu, policy);
    catchUpMs = j.catchUpMs;
    added = true;
  }

  return k.run(
    async () => {
      if (!continued) k.event(`replacement in ${spec.name}: ${replace} → ${neu.name}${sameHost ? ' (same host)' : ''}, strategy ${policy.strategy}, approval ${policy.approval}`);
      const plan = await act.preflight.preflightReplaceMember({ spec, replace, with: neu, policy: continued ? { ...policy, strategy: continued.strategy } : policy });
      membershipVerified = true;
      strategy = continued?.strategy ?? plan.strategy;
      why = plan.why;
      k.reportAccess(plan.access);
      for (const w of plan.warnings.filter((x) => !status.warnings.includes(x))) k.warn(w);
      if (!continued) k.event(`plan: ${strategy} (${plan.why}); etcd ${plan.version}`);
      status.plan = { from: spec.members.length, to: spec.members.length, batches: strategy === 'remove-first' ? [`remove ${replace}`, `add ${neu.name}`] : [`add ${neu.name}`, `remove ${replace}`] };
      if (plan.adoptedLearner) k.event(`reusing the learner left for ${neu.name} by an earlier attempt`);

      if (strategy === 'remove-first') {
        if (!removed) await removeOld();
        if (!added) await addNew();
      } else {
        if (!added) await addNew();
        if (!removed) await removeOld();
      }

      k.phase('final-check');
      status.batch = null;
      const names = steps.names;
      await k.gate({ final: true, batch: 2, endpoints: endpoints(steps.voters), needApproval: false, check: (o) => ({ blockers: gateBlockers(o, { voters: names }, null), value: null }), label: () => 'final check' });
      k.complete(`completed: ${replace} replaced by ${neu.name} (${strategy}); ${names.length} voting members (${names.join(', ')}); every env file lists them`);
      return result('completed');
    },
    {
      result,
      failureType: FailureType.ReplaceMemberFailed,
      failureMessage: (cause) =>
        `replacement of ${replace} by ${neu.name} in ${spec.name} failed: ${cause}.` +
        (!membershipVerified
          ? ' Nothing was changed.'
          : (removed ? ` ${replace} was removed` : ` ${replace} was not removed`) +
            (added ? ` and ${neu.name} was added` : steps.rolledBack.includes(neu.name) ? `; ${neu.name}'s learner was rolled back` : `; ${neu.name} was not added`) +
            `. Voting members now: ${steps.names.join(', ')} (${steps.voters.length}${removed && !added ? `, one fewer than before: add a member with scale-out` : ''}); their env files list them.`),
      abortedNote: () => `${replace} ${removed ? 'removed' : 'still a member'}, ${neu.name} ${added ? 'added' : 'not added'}; voting members ${steps.names.join(', ')}`,
    },
  );
}
