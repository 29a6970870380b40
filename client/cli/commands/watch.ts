import { type Command } from 'commander';
import { dateTime } from '../format';
import { action, describeOperation, positiveInt, watch } from '../shared';

export function register(program: Command): void {
  program
    .command('watch')
    .description('follow the operation until it ends, printing each event (exit 0 completed, 1 failed, 4 aborted)')
    .requiredOption('--cluster <name>', 'the cluster name')
    .option('--interval <seconds>', 'how often to poll', positiveInt('--interval'), 1)
    .action(
      action<{ cluster: string; interval: number }>(async (steward, o, g, hints) => {
        const { handle, description: d } = await describeOperation(steward, o.cluster);
        console.log(`watching ${d.type} ${d.workflowId} (run ${d.runId}, ${d.status.name}, started ${dateTime(d.startTime)}); Ctrl-C stops watching, not the operation`);
        return watch(steward, g, handle, hints, o.interval * 1000);
      }),
    );
}
