/**
 * What the CLI's commands share: exit statuses, the connection to Temporal, sending an operator
 * action, watching an operation to its end, reading input files, and `action()`, which runs a
 * command and turns expected errors into one line and an exit status.
 */
import { userInfo } from 'node:os';
import { type Client, type WorkflowExecutionDescription, type WorkflowHandle, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { innermostMessage } from '../../common/errors';
import { readDocument } from '../../spec/cluster';
import { type TemporalConnection, TemporalConfigError, temporalConnection } from '../connection';
import {
  type OperationStatus,
  type ReplaceMemberResult,
  type RollingRestartResult,
  type ScaleInResult,
  type ScaleOutResult,
  Operation,
  OperationRejectedError,
  OperationRunningError,
  SpecError,
  StewardClient,
  operationWorkflowId,
} from '../index';
import { eventLine, formatReplaceMemberResult, formatRollingRestartResult, formatScaleInResult, formatScaleOutResult, time } from './format';

export const EXIT = { ok: 0, failed: 1, badInput: 2, running: 3, aborted: 4, rejected: 5 } as const;
/** How the printed hints invoke the CLI. */
export const SELF = 'npm run steward --';
/** How long a status query may take: a query needs a worker, and the server waits 30 s for one. */
export const QUERY_TIMEOUT_MS = 10_000;

/** An expected failure: printed as one line (no stack), exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

export interface Globals {
  /** As given (--address), then as resolved for the connection (TEMPORAL_ADDRESS, the profile, the default). */
  address: string;
  namespace: string;
  profile?: string;
  configFile?: string;
  taskQueue: string;
}
export type Event = OperationStatus['events'][number];
export const ENDED: OperationStatus['phase'][] = ['completed', 'aborted', 'failed'];
/** What the operation waits for; nothing once it has ended. */
export const waitingFor = (s: OperationStatus) => (ENDED.includes(s.phase) ? [] : s.waitingFor);

export function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

/** The events in `next` that `prev` did not have (the list keeps the latest 50: old ones drop off the front). */
export function newEvents(prev: Event[], next: Event[]): Event[] {
  const same = (a: Event, b: Event) => a.at === b.at && a.message === b.message;
  for (let k = Math.min(prev.length, next.length); k > 0; k--) {
    const tail = prev.slice(prev.length - k);
    if (tail.every((e, i) => same(e, next[i]!))) return next.slice(k);
  }
  return next;
}

/** The innermost useful message of an error chain (a workflow failure's own message, not "Workflow execution failed"). */
export function causeMessage(e: unknown): string {
  return innermostMessage(e, (x) => x instanceof WorkflowFailedError);
}


/**
 * Connects as the Temporal CLI would (client/connection.ts), the options given winning; `g` then
 * holds the address and namespace in use. Bad settings exit 2 naming the setting; a server that
 * cannot be reached or refuses the connection exits 1 saying how we tried.
 */
export async function connect(g: Globals): Promise<StewardClient> {
  let t: TemporalConnection;
  try {
    t = temporalConnection({ address: g.address, namespace: g.namespace, profile: g.profile, configFile: g.configFile });
  } catch (e) {
    if (e instanceof TemporalConfigError) throw new CliError(e.message, EXIT.badInput);
    throw e;
  }
  g.address = t.options.address;
  g.namespace = t.namespace;
  try {
    return await StewardClient.connect({ temporal: t, taskQueue: g.taskQueue, connectTimeout: '5 seconds' });
  } catch (e) {
    const how =
      t.security === 'plaintext'
        ? 'without TLS; a server that wants TLS needs TEMPORAL_TLS_* (or a --profile with tls)'
        : t.security === 'TLS'
          ? 'with TLS and no client certificate; a server that wants mTLS needs TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH'
          : 'with mTLS';
    throw new CliError(`cannot connect to Temporal at ${t.description} (${how}): ${causeMessage(e)} (set --address, TEMPORAL_ADDRESS or a --profile)`);
  }
}

/** Warns (does not fail) when no worker has polled the task queue lately: an operation would wait for one. */
export async function warnWithoutWorker(steward: StewardClient, g: Globals): Promise<void> {
  try {
    const r = await steward.temporal.withDeadline(Date.now() + 5_000, () =>
      steward.temporal.workflowService.describeTaskQueue({ namespace: g.namespace, taskQueue: { name: g.taskQueue }, taskQueueType: 1 /* workflow */ }),
    );
    if (!r.pollers?.length) console.error(`warning: no worker has polled task queue "${g.taskQueue}" in namespace "${g.namespace}" lately; nothing runs until one does (npm run worker)`);
  } catch {
    /* only a hint */
  }
}

