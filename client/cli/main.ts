/**
 * The operator CLI: `etcd-steward <command>` (`npx etcd-steward` in a clone, `npm run steward --`),
 * a thin layer over the typed client. One file per command in commands/; what they share in
 * shared.ts (connection, watching, exit statuses) and format.ts (what people read).
 *
 *   health --spec prod-etcd.yaml
 *   plan scale-out --inventory inventory/prod/inventory.ini      (a dry run: what it would do)
 *   scale-out --spec prod-etcd.yaml --add new-members.yaml --approval each-batch
 *   restart --spec prod-etcd.yaml --reason "quota 8 GiB" --set ETCD_QUOTA_BACKEND_BYTES=8589934592
 *   restart --spec prod-etcd.yaml --reason "etcd 3.6" --binary /opt/etcd-v3.6.16/etcd   (a rolling upgrade)
 *   scale-in --spec prod-etcd.yaml --remove etcd4,etcd5
 *   replace --spec prod-etcd.yaml --member etcd2 --with new-etcd2.yaml
 *   status|watch|approve|pause|resume --cluster prod-etcd
 *   abort --cluster prod-etcd --reason "..."
 *   quorum --cluster prod-etcd --unhealthy --reason "..." --source alertmanager
 *   list
 *
 * Exit status: 0 done (or healthy, or completed); 1 failed, unhealthy, or an error; 2 bad input
 * (options or files); 3 the cluster already has an operation running; 4 the operation was aborted;
 * 5 the operation refused the action (e.g. approve with no batch waiting).
 */
import { Command, type CommanderError, Option } from 'commander';
import { EXIT, report } from './shared';
import * as abort from './commands/abort';
import * as approve from './commands/approve';
import * as health from './commands/health';
import * as list from './commands/list';
import * as pause from './commands/pause';
import * as plan from './commands/plan';
import * as quorum from './commands/quorum';
import * as replace from './commands/replace';
import * as restart from './commands/restart';
import * as resume from './commands/resume';
import * as scaleIn from './commands/scale-in';
import * as scaleOut from './commands/scale-out';
import * as status from './commands/status';
import * as watch from './commands/watch';

const program = new Command('etcd-steward')
  .description('Operate etcd-steward: check a cluster, scale it out or in, replace a member, restart it member by member, and watch, approve, pause, resume or abort its operation.')
  .addOption(new Option('--address <host:port>', 'Temporal frontend').env('STEWARD_TEMPORAL_ADDRESS').default('127.0.0.1:7233'))
  .addOption(new Option('--namespace <name>', 'Temporal namespace').env('STEWARD_NAMESPACE').default('default'))
  .addOption(new Option('--task-queue <name>', "the workers' task queue").env('STEWARD_TASK_QUEUE').default('etcd-steward'))
  .showHelpAfterError('(add --help for usage)')
  .addHelpText('after', '\nExit status: 0 ok, 1 failed or unhealthy or error, 2 bad input, 3 an operation is already running, 4 aborted, 5 the operation refused the action.')
  // Usage errors exit 2 like bad input files; help and version exit 0.
  .exitOverride((e: CommanderError) => process.exit(e.exitCode === 0 ? 0 : EXIT.badInput));

// In the order `--help` lists them.
for (const c of [health, plan, scaleOut, restart, scaleIn, replace, status, watch, approve, abort, pause, resume, quorum, list]) c.register(program);

program.parseAsync().catch((e: unknown) => process.exit(report(e)));
