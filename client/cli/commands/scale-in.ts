import { type Command, Option } from 'commander';
import { approvalPolicies, parseScaleInInput, retirePolicies } from '../../../spec/operations';
import type { ScaleInRequest } from '../../index';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource, memberName } from '../clusterSource';
import { type OperationCommand, registerOperation } from '../operation';

type Options = ClusterSourceOptions & { remove: string; retire?: (typeof retirePolicies)[number]; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; stepTimeout?: string };

export const scaleIn: OperationCommand<Options> = {
  name: 'scale-in',
  description: 'remove members one per batch without losing quorum: down members first, the leader last after MoveLeader; nothing that stays is restarted',
  options: (cmd: Command) =>
    clusterSourceOptions(cmd)
      .requiredOption(
        '--remove <names>',
        "comma-separated members to remove, by member name or (with --inventory) inventory hostname; with an inventory, remove them while their hosts are still listed (as with Kubespray's remove-node.yml -e node=…), then take them out of it",
      )
      .addOption(new Option('--retire <what>', "what becomes of a removed member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies))
      .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
      .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
      .option('--step-timeout <duration>', 'deadline of each step, retries included'),
  prepare: (o) => {
    const source = loadClusterSource(o);
    const input = parseScaleInInput({
      spec: source.spec,
      remove: o.remove.split(',').map((x) => memberName(source, x.trim())).filter(Boolean),
      policy: {
        ...(o.retire ? { retire: o.retire } : {}),
        ...(o.approval ? { approval: o.approval } : {}),
        ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
        ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
      },
    });
    return () => Promise.resolve({ operation: 'scaleIn', request: input });
  },
  start: async (steward, req) => {
    const input = parseScaleInInput(req.request as ScaleInRequest);
    const { spec, remove, policy } = input;
    const op = await steward.startScaleIn(input);
    return { op, cluster: spec.name, approval: policy.approval !== 'never', summary: `started scale-in of ${spec.name}: ${spec.members.length} → ${spec.members.length - remove.length} (removing ${remove.join(', ')}), approval ${policy.approval}, data dirs: ${policy.retire}` };
  },
};

export function register(program: Command): void {
  registerOperation(program, scaleIn);
}
