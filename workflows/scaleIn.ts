/**
 * scaleIn: removes members one per batch without losing quorum, never restarting a member that
 * stays (I2).
 *
 * Before each batch the quorum gate observes the cluster and decides the member from live health
 * (common/scaleInPlan.ts): one that does not answer first, then followers, the leader last; every
 * removal still asked for must leave a healthy quorum of the members that stay. Per batch:
 * gate → (the member leads: MoveLeader to the most caught-up member that stays) → MemberRemove
 * sent through the members that stay → its host retired, best effort (service stopped, env file
 * and data dir moved aside, or the data dir wiped, per policy.retire; a dead host is reported,
 * not waited for) → config-sync: the staying members' ETCD_INITIAL_CLUSTER lists exactly them
 * (nothing restarted) → next gate.
 *
 * A removal cannot be undone (a removed member comes back only as a new one, by scale-out), so
 * an abort is honoured before a MemberRemove, never between it and its config-sync: from the
 * removal to the config-sync the batch's undo on the kernel's stack is the config-sync itself,
 * so a failure there still leaves env files that tell the truth, or says exactly which do not.
 */
import { continueAsNew } from '@temporalio/workflow';
import { FailureType } from '../common/errors';
import { gateBlockers } from '../common/gate';
import { type RemovalBatch, planRemoval, projectRemovalOrder } from '../common/scaleInPlan';
import type { Member } from '../spec/cluster';
import type { RetiredHost, ScaleInInput } from '../spec/operations';
import { OperationKernel, type Outcome } from './kernel';
import { MemberSteps, endpoints } from './memberSteps';
import type { AbortArgs } from './messages';
import { activityProfiles } from './profiles';

export interface ScaleInResult {
  outcome: Outcome;
  cluster: string;
  /** Voting members at the end. */
  members: string[];
  /** Removed from the cluster, in order. */
  removed: string[];
  /** Asked for but not removed (abort or failure). */
  notRemoved: string[];
  /** What became of each removed member's host. */
  hosts: RetiredHost[];
  leaderMoves: { from: string; to: string }[];
  warnings: string[];
  abort?: AbortArgs;
}


