import { type Command, Option } from 'commander';
import { action, osUser, send } from '../shared';

export function register(program: Command): void {
  program
    .command('resume')
    .description('release a paused operation')
    .requiredOption('--cluster <name>', 'the cluster name')
    .addOption(new Option('--by <name>', 'who resumes').default(osUser(), 'your user name'))
    .action(
      action<{ cluster: string; by: string }>((steward, o, g) =>
        send(steward, g, o.cluster, 'resume', async (op) => {
          const r = await op.resume({ by: o.by });
          return `resumed (phase ${r.phase})`;
        }),
      ),
    );
}
