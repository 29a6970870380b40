import type { Command } from 'commander';
import { approvalPolicies, parseRollingRestartInput } from '../../../spec/operations';
import type { RollingRestartRequest } from '../../index';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource, memberName } from '../clusterSource';
import { type OperationCommand, gateOptions, policyFrom, registerOperation } from '../operation';
import { collect, collectSet, positiveInt } from '../shared';

type Options = ClusterSourceOptions & {
  reason: string;
  members?: string;
  set?: Record<string, string>;
  unset?: string[];
  binary?: string;
  maxUnavailable?: number;
  approval?: (typeof approvalPolicies)[number];
  gateTimeout?: string;
  readyTimeout?: string;
  stepTimeout?: string;
};

export const restart: OperationCommand<Options> = {
  name: 'restart',
  description: 'rolling restart: members in quorum-safe batches decided from live health, followers first, the leader last after MoveLeader',
  options: (cmd: Command) =>
    gateOptions(
      clusterSourceOptions(cmd)
        .requiredOption('--reason <text>', 'why the members are restarted (shown to operators)')
        .option('--members <names>', 'comma-separated members to restart, by member name or (with --inventory) inventory hostname (default: all)')
        .option('--set <KEY=value>', 'set an env-file variable on each member while it is stopped (repeatable)', collectSet)
        .option('--unset <KEY>', 'remove an env-file variable on each member while it is stopped (repeatable)', collect)
        .option('--binary <path>', "a rolling upgrade: the new etcd binary, already on each member's host at this path ({name}: the member's name), installed at layout.etcdBinary while the member is stopped")
        .option('--max-unavailable <n>', "at most this many members down at once (the cluster's failure tolerance still bounds it)", positiveInt('--max-unavailable')),
    )
      .option('--ready-timeout <duration>', 'how long a restarted member may take to answer and catch up')
      .option('--step-timeout <duration>', 'deadline of each restart step, retries included'),
  prepare: (o) => {
    const source = loadClusterSource(o);
    const input = parseRollingRestartInput({
      spec: source.spec,
      reason: o.reason,
      ...(o.members ? { members: o.members.split(',').map((x) => memberName(source, x.trim())).filter(Boolean) } : {}),
      ...(o.set || o.unset ? { change: { set: o.set ?? {}, unset: o.unset ?? [] } } : {}),
      ...(o.binary !== undefined ? { binary: o.binary } : {}),
      policy: policyFrom(o, ['maxUnavailable', 'approval', 'gateTimeout', 'readyTimeout', 'stepTimeout'] as const),
    });
    return () => Promise.resolve({ operation: 'rollingRestart', request: input });
  },
  start: async (steward, req) => {
    const input = parseRollingRestartInput(req.request as RollingRestartRequest);
    const { spec, policy } = input;
    const op = await steward.startRollingRestart(input);
    return { op, cluster: spec.name, approval: policy.approval !== 'never', summary: `started rolling ${input.binary ? 'upgrade' : 'restart'} of ${spec.name} (${input.members.join(', ')}): ${input.reason}; at most ${policy.maxUnavailable} down at once, approval ${policy.approval}${input.binary ? `; new binary ${input.binary}` : ''}` };
  },
};

export function register(program: Command): void {
  registerOperation(program, restart);
}
