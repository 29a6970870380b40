import type { Command } from 'commander';
import { SpecError } from '../../../spec/cluster';
import { type ScaleOutInput, approvalPolicies, parseScaleOutInput } from '../../../spec/operations';
import type { ScaleOutRequest, StewardClient } from '../../index';
import { type ClusterSource, type ClusterSourceOptions, clusterSourceOptions, describeMember, loadClusterSource } from '../clusterSource';
import { type OperationCommand, gateOptions, policyFrom, registerOperation } from '../operation';
import { CliError, causeMessage, readDoc } from '../shared';

type Options = ClusterSourceOptions & { add?: string; approval?: (typeof approvalPolicies)[number]; gateTimeout?: string; catchUpTimeout?: string; stepTimeout?: string };

const policyOf = (o: Options) => policyFrom(o, ['approval', 'gateTimeout', 'catchUpTimeout', 'stepTimeout'] as const);

/**
 * With an inventory and no --add: the members to add are the etcd hosts of the inventory the
 * live cluster does not have (by member name, from the clusterHealth workflow); the spec is the
 * others. A live member the inventory does not list is an error: a scale-out removes nothing.
 */
async function fromInventory(steward: StewardClient, source: ClusterSource, o: Options, say: (note: string) => void): Promise<ScaleOutInput> {
  let live: string[];
  try {
    live = (await steward.clusterHealth(source.spec)).members.map((m) => m.name).filter(Boolean);
  } catch (e) {
    throw new CliError(`reading the live member list of ${source.spec.name} failed: ${causeMessage(e)}`);
  }
  const listed = source.spec.members.map((m) => m.name);
  const unlisted = live.filter((n) => !listed.includes(n));
  if (unlisted.length) {
    throw new SpecError(source.inventory!.file, [`${unlisted.join(', ')} ${unlisted.length > 1 ? 'are members' : 'is a member'} of the live cluster but not in the inventory's etcd group: keep every member's host in the inventory (a scale-out removes nothing; scale-in does)`]);
  }
  const add = source.spec.members.filter((m) => !live.includes(m.name));
  if (add.length === 0) throw new CliError(`nothing to add: every etcd host of ${source.inventory!.file} is a member of ${source.spec.name} already (${live.join(', ')})`, 0);
  if (!live.includes(source.spec.ca.host)) {
    throw new SpecError(source.inventory!.file, [`the CA is on the first etcd host (${describeMember(source, source.spec.ca.host)}), which is not a member yet: list a member's host first in the etcd group, as Kubespray expects its CA there`]);
  }
  say(`from ${source.inventory!.file}: members ${listed.filter((n) => live.includes(n)).map((n) => describeMember(source, n)).join(', ')}; adding ${add.map((m) => describeMember(source, m.name)).join(', ')}`);
  return parseScaleOutInput({ spec: { ...source.spec, members: source.spec.members.filter((m) => live.includes(m.name)) }, add, policy: policyOf(o) });
}

export const scaleOut: OperationCommand<Options> = {
  name: 'scale-out',
  description: 'add members to a cluster, one at a time as learners (prints the plan first)',
  planFirst: true,
  options: (cmd: Command) =>
    gateOptions(
      clusterSourceOptions(cmd)
        .option('--add <file>', 'the members to add: a YAML or JSON list, each shaped like a spec member (with --inventory it may be left out: the etcd hosts the live cluster does not have are added)'),
    )
      .option('--catch-up-timeout <duration>', 'how long a learner may take to catch up before it is rolled back')
      .option('--step-timeout <duration>', 'deadline of each other step, retries included'),
  prepare: (o) => {
    const source = loadClusterSource(o);
    if (o.add === undefined) {
      if (!source.inventory) throw new SpecError('options', ['--add FILE: the members to add (with --inventory it may be left out)']);
      return async (steward, say) => ({ operation: 'scaleOut', request: await fromInventory(steward, source, o, say) });
    }
    // The whole request is checked here (SpecError names each bad field, e.g. add[0].name); the worker's preflight then checks it against the cluster.
    const input = parseScaleOutInput({ spec: source.spec, add: readDoc(o.add), policy: policyOf(o) });
    return () => Promise.resolve({ operation: 'scaleOut', request: input });
  },
  start: async (steward, req) => {
    const input = parseScaleOutInput(req.request as ScaleOutRequest);
    const { spec, add, policy } = input;
    const op = await steward.startScaleOut(input);
    return { op, cluster: spec.name, approval: policy.approval !== 'never', summary: `started scale-out of ${spec.name}: ${spec.members.length} → ${spec.members.length + add.length} (adding ${add.map((m) => m.name).join(', ')}), approval ${policy.approval}` };
  },
};

export function register(program: Command): void {
  registerOperation(program, scaleOut);
}
