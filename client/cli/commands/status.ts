import { type Command } from 'commander';
import { formatStatus } from '../format';
import { EXIT, type Output, action, describeOperation, outputOption, positiveInt, query } from '../shared';

export function register(program: Command): void {
  program
    .command('status')
    .description("print the cluster's current (or latest) operation: phase, batch, members, what it waits for, warnings, last events")
    .requiredOption('--cluster <name>', 'the cluster name')
    .addOption(outputOption())
    .option('--json', 'the same as --output json: the raw status query result')
    .option('--events <n>', 'how many of the latest events to print', positiveInt('--events'), 10)
    .action(
      action<{ cluster: string; json?: boolean; events: number; output: Output }>(async (steward, o, g, hints) => {
        const { handle, description } = await describeOperation(steward, o.cluster);
        const s = await query(steward.temporal, handle, g);
        console.log(o.json || o.output === 'json' ? JSON.stringify(s, null, 2) : formatStatus(s, description, hints, o.events));
        return EXIT.ok;
      }),
    );
}
