/**
 * scaleOut: adds members one at a time as learners, never restarting an existing member.
 *
 * Per batch (one new member): quorum gate → join as learner → config-sync → start → catch up →
 * promote. Certificates are issued at the first gate that opens for them, for every batch up to
 * the next one that needs its own approval, all at once.
 * The join itself is MemberSteps.join (memberSteps.ts), shared with replaceMember: from the join
 * until the promotion the batch's undo is on the kernel's compensation stack: an abort or failure
 * removes the learner, stops its service, empties its data dir and restores the other members'
 * env files. A promoted member is kept. Every member's env file tells the truth at the end.
 */
import { continueAsNew, patched } from '@temporalio/workflow';
import { FailureType } from '../common/errors';
import { gateBlockers } from '../common/gate';
import type { ScaleOutPlan } from '../activities/preflight';
import type { ScaleOutInput } from '../spec/operations';
import { OperationKernel, type Outcome } from './kernel';
import { MemberSteps, endpoints } from './memberSteps';
import type { AbortArgs } from './messages';
import { activityProfiles } from './profiles';

export interface ScaleOutResult {
  outcome: Outcome;
  cluster: string;
  /** Voting members at the end. */
  members: string[];
  added: string[];
  rolledBack: string[];
  warnings: string[];
  abort?: AbortArgs;
  /** Learner catch-up time per added member, ms. */
  catchUpMs: Record<string, number>;
}


// Changes of the step list, each guarded with patched() so that histories recorded before it replay unchanged.
/** The certificates of every batch up to the next one that needs approval are issued at once, instead of one batch at a time. */
const CERTS_UP_FRONT = 'scaleOut-certs-up-front';
/** No config-sync after the final check: the last batch's config-sync already wrote the final membership everywhere. */
const NO_FINAL_SYNC = 'scaleOut-no-final-sync';

export async function scaleOut(input: ScaleOutInput): Promise<ScaleOutResult> {
  const { spec, add, policy, continued } = input;
  const act = activityProfiles(policy);

  // Progress, carried over when an earlier run continued as new.
  const added: string[] = [...(continued?.added ?? [])];
  const catchUpMs: Record<string, number> = { ...continued?.catchUpMs };
  /** New members whose certificate is in place. */
  const certified = new Set<string>(continued?.certified ?? []);

  const k = new OperationKernel({
    operation: 'scaleOut',
    cluster: spec.name,
    policy,
    members: [...spec.members.map((m) => [m.name, 'voter'] as const), ...add.map((m) => [m.name, 'planned'] as const)],
    observe: act.observe,
    ...(continued ? { carried: continued.kernel } : {}),
    continueAsNew: (kernel) => continueAsNew<typeof scaleOut>({ spec, add, policy, continued: { kernel, added: [...added], catchUpMs: { ...catchUpMs }, certified: [...certified] } }),
  });
  const status = k.status;
  const steps = new MemberSteps(k, act, spec, [...spec.members, ...add.filter((m) => added.includes(m.name))]);
  /** Set once preflight has matched the live membership to the spec: from then on the membership is known to be true. */
  let membershipVerified = false;
  const needsApproval = (i: number) => policy.approval === 'each-batch' || (policy.approval === 'first-batch' && i === 0);

  const result = (outcome: Outcome): ScaleOutResult => ({
    outcome,
    cluster: spec.name,
    members: steps.names,
    added: [...added],
    rolledBack: [...steps.rolledBack],
    warnings: status.warnings,
    ...(status.abort ? { abort: status.abort } : {}),
    catchUpMs,
  });

  return k.run(
    async () => {
      if (!continued) k.event(`scale-out of ${spec.name}: ${spec.members.length} → ${spec.members.length + add.length} members (adding ${add.map((m) => m.name).join(', ')}), approval ${policy.approval}`);
      // A run that carries on from an earlier one checks the membership as it is now.
      const plan: ScaleOutPlan = await act.preflight.preflightScaleOut({ spec: steps.currentSpec(), add: add.filter((m) => !added.includes(m.name)), policy });
      membershipVerified = true;
      status.plan = { from: spec.members.length, to: spec.members.length + add.length, batches: add.map((m) => m.name) };
      k.reportAccess(plan.access);
      for (const w of plan.warnings.filter((x) => !status.warnings.includes(x))) k.warn(w);
      if (plan.adoptedLearners.length) k.event(`reusing learner(s) left by an earlier attempt: ${plan.adoptedLearners.join(', ')}`);

      for (const [i, m] of add.entries()) {
        if (added.includes(m.name)) continue; // added by an earlier run
        status.batch = { index: i, of: add.length, member: m.name };
        const needApproval = needsApproval(i);
        const names = steps.names;
        await k.interruptible(() =>
          k.gate({ batch: i, endpoints: endpoints(steps.voters), needApproval, check: (o) => ({ blockers: gateBlockers(o, { voters: names }, null), value: m.name }), label: (n) => n }),
        );
        k.event(`batch ${i + 1}/${add.length}: adding ${m.name}`);
        // Until it joins, an abort or failure only puts the member back to "planned".
        k.onUndo(m.name, { what: '', manual: '', run: async () => k.setMember(m.name, 'planned') });

        if (!certified.has(m.name)) {
          // This batch's certificate, and (CERTS_UP_FRONT) those of the batches that follow up to the
          // next one that needs its own approval, all at once: nothing in the cluster changes, and
          // those batches do not wait for their own signing.
          const until = add.findIndex((_, j) => j > i && needsApproval(j));
          const these = patched(CERTS_UP_FRONT) ? add.slice(i, until < 0 ? add.length : until) : [m];
          k.phase('cert');
          for (const x of these) k.setMember(x.name, 'cert');
          const certs = await Promise.all(these.map((x) => act.step.issueCert({ spec: steps.currentSpec(), member: x })));
          for (const c of certs) {
            certified.add(c.member);
            k.event(`${c.member}: certificate ${c.issued ? 'issued' : 'already valid'} for ${c.sans.join(', ')}`);
          }
          for (const x of these.slice(1)) k.setMember(x.name, 'planned');
          k.checkAbort();
        }

        const joined = await steps.join(m, policy);
        catchUpMs[m.name] = joined.catchUpMs;
        added.push(m.name);
      }

      k.phase('final-check');
      status.batch = null;
      const names = steps.names;
      await k.gate({ final: true, batch: add.length, endpoints: endpoints(steps.voters), needApproval: false, check: (o) => ({ blockers: gateBlockers(o, { voters: names }, null), value: 'final check' }), label: (n) => n });
      // The last batch's config-sync already listed exactly these voters on every host.
      if (!patched(NO_FINAL_SYNC)) await act.step.syncConfig({ spec: steps.currentSpec(), members: steps.voters });
      k.complete(`completed: ${steps.voters.length} voting members (${names.join(', ')}); every env file lists them`);
      return result('completed');
    },
    {
      result,
      failureType: FailureType.ScaleOutFailed,
      failureMessage: (cause) =>
        `scale-out of ${spec.name} failed: ${cause}` +
        (steps.rolledBack.length ? `. Rolled back: ${steps.rolledBack.join(', ')} (learner removed, service stopped, data dir emptied)` : '') +
        (membershipVerified ? `. Voting members now: ${steps.names.join(', ')}${added.length ? ` (added and kept: ${added.join(', ')})` : ''}.` : '. Nothing was changed.'),
      abortedNote: () => `voting members ${steps.names.join(', ')}`,
    },
  );
}
