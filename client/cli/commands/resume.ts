import { type Command } from 'commander';
import { action, osUser, send } from '../shared';

export function register(program: Command): void {
  program
    .command('resume')
    .description('release a paused operation')
    .requiredOption('--cluster <name>', 'the cluster name')
    .option('--by <name>', 'who resumes', osUser())
    .action(
      action<{ cluster: string; by: string }>((steward, o, g) =>
        send(steward, g, o.cluster, 'resume', async (op) => {
          const r = await op.resume({ by: o.by });
          return `resumed (phase ${r.phase})`;
        }),
      ),
    );
}
