import { type Command } from 'commander';
import { dateTime, table } from '../format';
import { EXIT, type Output, action, outputOption, positiveInt } from '../shared';

export function register(program: Command): void {
  program
    .command('list')
    .description('recent etcd-steward operations: running ones first, then the latest closed')
    .option('--limit <n>', 'how many', positiveInt('--limit'), 20)
    .option('--cluster <name>', "only this cluster's (by the EtcdCluster search attribute)")
    .option('--all', 'health checks and plans too')
    .addOption(outputOption())
    .option('--json', 'the same as --output json')
    .action(
      action<{ limit: number; cluster?: string; all?: boolean; json?: boolean; output: Output }>(async (steward, o) => {
        const ops = await steward.listOperations({ limit: o.limit, includeHealthChecks: !!o.all, ...(o.cluster !== undefined ? { cluster: o.cluster } : {}) });
        if (o.json || o.output === 'json') console.log(JSON.stringify(ops, null, 2));
        else if (!ops.length) console.log('no etcd-steward operations in this namespace');
        else
          console.log(
            table([
              ['CLUSTER', 'TYPE', 'STATUS', 'STARTED', 'CLOSED', 'WORKFLOW ID', 'RUN ID'],
              ...ops.map((w) => [w.cluster, w.type, w.status, dateTime(w.startTime), dateTime(w.closeTime), w.workflowId, w.runId]),
            ]),
          );
        return EXIT.ok;
      }),
    );
}
