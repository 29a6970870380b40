import { type Command } from 'commander';
import { type ClusterSpec } from '../../../spec/cluster';
import type { HealthReport } from '../../index';
import { type ClusterSourceOptions, clusterSourceOptions, loadClusterSource } from '../clusterSource';
import { formatHealth } from '../format';
import { CliError, EXIT, type Output, action, causeMessage, outputOption, warnWithoutWorker } from '../shared';

export function register(program: Command): void {
  clusterSourceOptions(program.command('health').description('run the clusterHealth workflow and print its report (exit 1 when unhealthy)'))
    .addOption(outputOption())
    .option('--json', 'the same as --output json')
    .action(
      action<ClusterSourceOptions & { json?: boolean; output: Output }, ClusterSpec>(
        async (steward, o, g, _hints, spec) => {
          await warnWithoutWorker(steward, g);
          let r: HealthReport;
          try {
            r = await steward.clusterHealth(spec);
          } catch (e) {
            throw new CliError(`the health check of ${spec.name} failed: ${causeMessage(e)}`);
          }
          console.log(o.json || o.output === 'json' ? JSON.stringify(r, null, 2) : formatHealth(r));
          return r.healthy ? EXIT.ok : EXIT.failed;
        },
        (o) => loadClusterSource(o).spec,
      ),
    );
}