export function query(client: Client, handle: WorkflowHandle, g: Globals): Promise<OperationStatus> {
  return client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query<OperationStatus>('status')).catch((e: unknown) => {
    if (e instanceof WorkflowNotFoundError) throw e;
    throw new CliError(`the status query of ${handle.workflowId} got no answer (${causeMessage(e)}); is a worker polling task queue "${g.taskQueue}"?`);
  });
}

/** The latest run of a cluster's operation, or a clear "no operation found". */
export async function describeOperation(steward: StewardClient, cluster: string): Promise<{ handle: WorkflowHandle; description: WorkflowExecutionDescription }> {
  try {
    const description = await steward.operation(cluster).handle.describe();
    return { handle: steward.temporal.workflow.getHandle(description.workflowId, description.runId), description };
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) throw new CliError(`no operation found for cluster ${cluster} (no workflow ${operationWorkflowId(cluster)} in this namespace)`);
    throw e;
  }
}

/**
 * Sends an operator action (an Update, answered by the workflow, or the `quorum` signal) to the
 * running operation of a cluster, prints the answer, then what the workflow made of it (the
 * events it recorded since). A rejection by the workflow's validator is one line and exit 5.
 */
export async function send(
  steward: StewardClient,
  g: Globals,
  cluster: string,
  what: string,
  act: (op: Operation<unknown>, h: WorkflowHandle) => Promise<string | void>,
  check?: (s: OperationStatus) => void,
): Promise<number> {
  const { handle, description } = await describeOperation(steward, cluster);
  const ended = () => new CliError(`the operation on cluster ${cluster} (workflow ${handle.workflowId}) has already ended; there is nothing to ${what}`);
  if (description.status.name !== 'RUNNING') throw new CliError(`the operation on cluster ${cluster} (workflow ${handle.workflowId}) has already ended (${description.status.name}); there is nothing to ${what}`);
  const before = await query(steward.temporal, handle, g).catch(() => null);
  if (before && check) check(before);
  let answer: string | void;
  try {
    answer = await act(new Operation(handle), handle);
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) throw ended();
    if (e instanceof OperationRejectedError) throw new CliError(`${what} rejected: ${e.reason}`, EXIT.rejected);
    throw e;
  }
  console.log(`${what}: ${answer ?? `sent to ${handle.workflowId}`}`);
  try {
    const after = await query(steward.temporal, handle, g);
    for (const e of newEvents(before?.events ?? [], after.events)) console.log(`  ${eventLine(e)}`);
  } catch (e) {
    console.log(`  (the workflow has not answered yet: ${e instanceof Error ? e.message : String(e)})`);
  }
  return EXIT.ok;
}

/** How a command prints: for people (text), or one JSON document per line for programs (json). */
export type Output = 'text' | 'json';
export const outputOption = () => new Option('--output <format>', 'text (for people), or json (one JSON document per line, for programs)').choices(['text', 'json']).default('text');
/** Prints one JSON document on its own line (the json output). */
export const emit = (doc: Record<string, unknown>) => console.log(JSON.stringify(doc));

const elapsed = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
};

/**
 * The live view of `watch` on a terminal: events scroll, and below them a block redrawn in
 * place (the operation, its phase and batch, one line per member with its state and how long it
 * has been in it, what the gate waits for). Not on a terminal, the same changes are plain lines.
 */
class LiveView {
  private drawn = 0;
  constructor(private readonly tty: boolean) {}

  show(lines: string[], block: string[]): void {
    if (!this.tty) {
      for (const l of lines) console.log(l);
      return;
    }
    let out = this.drawn ? `\x1b[${this.drawn}A\x1b[J` : '';
    for (const l of lines) out += `${l}\n`;
    for (const l of block) out += `${l}\n`;
    process.stdout.write(out);
    this.drawn = block.length;
  }

  /** Leaves the block as it was last drawn (the final state), and prints from below it. */
  close(): void {
    this.drawn = 0;
  }
}

