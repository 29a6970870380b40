/** The CLI's commands as one commander program (client/cli/main.ts runs it; scripts/cli-reference.ts documents it). */
import { Command, type CommanderError, Option } from 'commander';
import { EXIT } from './shared';
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

/** The whole CLI: every command, registered in the order `--help` lists them. */
export function buildProgram(): Command {
  const program = new Command('etcd-steward')
    .description('Operate etcd-steward: check a cluster, scale it out or in, replace a member, restart it member by member, and watch, approve, pause, resume or abort its operation.')
    .addOption(new Option('--address <host:port>', 'Temporal frontend (default: TEMPORAL_ADDRESS, the profile, else 127.0.0.1:7233)'))
    .addOption(new Option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE, the profile, else default)'))
    .addOption(new Option('--profile <name>', "the Temporal config profile to connect with, TLS and API key included (default: TEMPORAL_PROFILE, else the file's default profile)"))
    .addOption(new Option('--config-file <path>', 'the Temporal config file (default: TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml)'))
    .addOption(new Option('--task-queue <name>', "the workers' task queue").env('STEWARD_TASK_QUEUE').default('etcd-steward'))
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nThe connection to Temporal is read as the Temporal CLI reads it: a profile of its config file, then TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* (client certificate and key, server CA, server name), then the options above.')
    .addHelpText('after', '\nExit status: 0 ok, 1 failed or unhealthy or error, 2 bad input, 3 an operation is already running, 4 aborted, 5 the operation refused the action.')
    // Usage errors exit 2 like bad input files; help and version exit 0.
    .exitOverride((e: CommanderError) => process.exit(e.exitCode === 0 ? 0 : EXIT.badInput));
  for (const c of [health, plan, scaleOut, restart, scaleIn, replace, status, watch, approve, abort, pause, resume, quorum, list]) c.register(program);
  return program;
}
