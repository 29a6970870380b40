import { type Command, Option } from 'commander';
import { SpecError } from '../../../spec/cluster';
import { approvalPolicies, parseScaleInInput, retirePolicies } from '../../../spec/operations';
import type { ScaleInRequest } from '../../index';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource, memberName } from '../clusterSource';
import { type OperationCommand, gateOptions, policyFrom, registerOperation } from '../operation';

type Options = ClusterSourceOptions & { remove?: string; fromInventory?: string; retire?: (typeof retirePolicies)[number]; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; stepTimeout?: string };

export const scaleIn: OperationCommand<Options> = {
  name: 'scale-in',
  description: 'remove members one per batch without losing quorum: down members first, the leader last after MoveLeader; nothing that stays is restarted',
  options: (cmd: Command) =>
    gateOptions(
      clusterSourceOptions(cmd)
        .option(
          '--remove <names>',
          "comma-separated members to remove, by member name or (with --inventory) inventory hostname; with an inventory, remove them while their hosts are still listed (as with Kubespray's remove-node.yml -e node=…), then take them out of it",
        )
        .option('--from-inventory <file>', 'instead of --remove, with --inventory (the edited one): the inventory the cluster was deployed with; the etcd hosts it lists that --inventory no longer does are removed')
        .addOption(new Option('--retire <what>', "what becomes of a removed member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies)),
    )
      .option('--step-timeout <duration>', 'deadline of each step, retries included'),
  prepare: (o) => {
    if ((o.remove === undefined) === (o.fromInventory === undefined)) throw new SpecError('options', ['the members to remove: give --remove NAMES, or --from-inventory OLD (with --inventory NEW, the edited inventory)']);
    let source = loadClusterSource(o);
    let remove: string[];
    if (o.fromInventory !== undefined) {
      if (!source.inventory) throw new SpecError('options', ['--from-inventory goes with --inventory (the edited inventory)']);
      const now = source;
      source = loadClusterSource({ ...o, inventory: o.fromInventory });
      const kept = now.spec.members.map((m) => m.name);
      remove = source.spec.members.map((m) => m.name).filter((n) => !kept.includes(n));
      const added = kept.filter((n) => !source.spec.members.some((m) => m.name === n));
      if (added.length) throw new SpecError(now.inventory!.file, [`${added.join(', ')} ${added.length > 1 ? 'are' : 'is'} in it but not in ${o.fromInventory}: a scale-in adds nothing (scale-out --inventory does); compare the inventories' etcd groups`]);
      if (remove.length === 0) throw new SpecError(now.inventory!.file, [`its etcd group lists every host ${o.fromInventory}'s does: nothing to remove`]);
    } else remove = o.remove!.split(',').map((x) => memberName(source, x.trim())).filter(Boolean);
    const input = parseScaleInInput({
      spec: source.spec,
      remove,
      policy: policyFrom(o, ['retire', 'approval', 'gateTimeout', 'stepTimeout'] as const),
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
