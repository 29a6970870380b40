import { type Command, Option } from 'commander';
import { CliError, EXIT, action, osUser, positiveInt, send } from '../shared';

export function register(program: Command): void {
  program
    .command('approve')
    .description('let the operation past the quorum gate of the batch waiting for approval')
    .requiredOption('--cluster <name>', 'the cluster name')
    .option('--batch <n>', 'the batch to approve, as numbered in status (1 = first); default: the one waiting now', positiveInt('--batch'))
    .addOption(new Option('--by <name>', 'who approves').default(osUser(), 'your user name'))
    .option('--comment <text>', 'recorded with the approval')
    .action(
      action<{ cluster: string; batch?: number; by: string; comment?: string }>((steward, o, g) =>
        send(
          steward,
          g,
          o.cluster,
          'approve',
          async (op) => {
            const r = await op.approve({ ...(o.batch !== undefined ? { batch: o.batch - 1 } : {}), by: o.by, ...(o.comment ? { comment: o.comment } : {}) });
            return `batch ${r.batch + 1} (${r.members.join(', ')}) approved`;
          },
          (s) => {
            if (o.batch === undefined || !s.plan) return;
            const batches = s.plan.batches;
            if (o.batch > batches.length) {
              throw new CliError(`there is no batch ${o.batch}: the operation on ${o.cluster} has ${batches.length} batch(es): ${batches.map((m, i) => `${i + 1} (${m})`).join(', ')}`, EXIT.badInput);
            }
            if (s.batch && o.batch - 1 < s.batch.index) throw new CliError(`batch ${o.batch} (${batches[o.batch - 1]}) is already past; the operation is at batch ${s.batch.index + 1}`, EXIT.badInput);
          },
        ),
      ),
    );
}
