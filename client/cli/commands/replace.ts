import { type Command, Option } from 'commander';
import { SpecError } from '../../../spec/cluster';
import { approvalPolicies, parseReplaceMemberInput, replaceStrategies, retirePolicies } from '../../../spec/operations';
import type { ReplaceMemberRequest } from '../../index';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource, memberName } from '../clusterSource';
import { type OperationCommand, gateOptions, policyFrom, registerOperation } from '../operation';
import { readDoc } from '../shared';

type Options = ClusterSourceOptions & {
  member: string;
  with?: string;
  withHost?: string;
  strategy?: (typeof replaceStrategies)[number];
  retire?: (typeof retirePolicies)[number];
  approval?: (typeof approvalPolicies)[number];
  gateTimeout?: string;
  catchUpTimeout?: string;
  stepTimeout?: string;
};

export const replace: OperationCommand<Options> = {
  name: 'replace',
  description: 'replace one member by a new one without losing quorum: add first when the old one answers, remove first when it is down or the new one takes its name or address',
  options: (cmd: Command) =>
    gateOptions(
      clusterSourceOptions(cmd)
        .requiredOption('--member <name>', 'the member to replace (with --inventory: its member name or inventory hostname)')
        .option('--with <file>', 'the new member: a YAML or JSON object shaped like a spec member (the old name on a rebuilt host is allowed)')
        .option('--with-host <host>', "with --inventory, instead of --with: the new member's inventory hostname (listed in the etcd group beside the old one; the old one's own host when it was rebuilt)")
        .addOption(new Option('--strategy <order>', 'remove-first, add-first, or auto (decided from live health and the etcd version)').choices(replaceStrategies))
        .addOption(new Option('--retire <what>', "what becomes of the old member's data dir: moved aside with a timestamp (keep) or deleted (wipe)").choices(retirePolicies)),
    )
      .option('--catch-up-timeout <duration>', 'how long the new learner may take to catch up before it is rolled back')
      .option('--step-timeout <duration>', 'deadline of each step, retries included'),
  prepare: (o) => {
    const source = loadClusterSource(o);
    if ((o.with === undefined) === (o.withHost === undefined)) throw new SpecError('options', ['the new member: give --with FILE, or --with-host HOST with --inventory']);
    if (o.withHost !== undefined && !source.inventory) throw new SpecError('options', ['--with-host goes with --inventory (with --spec, describe the new member in a --with file)']);
    const old = memberName(source, o.member);
    let spec = source.spec;
    let neu: unknown;
    if (o.withHost !== undefined) {
      const h = source.inventory!.hosts.find((x) => x.host === o.withHost || x.member === o.withHost);
      if (!h) throw new SpecError(source.inventory!.file, [`--with-host ${o.withHost}: not a host of the etcd group (its hosts: ${source.inventory!.hosts.map((x) => x.host).join(', ')}): add the new host to the etcd group first`]);
      neu = spec.members.find((m) => m.name === h.member)!;
      // the new member is not part of the cluster the spec describes, unless it takes the old one's place (a rebuilt host)
      if (h.member !== old) spec = { ...spec, members: spec.members.filter((m) => m.name !== h.member) };
    } else neu = readDoc(o.with!);
    const input = parseReplaceMemberInput({
      spec,
      replace: old,
      with: neu,
      policy: policyFrom(o, ['strategy', 'retire', 'approval', 'gateTimeout', 'catchUpTimeout', 'stepTimeout'] as const),
    });
    return () => Promise.resolve({ operation: 'replaceMember', request: input });
  },
  start: async (steward, req) => {
    const input = parseReplaceMemberInput(req.request as ReplaceMemberRequest);
    const { spec, policy } = input;
    const op = await steward.startReplaceMember(input);
    return { op, cluster: spec.name, approval: policy.approval !== 'never', summary: `started replacement of ${input.replace} by ${input.with.name} in ${spec.name}: strategy ${policy.strategy}, approval ${policy.approval}, data dir: ${policy.retire}` };
  },
};

export function register(program: Command): void {
  registerOperation(program, replace);
}
