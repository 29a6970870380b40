import { type Command, Option } from 'commander';
import { CliError, EXIT, action, send } from '../shared';

export function register(program: Command): void {
  program
    .command('quorum')
    .description("pass a monitoring verdict to the quorum gate: while the latest is unhealthy the gate stays closed")
    .requiredOption('--cluster <name>', 'the cluster name')
    .addOption(new Option('--healthy', 'the cluster is healthy').conflicts('unhealthy'))
    .addOption(new Option('--unhealthy', 'the cluster is unhealthy').conflicts('healthy'))
    .option('--reason <text>', 'why')
    .option('--source <name>', 'who says so (e.g. the monitoring system)')
    .action(
      action<{ cluster: string; healthy?: boolean; unhealthy?: boolean; reason?: string; source?: string }>(
        (steward, o, g) =>
          send(steward, g, o.cluster, 'quorum', async (op) => {
            await op.reportQuorum({ healthy: !!o.healthy, ...(o.reason ? { reason: o.reason } : {}), ...(o.source ? { source: o.source } : {}) });
          }),
        (o) => {
          if (!o.healthy && !o.unhealthy) throw new CliError('quorum needs --healthy or --unhealthy', EXIT.badInput);
          return undefined;
        },
      ),
    );
}
