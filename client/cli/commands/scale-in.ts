import { type Command, Option } from 'commander';
import { type ScaleInInput, approvalPolicies, parseScaleInInput, retirePolicies } from '../../../spec/operations';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource, memberName } from '../clusterSource';
import { action, started } from '../shared';

export function register(program: Command): void {
  clusterSourceOptions(
    program
      .command('scale-in')
      .description('remove members one per batch without losing quorum: down members first, the leader last after MoveLeader; nothing that stays is restarted'),
  )
    .requiredOption(
      '--remove <names>',
      'comma-separated members to remove, by member name or (with --inventory) inventory hostname; with an inventory, remove them while their hosts are still listed (as with Kubespray\'s remove-node.yml -e node=…), then take them out of it',
    )
    .addOption(new Option('--retire <what>', "what becomes of a removed member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies))
    .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
    .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"')
    .option('--step-timeout <duration>', 'deadline of each step, retries included')
    .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
    .action(
      action<ClusterSourceOptions & { remove: string; retire?: (typeof retirePolicies)[number]; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; stepTimeout?: string; wait?: boolean }, ScaleInInput>(
        async (steward, o, g, hints, input) => {
          const { spec, remove, policy } = input;
          const op = await steward.startScaleIn(input);
          console.log(`started scale-in of ${spec.name}: ${spec.members.length} → ${spec.members.length - remove.length} (removing ${remove.join(', ')}), approval ${policy.approval}, data dirs: ${policy.retire}`);
          return started(steward, g, hints, op, spec.name, policy.approval !== 'never', !!o.wait);
        },
        (o) => {
          const source = loadClusterSource(o);
          return parseScaleInInput({
            spec: source.spec,
            remove: o.remove.split(',').map((x) => memberName(source, x.trim())).filter(Boolean),
            policy: {
              ...(o.retire ? { retire: o.retire } : {}),
              ...(o.approval ? { approval: o.approval } : {}),
              ...(o.gateTimeout ? { gateTimeout: o.gateTimeout } : {}),
              ...(o.stepTimeout ? { stepTimeout: o.stepTimeout } : {}),
            },
          });
        },
      ),
    );
}
