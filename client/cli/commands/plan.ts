import { type Command, Option } from 'commander';
import type { PlanOperationRequest, StewardClient } from '../../index';
import { formatPlan } from '../format';
import type { OperationCommand } from '../operation';
import { CliError, EXIT, action, causeMessage } from '../shared';
import { replace } from './replace';
import { restart } from './restart';
import { scaleIn } from './scale-in';
import { scaleOut } from './scale-out';

/** `plan <operation> …`: the operation's own options; prints what it would do, from live health, and changes nothing. */
export function register(program: Command): void {
  const plan = program
    .command('plan')
    .description('a dry run: what an operation would do from live health (batches, who is in each, leadership, what is left alone, what the gate waits for); changes nothing')
    .addHelpText('after', '\nExit status: 0 the operation would run, 1 it would be refused (the reason is printed), 2 bad input.');
  for (const def of [scaleOut, restart, scaleIn, replace] as OperationCommand<unknown>[]) {
    def
      .options(plan.command(def.name).description(`what \`${def.name}\` would do, with the same options`))
      .addOption(new Option('--output <format>', 'text, or json (the plan report)').choices(['text', 'json']).default('text'))
      .action(
        action<{ output: 'text' | 'json' }, (steward: StewardClient) => Promise<PlanOperationRequest>>(
          async (steward, o, _g, _hints, build) => {
            const req = await build(steward);
            let report;
            try {
              report = await steward.plan(req);
            } catch (e) {
              throw new CliError(`${def.name} would be refused: ${causeMessage(e)}`, EXIT.failed);
            }
            console.log(o.output === 'json' ? JSON.stringify(report, null, 2) : formatPlan(report));
            return EXIT.ok;
          },
          (o) => def.prepare(o),
        ),
      );
  }
}
