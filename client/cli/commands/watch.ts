import { type Command } from 'commander';
import { dateTime } from '../format';
import { type Output, action, describeOperation, emit, outputOption, positiveInt, watch } from '../shared';

export function register(program: Command): void {
  program
    .command('watch')
    .description('follow the operation until it ends: each event, each member\'s state (a live view on a terminal), what the gate waits for (exit 0 completed, 1 failed, 4 aborted)')
    .requiredOption('--cluster <name>', 'the cluster name')
    .option('--interval <seconds>', 'how often to poll', positiveInt('--interval'), 1)
    .addOption(outputOption())
    .action(
      action<{ cluster: string; interval: number; output: Output }>(async (steward, o, g, hints) => {
        const { handle, description: d } = await describeOperation(steward, o.cluster);
        if (o.output === 'json') emit({ type: 'watching', workflowType: d.type, workflowId: d.workflowId, runId: d.runId, status: d.status.name, startTime: d.startTime });
        else console.log(`watching ${d.type} ${d.workflowId} (run ${d.runId}, ${d.status.name}, started ${dateTime(d.startTime)}); Ctrl-C stops watching, not the operation`);
        return watch(steward, g, handle, hints, o.interval * 1000, o.output);
      }),
    );
}