export async function scaleIn(input: ScaleInInput): Promise<ScaleInResult> {
  const { spec, remove, policy, continued } = input;
  const act = activityProfiles(policy);

  // Progress, carried over when an earlier run continued as new.
  const removed: string[] = [...(continued?.removed ?? [])];
  const leaderMoves: { from: string; to: string }[] = [...(continued?.leaderMoves ?? [])];
  const remaining = () => remove.filter((n) => !removed.includes(n));
  const byName = (n: string): Member => spec.members.find((m) => m.name === n)!;

  const k: OperationKernel = new OperationKernel({
    operation: 'scaleIn',
    cluster: spec.name,
    policy,
    members: spec.members.map((m) => [m.name, remove.includes(m.name) ? 'to-remove' : 'voter'] as const),
    observe: act.observe,
    ...(continued ? { carried: continued.kernel } : {}),
    continueAsNew: (kernel, nextBatch) =>
      continueAsNew<typeof scaleIn>({ spec, remove, policy, continued: { kernel, removed: [...removed], hosts: [...steps.retired], leaderMoves: [...leaderMoves], nextBatch } }),
  });
  const status = k.status;
  const steps: MemberSteps = new MemberSteps(k, act, spec, spec.members.filter((m) => !removed.includes(m.name)));
  steps.retired.push(...(continued?.hosts ?? []));
  /** Set once preflight has matched the live membership to the spec. */
  let membershipVerified = false;

  const result = (outcome: Outcome): ScaleInResult => ({
    outcome,
    cluster: spec.name,
    members: steps.names,
    removed: [...removed],
    notRemoved: remaining(),
    hosts: [...steps.retired],
    leaderMoves: [...leaderMoves],
    warnings: status.warnings,
    ...(status.abort ? { abort: status.abort } : {}),
  });

  return k.run(
    async () => {
      if (!continued) k.event(`scale-in of ${spec.name}: ${spec.members.length} → ${spec.members.length - remove.length} members (removing ${remove.join(', ')}), approval ${policy.approval}, data dirs: ${policy.retire}`);
      const plan = await act.preflight.preflightScaleIn({ spec: steps.currentSpec(), remove: remaining(), policy });
      membershipVerified = true;
      status.plan = { from: spec.members.length, to: spec.members.length - remove.length, batches: plan.order };
      k.reportAccess(plan.access);
      for (const w of plan.warnings.filter((x) => !status.warnings.includes(x))) k.warn(w);

      for (let i = continued?.nextBatch ?? 0; remaining().length > 0; i++) {
        const needApproval = policy.approval === 'each-batch' || (policy.approval === 'first-batch' && i === 0);
        const left = remaining();
        status.batch = { index: i, of: i + left.length, member: left[0]!, members: [left[0]!] }; // until the gate decides
        const names = steps.names;
        const { value: batch } = await k.interruptible(() =>
          k.gate<RemovalBatch | null>({
            batch: i,
            endpoints: endpoints(steps.voters),
            needApproval,
            check: (o) => {
              const now = remaining();
              const d = planRemoval(o, now);
              status.plan = { from: spec.members.length, to: spec.members.length - remove.length, batches: projectRemovalOrder(o, now) };
              const next = d.batch?.member ?? now[0]!;
              status.batch = { index: i, of: i + now.length, member: next, members: [next] };
              // Members to remove that are down may stay down; any other voter must answer.
              return { blockers: [...gateBlockers(o, { voters: names, mayBeDown: d.down.filter((n) => now.includes(n)) }, null), ...d.blockers], value: d.batch };
            },
            label: (b) => b?.member ?? remaining()[0]!,
          }),
        );
        if (!batch) throw new Error('the gate opened without a batch'); // cannot happen: no batch is a blocker
        k.event(`batch ${i + 1}: removing ${batch.member}${batch.wasDown ? ' (it does not answer: removed through the others)' : batch.moveLeaderTo ? ' (it leads: leadership moves first)' : ''}`);
        const gone = await steps.leave(byName(batch.member), { ...(batch.moveLeaderTo ? { moveLeaderTo: byName(batch.moveLeaderTo.name) } : {}), retire: policy.retire, retireHost: true });
        if (gone.leaderMove) leaderMoves.push(gone.leaderMove);
        removed.push(batch.member);
      }

      k.phase('final-check');
      status.batch = null;
      const names = steps.names;
      await k.gate({ final: true, batch: removed.length, endpoints: endpoints(steps.voters), needApproval: false, check: (o) => ({ blockers: gateBlockers(o, { voters: names }, null), value: 'final check' }), label: (n) => n });
      const unclean = steps.retired.filter((h) => !h.cleaned).map((h) => h.member);
      k.complete(
        `completed: ${names.length} voting members (${names.join(', ')}); removed ${removed.join(', ')}; every staying member's env file lists exactly them` +
          (unclean.length ? `; host(s) not cleaned: ${unclean.join(', ')}` : ''),
      );
      return result('completed');
    },
    {
      result,
      failureType: FailureType.ScaleInFailed,
      failureMessage: (cause) =>
        `scale-in of ${spec.name} failed: ${cause}.` +
        (membershipVerified
          ? (removed.length ? ` Removed: ${removed.join(', ')}.` : ' No member was removed.') + ` Voting members now: ${steps.names.join(', ')}.` + (remaining().length ? ` Not removed: ${remaining().join(', ')}.` : '')
          : ' Nothing was changed.'),
      abortedNote: () => `removed ${removed.join(', ') || 'none'}; not removed ${remaining().join(', ') || 'none'}; voting members ${steps.names.join(', ')}`,
    },
  );
}
