import { type Command, Option } from 'commander';
import { action, osUser, send } from '../shared';

export function register(program: Command): void {
  program
    .command('abort')
    .description('stop at the next safe point and roll back what is not committed (a learner not yet promoted)')
    .requiredOption('--cluster <name>', 'the cluster name')
    .requiredOption('--reason <text>', 'why (recorded in the history)')
    .addOption(new Option('--by <name>', 'who aborts').default(osUser(), 'your user name'))
    .action(
      action<{ cluster: string; reason: string; by: string }>((steward, o, g) =>
        send(steward, g, o.cluster, 'abort', async (op) => {
          const r = await op.abort({ reason: o.reason, by: o.by });
          return `accepted during ${r.phase}; ${r.willRollBack.length ? `will roll back: ${r.willRollBack.join('; ')}` : 'nothing to roll back'}`;
        }),
      ),
    );
}