/**
 * Follows one run until it ends: prints each new event; each member's state as it changes (how
 * long it stayed in the one before); what the gate waits for when that changes; then the result
 * or the failure. On a terminal, members and the gate are a block redrawn in place. With json
 * output, each of those is one JSON document per line. Exit status: 0 completed, 1 failed, 4 aborted.
 */
export async function watch(steward: StewardClient, g: Globals, handle: WorkflowHandle, hints: (cmd: string) => string, intervalMs = 1_000, output: Output = 'text'): Promise<number> {
  const tty = output === 'text' && process.stdout.isTTY === true;
  const view = new LiveView(tty);
  const t0 = Date.now();
  let seen: Event[] = [];
  let waiting = '';
  let queryProblem = '';
  const since = new Map<string, { state: string; at: number }>();
  process.once('SIGINT', () => {
    view.close();
    console.log(`\nstopped watching; the operation goes on (workflow ${handle.workflowId}). ${hints(`watch --cluster ${handle.workflowId.slice(operationWorkflowId('').length)}`)} to watch again`);
    process.exit(130);
  });
  for (;;) {
    let d: WorkflowExecutionDescription;
    try {
      d = await handle.describe();
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) throw e;
      // A blip (Temporal restarting, the network): say so once and keep watching.
      const msg = `cannot reach Temporal at ${g.address} (${causeMessage(e)}); still trying`;
      if (msg !== queryProblem) console.error(`warning: ${msg}`);
      queryProblem = msg;
      await new Promise((r) => setTimeout(r, intervalMs));
      continue;
    }
    try {
      const s = await query(steward.temporal, handle, g);
      queryProblem = '';
      const now = Date.now();
      const lines: string[] = [];
      for (const e of newEvents(seen, s.events)) {
        if (output === 'json') emit({ type: 'event', at: e.at, message: e.message });
        else lines.push(eventLine(e));
      }
      seen = s.events;
      for (const m of s.members) {
        const was = since.get(m.name);
        if (was?.state === m.state) continue;
        if (was) {
          if (output === 'json') emit({ type: 'member', member: m.name, state: m.state, was: was.state, afterMs: now - was.at });
          else if (!tty) lines.push(`${time(new Date())}  ${m.name}: ${was.state} → ${m.state} (after ${elapsed(now - was.at)})`);
        } else if (output === 'json') emit({ type: 'member', member: m.name, state: m.state });
        since.set(m.name, { state: m.state, at: now });
      }
      const w = waitingFor(s).join('; ');
      if (w !== waiting) {
        if (output === 'json') emit({ type: 'waiting', for: waitingFor(s) });
        else if (w && !tty) lines.push(`${time(new Date())}  … waiting for: ${w}`);
      }
      waiting = w;
      if (output === 'text') {
        const width = Math.max(...s.members.map((m) => m.name.length), 6);
        const block = [
          `── ${s.operation} of ${s.cluster} · ${s.phase}${s.batch ? ` · batch ${s.batch.index + 1}/${s.batch.of} (${s.batch.member})` : ''}${s.paused ? ' · PAUSED' : ''} · ${elapsed(now - t0)} watched`,
          ...s.members.map((m) => `   ${m.name.padEnd(width)}  ${m.state.padEnd(14)} ${elapsed(now - since.get(m.name)!.at)}`),
          ...(w ? [`   waiting for: ${w}`] : []),
        ];
        view.show(lines, block);
      }
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (msg !== queryProblem) console.error(`warning: ${msg}`);
      queryProblem = msg;
    }
    if (d.status.name !== 'RUNNING') {
      view.close();
      return outcome(handle, d, output);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function outcome(handle: WorkflowHandle, d: WorkflowExecutionDescription, output: Output = 'text'): Promise<number> {
  switch (d.status.name) {
    case 'COMPLETED': {
      const r = (await handle.result()) as ScaleOutResult | RollingRestartResult | ScaleInResult | ReplaceMemberResult;
      if (output === 'json') emit({ type: 'result', workflowType: d.type, result: r });
      else if (d.type === 'scaleOut') console.log(formatScaleOutResult(r as ScaleOutResult));
      else if (d.type === 'rollingRestart') console.log(formatRollingRestartResult(r as RollingRestartResult));
      else if (d.type === 'scaleIn') console.log(formatScaleInResult(r as ScaleInResult));
      else if (d.type === 'replaceMember') console.log(formatReplaceMemberResult(r as ReplaceMemberResult));
      else console.log(`completed: ${JSON.stringify(r)}`);
      return r?.outcome === 'aborted' ? EXIT.aborted : EXIT.ok;
    }
    case 'FAILED':
      try {
        await handle.result();
      } catch (e) {
        if (output === 'json') emit({ type: 'failed', message: causeMessage(e) });
        else console.log(`failed: ${causeMessage(e)}`);
      }
      return EXIT.failed;
    case 'CANCELLED':
      if (output === 'json') emit({ type: 'cancelled', workflowId: handle.workflowId });
      else console.log(`cancelled: the workflow ${handle.workflowId} was cancelled (any member in flight was rolled back)`);
      return EXIT.aborted;
    default:
      if (output === 'json') emit({ type: 'ended', status: d.status.name, workflowId: handle.workflowId });
      else console.log(`${d.status.name.toLowerCase().replace('_', ' ')}: the workflow ${handle.workflowId} ended without a result`);
      return EXIT.failed;
  }
}

/** After a start: the workflow id and the commands to follow it; then, with --wait, follows it to its end. */
export async function started(steward: StewardClient, g: Globals, hints: (cmd: string) => string, op: Operation<unknown>, cluster: string, approval: boolean, wait: boolean, output: Output = 'text'): Promise<number> {
  const { runId } = await op.handle.describe();
  if (output === 'json') emit({ type: 'started', cluster, workflowId: op.workflowId, runId });
  else {
    console.log(`workflow: ${op.workflowId} (run ${runId})`);
    console.log(`  watch:   ${hints(`watch --cluster ${cluster}`)}`);
    console.log(`  status:  ${hints(`status --cluster ${cluster}`)}`);
    if (approval) console.log(`  approve: ${hints(`approve --cluster ${cluster}`)}`);
    console.log(`  abort:   ${hints(`abort --cluster ${cluster} --reason "..."`)}`);
  }
  await warnWithoutWorker(steward, g);
  if (!wait) return EXIT.ok;
  if (output === 'text') console.log('');
  return watch(steward, g, steward.temporal.workflow.getHandle(op.workflowId, runId), hints, 1_000, output);
}

/** A JSON or YAML input file (SpecError naming the file when unreadable). */
export const readDoc = readDocument;

export const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a whole number from 1 up.`);
  return n;
};

/** `KEY=value` (repeatable) into a record; the request's validation names a bad key. */
export const collectSet = (v: string, prev: Record<string, string> = {}) => {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`"${v}" must look like ETCD_NAME=value`);
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
};
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Runs a command with a connected client; expected errors become one line and an exit status.
 * `prepare` checks the input first (files, options), before any connection is tried.
 */
export function action<O, P = undefined>(
  f: (steward: StewardClient, o: O, g: Globals, hints: (cmd: string) => string, prepared: P) => Promise<number>,
  prepare?: (o: O) => P,
) {
  return async (o: O, cmd: Command) => {
    const g = cmd.optsWithGlobals<Globals & O>();
    // Hints repeat the global options given on the command line, so they can be pasted as they are.
    const given = (['address', 'namespace', 'profile', 'configFile', 'taskQueue'] as const).filter((k) => cmd.getOptionValueSourceWithGlobals(k) === 'cli');
    const flag = (k: (typeof given)[number]) => (k === 'taskQueue' ? 'task-queue' : k === 'configFile' ? 'config-file' : k);
    const flags = given.map((k) => ` --${flag(k)} ${g[k]}`).join('');
    const hints = (c: string) => `${SELF}${flags} ${c}`;
    let code: number;
    let steward: StewardClient | undefined;
    try {
      const prepared = prepare ? prepare(o) : (undefined as P);
      steward = await connect(g);
      code = await f(steward, o, g, hints, prepared);
    } catch (e) {
      code = report(e);
    }
    await steward?.close().catch(() => undefined);
    process.exit(code);
  };
}

export function report(e: unknown): number {
  if (process.env.STEWARD_DEBUG) console.error(e);
  if (e instanceof SpecError) {
    console.error(e.message);
    return EXIT.badInput;
  }
  if (e instanceof OperationRunningError) {
    console.error(e.message);
    return EXIT.running;
  }
  if (e instanceof CliError) {
    console.error(e.message);
    return e.exitCode;
  }
  console.error(`error: ${causeMessage(e)}`);
  return EXIT.failed;
}
