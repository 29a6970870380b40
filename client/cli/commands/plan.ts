import type { Command } from 'commander';
import type { PlanOperationRequest, StewardClient } from '../../index';
import { formatPlan } from '../format';
import type { OperationCommand } from '../operation';
import { CliError, EXIT, type Output, action, causeMessage, emit, outputOption } from '../shared';
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
      .addOption(outputOption())
      .action(
        action<{ output: Output }, (steward: StewardClient, say: (note: string) => void) => Promise<PlanOperationRequest>>(
          async (steward, o, _g, _hints, build) => {
            const req = await build(steward, (note) => (o.output === 'json' ? emit({ type: 'note', message: note }) : console.log(note)));
            let report;
            try {
              report = await steward.plan(req);
            } catch (e) {
              throw new CliError(`${def.name} would be refused: ${causeMessage(e)}`, EXIT.failed);
            }
            if (o.output === 'json') emit({ type: 'plan', plan: report });
            else console.log(formatPlan(report));
            return EXIT.ok;
          },
          (o) => def.prepare(o),
        ),
      );
  }
}
