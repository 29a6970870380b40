/**
 * The shape of a command that starts an operation (scale-out, restart, scale-in, replace): its
 * options, how its request is built from them, and how it starts. `registerOperation` makes the
 * command (with --wait); commands/plan.ts makes `plan <name>` from the same definition, so a new
 * operation is one file and its dry run comes with it.
 */
import { type Command, Option } from 'commander';
import { approvalPolicies } from '../../spec/operations';
import type { Operation, PlanOperationRequest, StewardClient } from '../index';
import { formatPlan } from './format';
import { CliError, EXIT, type Output, action, causeMessage, emit, outputOption, started } from './shared';

export interface OperationCommand<O> {
  /** The command's name (`scale-out`). */
  name: string;
  description: string;
  /** Adds the request's options (not --wait). */
  options(cmd: Command): Command;
  /**
   * Checks the options and files before any connection (SpecError names each bad field) and
   * returns how to build the request, which may ask the cluster (scale-out --inventory).
   */
  prepare(o: O): (steward: StewardClient, say: (note: string) => void) => Promise<PlanOperationRequest>;
  /** Starts it; `summary` is the one line said about the start. */
  start(steward: StewardClient, req: PlanOperationRequest): Promise<{ op: Operation<unknown>; cluster: string; approval: boolean; summary: string }>;
  /** Print the plan (a dry run) before starting. */
  planFirst?: boolean;
}

/** The cluster a request is about. */
export const clusterOf = (req: PlanOperationRequest): string => ('name' in req.request.spec ? String(req.request.spec.name) : '');

/** Registers the command that starts the operation. */
export function registerOperation<O>(program: Command, def: OperationCommand<O>): void {
  def
    .options(program.command(def.name).description(def.description))
    .option('--wait', 'watch the operation until it ends (exit 0 completed, 1 failed, 4 aborted)')
    .addOption(outputOption())
    .action(
      action<O & { wait?: boolean; output: Output }, (steward: StewardClient, say: (note: string) => void) => Promise<PlanOperationRequest>>(
        async (steward, o, g, hints, build) => {
          const say = (note: string) => (o.output === 'json' ? emit({ type: 'note', message: note }) : console.log(note));
          const req = await build(steward, say);
          if (def.planFirst) {
            // A cluster with an operation running: say so (exit 3) rather than plan against a cluster mid-change.
            const running = await steward.runningOperation(clusterOf(req));
            if (running) throw running;
            let plan;
            try {
              plan = await steward.plan(req);
            } catch (e) {
              throw new CliError(`${def.name} refused before starting: ${causeMessage(e)}`, EXIT.failed);
            }
            if (o.output === 'json') emit({ type: 'plan', plan });
            else console.log(`${formatPlan(plan)}\n`);
          }
          const { op, cluster, approval, summary } = await def.start(steward, req);
          if (o.output === 'json') emit({ type: 'summary', message: summary });
          else console.log(summary);
          return started(steward, g, hints, op, cluster, approval, !!o.wait, o.output);
        },
        (o) => def.prepare(o),
      ),
    );
}

/** The options every operation's gate takes: --approval and --gate-timeout. */
export function gateOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--approval <when>', 'when the quorum gate waits for an operator to approve').choices(approvalPolicies))
    .option('--gate-timeout <duration>', 'how long the gate may wait for a healthy cluster, e.g. "10 minutes"');
}

/** The policy fields the options set (those given on the command line), for the request's validation. */
export function policyFrom<O extends object, K extends keyof O>(o: O, keys: readonly K[]): Partial<Pick<O, K>> {
  return Object.fromEntries(keys.filter((k) => Boolean(o[k])).map((k) => [k, o[k]])) as Partial<Pick<O, K>>;
}
