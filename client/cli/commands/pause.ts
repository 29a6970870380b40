import { type Command, Option } from 'commander';
import { action, osUser, send } from '../shared';

export function register(program: Command): void {
  program
    .command('pause')
    .description('hold the operation at its next gate until resumed')
    .requiredOption('--cluster <name>', 'the cluster name')
    .option('--reason <text>', 'why')
    .addOption(new Option('--by <name>', 'who pauses').default(osUser(), 'your user name'))
    .action(
      action<{ cluster: string; reason?: string; by: string }>((steward, o, g) =>
        send(steward, g, o.cluster, 'pause', async (op) => {
          const r = await op.pause({ by: o.by, ...(o.reason ? { reason: o.reason } : {}) });
          return `paused (phase ${r.phase}); it holds at its next gate`;
        }),
      ),
    );
}
