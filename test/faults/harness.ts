/**
 * The fault suite's parts: a worker as its own process (so it can be SIGKILLed), reading a
 * workflow history for activity completions, and the checks that decide "survived" or "lost".
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseEnvFile } from '../../activities/envfile';
import { memberPaths } from '../../spec/cluster';
import type { Bed } from '../../testbed';
import { sleep } from '../../testbed/procs';

const REPO = resolve(__dirname, '..', '..');

/** `npm run worker`'s entry point as a child process, configured like a production worker. */
export class WorkerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly logFile: string,
    private readonly exited: Promise<void>,
  ) {}

  static async start(bed: Bed, address: string, opts: { hold?: string; name: string; workflowBundle?: string }): Promise<WorkerProcess> {
    const logFile = join(bed.dir, `worker-${opts.name}.log`);
    const fd = openSync(logFile, 'a');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      STEWARD_SSH_KEY: bed.secretFiles.sshKey,
      STEWARD_ETCD_CA: bed.secretFiles.etcdCa,
      STEWARD_ETCD_CERT: bed.secretFiles.etcdCert,
      STEWARD_ETCD_KEY: bed.secretFiles.etcdKey,
    };
    delete env.STEWARD_TEST_FAULT_HOLD;
    if (opts.hold) env.STEWARD_TEST_FAULT_HOLD = opts.hold;
    if (opts.workflowBundle) env.STEWARD_WORKFLOW_BUNDLE = opts.workflowBundle;
    const child = spawn(process.execPath, ['--import', 'tsx', '--disable-warning=DEP0123', join(REPO, 'worker', 'main.ts')], { cwd: REPO, env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const w = new WorkerProcess(child, logFile, exited);
    const deadline = Date.now() + 60_000;
    while (!readFileSync(logFile, 'utf8').includes('polling task queue')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`worker ${opts.name} did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      await sleep(100);
    }
    return w;
  }

  get pid(): number {
    return this.child.pid!;
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (grace = setTimeout(r, 15_000)))]);
    clearTimeout(grace);
    if (this.child.exitCode === null && this.child.signalCode === null) await this.kill();
  }
}

export interface Completion {
  type: string;
  at: number;
}

/** Activity completions in a history, in order, with their times (ms since epoch). */
export function activityCompletions(history: unknown): Completion[] {
  const events = ((history as { events?: unknown[] }).events ?? []) as {
    eventId?: unknown;
    eventTime?: { seconds?: unknown; nanos?: number };
    activityTaskScheduledEventAttributes?: { activityType?: { name?: string } };
    activityTaskCompletedEventAttributes?: { scheduledEventId?: unknown };
  }[];
  const scheduled = new Map<string, string>();
  const out: Completion[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
    if (e.activityTaskCompletedEventAttributes) {
      const at = Number(String(e.eventTime?.seconds ?? 0)) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
      out.push({ type: scheduled.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId)) ?? '?', at });
    }
  }
  return out;
}

/**
 * I2 for one operation: the listed members must keep the process they had before it ('unchanged':
 * a scale-out must not restart existing members), or must each run a new one ('changed': a
 * rolling restart restarts them on purpose). A member with no pid before or after was not
 * compared, which is a problem, never a pass.
 */
export interface PidExpectation {
  expect: 'unchanged' | 'changed';
  of: string[];
}

/** What the cluster must look like when an operation has ended. */
export interface EndState {
  /** The member names, in any order. */
  members: string[];
  pids: PidExpectation;
}

type EtcdProcesses = ReturnType<Bed['etcdProcesses']>;

/** The problems with one member's pid before and after an operation (empty when it is as expected). */
export function pidProblems(name: string, expect: PidExpectation['expect'], before: EtcdProcesses[string] | undefined, after: EtcdProcesses[string] | undefined): string[] {
  const problems: string[] = [];
  if (!before) problems.push(`${name}: no pid before the operation — nothing to compare`);
  if (!after) problems.push(`${name}: no pid after the operation — not running`);
  if (!before || !after) return problems;
  const same = before.pid === after.pid && before.startTicks === after.startTicks;
  if (expect === 'unchanged' && !same) problems.push(`${name} was restarted (pid ${before.pid} -> ${after.pid})`);
  if (expect === 'changed' && same) problems.push(`${name} was not restarted (pid ${before.pid} still runs)`);
  return problems;
}

/** Checks the end state an operation must leave; returns what is wrong (empty when nothing). */
export async function checkEndState(bed: Bed, end: EndState, before: EtcdProcesses): Promise<string[]> {
  const problems: string[] = [];
  const expected = end.members;
  const o = await bed.observe();
  const names = o.members.map((m) => m.name).sort();
  if (names.join() !== [...expected].sort().join()) problems.push(`members are ${names.join(', ') || '(none)'}, expected ${expected.join(', ')}`);
  const peers = o.members.map((m) => m.peerURLs.join(','));
  if (new Set(peers).size !== peers.length) problems.push(`duplicate members: ${peers.join(' ')}`);
  if (o.learners > 0) problems.push(`${o.learners} learner(s) left behind`);
  if (!o.healthy) problems.push(`cluster not healthy: ${o.problems.join('; ')}`);
  const after = bed.etcdProcesses();
  for (const n of end.pids.of) problems.push(...pidProblems(n, end.pids.expect, before[n], after[n]));
  const truth = expected.map((n) => `${n}=https://${bed.host(n).address}:2380`).join(',');
  for (const n of expected) {
    const f = memberPaths(bed.spec, n).envFile;
    const v = existsSync(f) ? parseEnvFile(readFileSync(f, 'utf8')).ETCD_INITIAL_CLUSTER : undefined;
    if (v !== truth) problems.push(`${n}'s ETCD_INITIAL_CLUSTER is ${v ?? '(no env file)'}`);
  }
  return problems;
}
