/**
 * planOperation: the `plan` command's dry run. Runs the operation's own preflight (read-only:
 * the live member list and health, each host's files, the versions) and one observation, and
 * describes what the operation would do from there (common/planText.ts). Changes nothing; a
 * request the operation would refuse fails here with the same message.
 */
import type { ClusterObservation } from '../common/observation';
import { type OperationPlanReport, type PlanRequest, describeReplace, describeRollingRestart, describeScaleIn, describeScaleOut } from '../common/planText';
import { endpoints } from './memberSteps';
import { activityProfiles } from './profiles';

export async function planOperation(req: PlanRequest): Promise<OperationPlanReport> {
  const act = activityProfiles(req.input.policy);
  const o: ClusterObservation = await act.observe.observeCluster({ endpoints: endpoints(req.input.spec.members) });
  switch (req.operation) {
    case 'scaleOut':
      return describeScaleOut(req.input, await act.preflight.preflightScaleOut(req.input), o);
    case 'rollingRestart':
      return describeRollingRestart(req.input, await act.preflight.preflightRollingRestart(req.input), o);
    case 'scaleIn':
      return describeScaleIn(req.input, await act.preflight.preflightScaleIn(req.input), o);
    case 'replaceMember':
      return describeReplace(req.input, await act.preflight.preflightReplaceMember(req.input), o);
  }
}
