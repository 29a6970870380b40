/**
 * `npm run bench`, part 1: the same 3 → 5 scale-out on identical fresh clusters under the same write
 * load, done four ways, at each data size (`--data-mb`, default 20 and 200 MB; `--big` adds 500
 * and 2000 MB), measured side by side in one run:
 *
 *   naive       Kubespray's old way: each new member added as a *voting* member, env files
 *               re-rendered everywhere, then the "Reload etcd" handler restarts every member at once;
 *   throttled   the same with the newer handler: restarts in batches of floor(n/2);
 *   floor       scripts/floor.ts: learner add → env → start → catch-up → promote by a straight-line
 *               script with one open SSH connection per host and no Temporal: what the operation
 *               costs when the plumbing costs (almost) nothing;
 *   steward     the scaleOut workflow through a real Temporal dev server and worker.
 *
 * The baselines wait for cluster health after each new member's start and between restart
 * batches, where Kubespray's handler does not: that flatters them, so ratios against them are
 * conservative. Reported per case: failed writes, the longest gap between successful writes,
 * p50/p99 write latency, total time, catch-up per new member, existing members restarted (pid
 * changed, observed) and the most seen down at once; for the baselines how long each member's
 * restart took (stop → ready: its down stretch as the liveness sampler saw it). For steward,
 * from its workflow HISTORY (event times written by the Temporal server, never the workflow's own
 * counters): the time per step, the time between activities, and the orchestration overhead
 * (defined where it is printed), with the floor's figures beside them.
 *
 * Part 2: a rolling restart of every member (4 and 5 members by default, at the first data size
 * or `--restart-data-mb`) three ways: all at once (Kubespray's old handler), floor(n/2) at a time
 * (its newer one: 4 members, 2 down of 4, quorum lost), and the rollingRestart workflow.
 *
 * Ends with one machine-readable `bench:` line per data size and per restart cluster size, and
 * the bench's total run time. Bounded: every load stops itself, every wait has a limit (scaled
 * with the data size). Uses its own addresses (127.30.0.x) and ports (Temporal 37233/38233), so it
 * does not collide with a bed left running.
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import { etcdClient } from '../activities/etcd';
import { sshRun } from '../activities/ssh';
import { type Operation, StewardClient } from '../client';
import { expand, type Member } from '../spec/cluster';
import { checkEndState } from '../test/faults/harness';
import { Bed } from '../testbed';
import { type ActivitySpan, type HistoryTimes, historyTimes, unionMs } from '../testbed/history';
import { LivenessSampler } from '../testbed/liveness';
import { type LoadReport, type PrefillReport, WriteLoad } from '../testbed/load';
import { activityRunner } from '../testbed/run-activity';
import { startTemporal } from '../testbed/temporal';
import { createWorker, WORKFLOWS_PATH } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';
import { FLOOR_STEPS, type FloorMember, type FloorReport, floorScaleOut } from './floor';
import { sleep } from '../testbed/procs';

const list = (v: string) => v.split(',').filter(Boolean).map(Number);
const opts = new Command('bench')
  .description('3 → 5 scale-out four ways (naive, throttled, floor, steward) at each data size, then a rolling restart three ways, on identical clusters under the same write load')
  .option('--data-mb <list>', 'data sizes in MB (MiB) written before each scale-out, comma-separated', list, [20, 200])
  .option('--big', 'also run the big sizes, 500 and 2000 MB (not for CI: ~15 GB of disk per bed and tens of minutes)', false)
  .option('--rate <n>', 'writes per second during each operation', (v) => Number(v), 100)
  .option('--restart-sizes <list>', 'cluster sizes for the rolling-restart comparison, comma-separated (empty: skip it)', list, [4, 5])
  .option('--restart-data-mb <n>', 'data size for the rolling-restart comparison (default: the first --data-mb)', (v) => Number(v))
  .option('--cases <list>', 'only these cases: naive (all at once), throttled, floor, steward', (v) => v.split(',').filter(Boolean), ['naive', 'throttled', 'floor', 'steward'])
  .option('--etcd-versions <list>', 'run everything on each of these etcd versions (3.4, 3.5, 3.6, 3.7, a full version; default: $ETCD_VERSION, else 3.4)', (v) => v.split(',').filter(Boolean))
  .parse()
  .opts<{ dataMb: number[]; big: boolean; rate: number; restartSizes: number[]; restartDataMb?: number; cases: string[]; etcdVersions?: string[] }>();

/** The etcd versions to run on (undefined: the bed's default, $ETCD_VERSION or Debian's 3.4). */
const VERSIONS: (string | undefined)[] = opts.etcdVersions?.length ? opts.etcdVersions : [undefined];
/** The version the cases being run now use. */
let currentVersion: string | undefined;
/** "etcd 3.6 " in front of each summary line when more than one version runs. */
const versionTag = () => (VERSIONS.length > 1 ? `etcd ${currentVersion} ` : '');

const DATA_SIZES = [...new Set([...opts.dataMb, ...(opts.big ? [500, 2000] : [])])];
const RESTART_MB = opts.restartDataMb ?? DATA_SIZES[0] ?? 0;
const NEW = ['etcd4', 'etcd5'];
/** etcd refuses a membership change until every voter has been connected for this long (strict reconfig check). */
const STRICT_RECONFIG_MS = 5_000;

/** Limits that grow with the data: nothing waits forever, nothing big is cut short. */
const limits = (mb: number) => ({
  operationMs: 5 * 60_000 + mb * 500,
  healthMs: 120_000 + mb * 100,
  loadMs: 8 * 60_000 + mb * 500,
  commandMs: 60_000 + mb * 50,
});

Runtime.install({ logger: new DefaultLogger('ERROR') });

/** What a procedure tells about itself beyond what the bench observes. */
interface ProcedureResult {
  /** Catch-up per new member, ms, as this procedure measured or (steward) its history shows. */
  catchUpMs?: Record<string, number>;
  floor?: FloorReport;
  history?: { times: HistoryTimes; bytes: number };
}

interface Run {
  key: string;
  name: string;
  dataMb: number;
  prefill: PrefillReport | null;
  dbMb: number;
  writes: LoadReport;
  totalMs: number;
  /** Existing members whose etcd pid changed (observed). */
  restarted: number;
  /** The most members seen down at once (observed), of the `members` there at the start. */
  maxDown: number;
  members: number;
  /** Each existing member's down stretches (stop → ready), ms, as the liveness sampler saw them. */
  downMs: Record<string, number[]>;
  /** Snapshot received by each new member, from its etcd log. */
  snapshots: Record<string, string>;
  result: ProcedureResult;
}

interface Procedure {
  /** Runs before the load and the clock start (e.g. a Temporal server and a worker). */
  prepare?(bed: Bed): Promise<void>;
  run(bed: Bed, mb: number): Promise<ProcedureResult>;
  cleanup?(): Promise<void>;
}


async function within<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => Promise<void>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void (onTimeout?.() ?? Promise.resolve()).finally(() => reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s (bench limit)`)));
    }, ms);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What the new member's etcd log (capnslog, etcd 3.4) says about its start: the snapshot it
 * received (size, transfer time: "receiving" → "received and saved"), and when it published
 * itself to the cluster (from then on it serves clients, so its catch-up can be seen), noting a
 * first publish that timed out.
 */
function snapshotNote(bed: Bed, name: string): string {
  const f = join(bed.host(name).root, 'log', 'etcd.log');
  if (!existsSync(f)) return 'no log';
  const lines = readFileSync(f, 'utf8').split('\n');
  const at = (l: string | undefined) => (l === undefined ? NaN : Date.parse(`${l.slice(0, 26).replace(' ', 'T')}Z`));
  const started = lines.find((l) => /etcdserver: starting server/.test(l));
  const from = lines.find((l) => /receiving database snapshot/.test(l));
  const to = lines.find((l) => /received and saved database snapshot/.test(l));
  const published = lines.find((l) => /etcdserver: published \{/.test(l));
  const publishErrors = lines.filter((l) => /publish error/.test(l)).length;
  const bytes = lines.map((l) => /total bytes: (\d+)/.exec(l)?.[1]).find(Boolean);
  const snap = from && to ? `snapshot${bytes ? ` of ${(Number(bytes) / 1048576).toFixed(0)} MB` : ''} received in ${((at(to) - at(from)) / 1000).toFixed(2)} s` : 'no snapshot (caught up from the log)';
  const pub = published && started ? `, serving ${((at(published) - at(started)) / 1000).toFixed(1)} s after start${publishErrors ? ` (${publishErrors} publish attempt${publishErrors > 1 ? 's' : ''} timed out first)` : ''}` : '';
  return snap + pub;
}

/** Runs a procedure on a fresh bed under load and measures what the writers and the liveness sampler saw. */
async function measure(key: string, name: string, procedure: Procedure, mb: number, shape: { hosts: number; members: number }, expectRestart: boolean): Promise<Run> {
  const lim = limits(mb);
  // etcd's default quota (2 GiB) is too small for the big sizes; Kubespray sets etcd_quota_backend_bytes the same way.
  const etcdEnv: Record<string, string> = mb >= 1000 ? { ETCD_QUOTA_BACKEND_BYTES: String(8 * 1024 ** 3) } : {};
  const bed = await Bed.up({ ...shape, net: '127.30.0', dir: join(tmpdir(), 'etcd-steward-bench-bed'), etcdEnv, ...(currentVersion ? { etcdVersion: currentVersion } : {}) });
  const upAt = Date.now();
  try {
    await procedure.prepare?.(bed);
    const load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials, rate: opts.rate, maxDurationMs: lim.loadMs });
    const leader = async () => {
      const o = await bed.observe();
      const l = o.statuses.find((x) => x.id === o.leaderId)?.endpoint;
      return l ? [l] : bed.endpoints;
    };
    const prefill = mb > 0 ? await load.prefill(mb, undefined, { concurrency: 256, clients: 4, endpoints: await leader() }) : null;
    const dbMb = Math.max(0, ...(await bed.observe()).statuses.map((s) => (s.dbSizeBytes ?? 0) / 1048576));
    const existing = bed.spec.members.map((m) => m.name);
    const before = bed.etcdProcesses();
    for (const n of existing) if (before[n] === null) throw new Error(`${name}: ${n} has no etcd pid before the run: nothing to compare`);
    // Every case starts with every peer connected for more than etcd's 5 s, so none starts with a refusal the others don't get.
    await sleep(Math.max(0, upAt + STRICT_RECONFIG_MS + 1_000 - Date.now()));
    const live = new LivenessSampler(bed.spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })), bed.etcdCredentials, (n) => bed.etcdPid(n), 100, lim.loadMs);
    let writes: LoadReport;
    let result: ProcedureResult;
    let totalMs: number;
    try {
      load.start();
      await sleep(2_000); // steady state first
      const t0 = Date.now();
      result = await within(procedure.run(bed, mb), lim.operationMs, `${name}: the operation`);
      totalMs = Date.now() - t0;
      await bed.waitHealthy(lim.healthMs);
      await sleep(2_000);
    } finally {
      writes = await load.stop();
      await live.stop();
    }
    const after = bed.etcdProcesses();
    const restarted = existing.filter((n) => after[n] !== null && JSON.stringify(before[n]) !== JSON.stringify(after[n])).length;
    const counts = live.counts();
    const unsampled = existing.filter((n) => (counts[n] ?? 0) < 10);
    if (unsampled.length) throw new Error(`${name}: too few liveness samples of ${unsampled.join(', ')}: the "down at once" figure would mean nothing`);
    const all = bed.hosts.slice(0, shape.hosts).map((h) => h.name);
    const problems = await checkEndState(bed, { members: all, pids: { expect: expectRestart ? 'changed' : 'unchanged', of: existing } }, before);
    if (problems.length) throw new Error(`${name} did not end in the expected state: ${problems.join('; ')}`);
    const downMs: Record<string, number[]> = {};
    for (const n of existing) downMs[n] = live.downStretches(n).map((s) => (s.to ?? Date.now()) - s.from);
    const snapshots: Record<string, string> = {};
    for (const n of all.filter((x) => !existing.includes(x))) snapshots[n] = snapshotNote(bed, n);
    return { key, name, dataMb: mb, prefill, dbMb, writes, totalMs, restarted, maxDown: live.maxDownAtOnce().count, members: existing.length, downMs, snapshots, result };
  } finally {
    await procedure.cleanup?.();
    await bed.down();
  }
}

/** Kubespray's way, driven with the project's own activities for the parts that are the same (cert, env files, start). */
async function naive(bed: Bed, mb: number, restartBatch: (n: number) => number): Promise<ProcedureResult> {
  const lim = limits(mb);
  const acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
  const run = activityRunner(() => acts);
  const members: Member[] = [...bed.spec.members];
  const catchUpMs: Record<string, number> = {};
  for (const n of NEW) {
    const m = Bed.memberInput(bed.host(n));
    const spec = { ...bed.spec, members: [...members] };
    await run('issueCert', { spec, member: m });
    // no client-side retry: its circuit breaker would turn etcd's "unhealthy cluster" into "circuit breaker is open"
    const c = etcdClient(members.flatMap((x) => x.clientURLs), bed.etcdCredentials, { retry: false, timeoutMs: 10_000 });
    try {
      for (let i = 0; ; i++) {
        try {
          await c.cluster.memberAdd({ peerURLs: m.peerURLs }); // a voting member: quorum grows before it runs
          break;
        } catch (e) {
          if (!/unhealthy cluster/.test(String(e)) || i > 30) throw e; // etcd's 5 s strict-reconfig wait
          await sleep(1000);
        }
      }
    } finally {
      c.close();
    }
    await run('syncConfig', { spec, members: [...members, m], joining: n });
    await run('startMember', { spec, member: m });
    const started = Date.now();
    members.push(m);
    await bed.waitHealthy(lim.healthMs); // caught up: every voter answers and applied indexes within 1000
    catchUpMs[n] = Date.now() - started;
  }
  // The "Reload etcd" handler: every member restarted, in batches.
  await restartHandler(bed, members, restartBatch, mb);
  return { catchUpMs };
}

/** Kubespray's "Reload etcd" handler on its own: every member restarted, `batch(n)` at a time, waiting for health between batches (Kubespray does not). */
async function restartHandler(bed: Bed, members: Member[], batch: (n: number) => number, mb: number): Promise<ProcedureResult> {
  const lim = limits(mb);
  const size = batch(members.length);
  for (let i = 0; i < members.length; i += size) {
    await Promise.all(members.slice(i, i + size).map((m) => sshRun(bed.host(m.name).ssh, bed.sshIdentity, expand(bed.spec.service.restart, m.name), { timeoutMs: lim.commandMs })));
    await bed.waitHealthy(lim.healthMs);
  }
  return {};
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** An etcd-steward workflow through a real Temporal dev server and worker, started before the clock (the workflow bundle is built once per bench). */
function steward(start: (client: StewardClient, bed: Bed) => Promise<Operation<unknown>>, catchUp?: (h: HistoryTimes) => Record<string, number>): Procedure {
  let stop: (() => Promise<void>) | undefined;
  let client: StewardClient | undefined;
  return {
    async prepare(bed) {
      bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('ERROR') });
      const workflowBundle = await bundle;
      const temporal = await startTemporal({ dir: join(tmpdir(), 'etcd-steward-bench-temporal'), port: 37233, uiPort: 38233 });
      const connection = await NativeConnection.connect({ address: temporal.address });
      client = await StewardClient.connect({ address: temporal.address });
      const worker = await createWorker({ connection, namespace: temporal.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials }, workflowBundle });
      const running = worker.run();
      stop = async () => {
        worker.shutdown();
        await running;
        await client?.close();
        await connection.close();
        await temporal.stop();
      };
    },
    async run(bed, mb) {
      const op = await start(client!, bed);
      await within(op.result(), limits(mb).operationMs, 'the workflow', async () => {
        await op.handle.terminate('bench limit reached').catch(() => undefined);
      });
      const history = await op.handle.fetchHistory();
      const times = historyTimes(history);
      return { history: { times, bytes: JSON.stringify(history).length }, ...(catchUp ? { catchUpMs: catchUp(times) } : {}) };
    },
    cleanup: async () => stop?.(),
  };
}

// ---- reading the steward's history ---------------------------------------------------------------

const STEPS = ['gate/observe', 'preflight', 'cert', 'join', 'config-sync', 'start', 'catch-up', 'promote', 'final'] as const;
type Step = (typeof STEPS)[number];
const STEP_OF: Record<string, Step> = {
  observeCluster: 'gate/observe',
  preflightScaleOut: 'preflight',
  issueCert: 'cert',
  addLearner: 'join',
  syncConfig: 'config-sync',
  startMember: 'start',
  awaitCatchUp: 'catch-up',
  promoteLearner: 'promote',
};

interface StepFigures {
  n: number;
  /** Σ scheduled → closed per new member, for the steps that name one. */
  byMember: Record<string, number>;
  /** Time any activity of the step was scheduled or running (activities run at once count once). */
  totalMs: number;
  /** Σ scheduled → started of the final attempt: waiting for a worker slot, plus retry backoff. */
  waitMs: number;
  /** Σ started → closed of the final attempt. */
  runMs: number;
  /** Attempts beyond the first. */
  retries: number;
}

interface Breakdown {
  operationMs: number;
  steps: Record<string, StepFigures>;
  /** No activity scheduled or running: workflow tasks, timers, the client's start. */
  betweenMs: number;
  gaps: number[];
  workflowTasks: number;
  workflowTaskMs: number;
  /** Per added member: etcd's own time. */
  catchUpMs: Record<string, number>;
  reconfigMs: Record<string, number>;
  overheadMs: number;
  overheadPerMemberMs: number;
  retried: string[];
}

const memberOf = (a: ActivitySpan): string | undefined => {
  const i = a.input[0] as { member?: { name?: string }; joining?: string } | undefined;
  return i?.member?.name ?? i?.joining;
};

/**
 * etcd's strict-reconfig window for each member after the first: etcd refuses a membership change
 * until every voter has been connected for 5 s, and the previous new member connected when its
 * start returned. The part of the join that lies before (previous start returned + 5 s) is etcd's.
 */
function reconfigWindows(added: string[], startDone: (m: string) => number | undefined, join: (m: string) => [number, number] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  added.forEach((m, i) => {
    const prev = i > 0 ? startDone(added[i - 1]!) : undefined;
    const j = join(m);
    out[m] = prev === undefined || !j ? 0 : Math.max(0, Math.min(j[1], prev + STRICT_RECONFIG_MS) - j[0]);
  });
  return out;
}

function breakdown(h: HistoryTimes, added: string[]): Breakdown {
  const end = h.workflowClosed ?? NaN;
  const operationMs = end - h.workflowStarted;
  const acts = h.activities.filter((a) => a.closed !== null);
  const lastPromote = Math.max(...acts.filter((a) => a.type === 'promoteLearner').map((a) => a.closed!));
  const steps: Record<string, StepFigures> = {};
  const spans: Record<string, [number, number][]> = {};
  for (const a of acts) {
    const step = a.scheduled > lastPromote ? 'final' : (STEP_OF[a.type] ?? a.type);
    const f = (steps[step] ??= { n: 0, byMember: {}, totalMs: 0, waitMs: 0, runMs: 0, retries: 0 });
    f.n++;
    const m = memberOf(a);
    if (m !== undefined && step !== 'final') f.byMember[m] = (f.byMember[m] ?? 0) + a.closed! - a.scheduled;
    (spans[step] ??= []).push([a.scheduled, a.closed!]);
    f.totalMs = unionMs(spans[step]);
    f.waitMs += (a.started ?? a.closed!) - a.scheduled;
    f.runMs += a.closed! - (a.started ?? a.closed!);
    f.retries += a.attempt - 1;
  }
  const sorted = [...acts].sort((a, b) => a.scheduled - b.scheduled);
  const gaps: number[] = [];
  let cursor = h.workflowStarted;
  for (const a of sorted) {
    if (a.scheduled > cursor) gaps.push(a.scheduled - cursor);
    cursor = Math.max(cursor, a.closed!);
  }
  if (end > cursor) gaps.push(end - cursor);
  const betweenMs = operationMs - unionMs(acts.map((a) => [Math.max(a.scheduled, h.workflowStarted), Math.min(a.closed!, end)]));
  const find = (type: string, m: string) => acts.find((a) => a.type === type && memberOf(a) === m);
  const catchUpMs: Record<string, number> = {};
  for (const m of added) {
    const c = find('awaitCatchUp', m);
    catchUpMs[m] = c ? c.closed! - (c.started ?? c.closed!) : 0;
  }
  const reconfigMs = reconfigWindows(
    added,
    (m) => find('startMember', m)?.closed ?? undefined,
    (m) => {
      const j = find('addLearner', m);
      return j ? [j.scheduled, j.closed!] : undefined;
    },
  );
  const etcdMs = added.reduce((s, m) => s + catchUpMs[m]! + reconfigMs[m]!, 0);
  const wf = h.workflowTasks.filter((t) => t.completed !== null);
  return {
    operationMs,
    steps,
    betweenMs,
    gaps,
    workflowTasks: wf.length,
    workflowTaskMs: wf.reduce((s, t) => s + t.completed! - t.scheduled, 0),
    catchUpMs,
    reconfigMs,
    overheadMs: operationMs - etcdMs,
    overheadPerMemberMs: (operationMs - etcdMs) / added.length,
    retried: acts.filter((a) => a.attempt > 1).map((a) => `${a.type}${memberOf(a) ? `(${memberOf(a)})` : ''} ×${a.attempt}${a.lastFailure ? `: ${a.lastFailure.split('\n')[0]!.slice(0, 90)}` : ''}`),
  };
}

/** The floor's figures under the same definitions, from its own clock. */
function floorFigures(f: FloorReport): { catchUpMs: Record<string, number>; reconfigMs: Record<string, number>; overheadMs: number; overheadPerMemberMs: number } {
  const added = f.members.map((m) => m.name);
  const catchUpMs = Object.fromEntries(f.members.map((m) => [m.name, m.catchUpMs]));
  const at = (m: string) => f.members.find((x) => x.name === m)!.at;
  const reconfigMs = reconfigWindows(
    added,
    (m) => at(m).start[1],
    (m) => at(m).join,
  );
  const etcdMs = added.reduce((s, m) => s + catchUpMs[m]! + reconfigMs[m]!, 0);
  return { catchUpMs, reconfigMs, overheadMs: f.totalMs - etcdMs, overheadPerMemberMs: (f.totalMs - etcdMs) / added.length };
}

// ---- printing ------------------------------------------------------------------------------------

const sec = (ms: number, digits = 1) => `${(ms / 1000).toFixed(digits)}`;

function ratio(x: number, base: number): string {
  if (base === 0) return x === 0 ? '1.00x' : 'n/a (baseline 0)';
  const r = x / base;
  return `${r === 0 || r >= 0.01 ? r.toFixed(2) : r.toPrecision(2)}x`;
}

const BASELINE_NOTE =
  'The baselines wait for cluster health after each step and between restart batches, where Kubespray does not:\n' +
  'that flatters them, so every ratio against them here is conservative.';

const OVERHEAD_DEFINITION = [
  'overhead = operation time − the time etcd itself needed, where',
  '  operation time  steward: WorkflowExecutionStarted → WorkflowExecutionCompleted (history); floor: its whole run',
  '  etcd’s time     Σ over new members of',
  '                  catch-up: the learner loading the data and reaching the leader’s applied index',
  '                    (steward: awaitCatchUp ActivityTaskStarted → Completed, sampled every 100 ms;',
  '                     floor: start returned → 2nd in-sync sample, sampled every 100 ms), and',
  '                  strict-reconfig window: etcd refuses a membership change until every voter has been',
  '                    connected for 5 s; the part of a join before (previous new member\'s start returned + 5 s)',
  '  overhead per member = overhead ÷ members added. Everything else is overhead: preflight, gates, certificates,',
  '  env files, SSH, the service start, retry backoff, task queues and workflow tasks.',
].join('\n');

function printRun(r: Run, base: Run): void {
  const w = r.writes;
  console.log(r.name);
  console.log(`  writes: ${w.ok} ok, ${w.failed} failed${w.late ? ` (${w.late} late: succeeded past their deadline)` : ''} (${ratio(w.failed, base.writes.failed)} of baseline)${w.stoppedItself ? '; THE LOAD HIT ITS LIMIT AND STOPPED ITSELF' : ''}`);
  if (w.failed > 0 && (r.key === 'steward' || r.key === 'floor')) console.log(`  FAILED WRITES (0 expected here): ${w.errors.join(' | ')}`);
  console.log(`  longest write gap: ${w.longestGapMs} ms (${ratio(w.longestGapMs, base.writes.longestGapMs)})`);
  console.log(`  write latency: p50 ${w.p50Ms} ms (${ratio(w.p50Ms, base.writes.p50Ms)}), p99 ${w.p99Ms} ms (${ratio(w.p99Ms, base.writes.p99Ms)})`);
  console.log(`  total time: ${sec(r.totalMs)} s (${ratio(r.totalMs, base.totalMs)})`);
  console.log(`  of the ${r.members} members at the start: restarted (pid changed) ${r.restarted}; most seen down at once ${r.maxDown} (${ratio(r.maxDown, base.maxDown)})`);
  const restarts = Object.entries(r.downMs).filter(([, d]) => d.length > 0);
  if (restarts.length) console.log(`  member restarts, stop → ready (down stretches seen every ~100 ms): ${restarts.map(([n, d]) => `${n} ${d.map((x) => sec(x, 2)).join('+')} s`).join(', ')}`);
  const cu = r.result.catchUpMs;
  if (cu) console.log(`  catch-up: ${Object.entries(cu).map(([n, ms]) => `${n} ${sec(ms, 2)} s`).join(', ')}${r.key === 'naive' || r.key === 'throttled' ? ' (start → cluster healthy)' : ''}`);
  const snaps = Object.entries(r.snapshots);
  if (snaps.length) console.log(`  new members' etcd logs: ${snaps.map(([n, s]) => `${n}: ${s}`).join('; ')}`);
}

function catchUpOf(r: Run): number | undefined {
  const cu = r.result.catchUpMs;
  return cu ? Object.values(cu).reduce((a, b) => a + b, 0) : undefined;
}

function maxRestart(r: Run): number {
  return Math.max(0, ...Object.values(r.downMs).flat());
}

async function runCases(title: string, cases: [string, string, () => Procedure, boolean][], mb: number, shape: { hosts: number; members: number }): Promise<Run[]> {
  console.log(title);
  console.log(BASELINE_NOTE);
  const runs: Run[] = [];
  for (const [key, name, f, expectRestart] of cases.filter(([k]) => opts.cases.includes(k))) {
    process.stdout.write(`${name} ... `);
    const r = await measure(key, name, f(), mb, shape, expectRestart);
    runs.push(r);
    console.log(`done in ${sec(r.totalMs)} s${r.prefill ? ` (prefill: ${r.prefill.keys} keys, ${(r.prefill.bytes / 1048576).toFixed(0)} MB of values in ${sec(r.prefill.ms)} s; db ${r.dbMb.toFixed(0)} MB)` : ''}`);
  }
  console.log('');
  const base = runs[0];
  if (base) for (const r of runs) printRun(r, base);
  const restarts = runs.filter((r) => r.key === 'naive' || r.key === 'throttled');
  if (restarts.length) {
    const stat = (r: Run) => {
      const d = Object.values(r.downMs).flat().sort((a, b) => a - b);
      return d.length ? `median ${sec(d[Math.floor((d.length - 1) / 2)]!, 2)} s, max ${sec(d.at(-1)!, 2)} s (${d.length} restarts)` : 'none seen';
    };
    console.log(`member restart, stop → ready, at ${mb} MB (the baselines' restarts of the members there at the start, seen by the liveness sampler): ${restarts.map((r) => `${r.key === 'naive' ? 'all at once' : 'floor(n/2) at a time'}: ${stat(r)}`).join('; ')}`);
  }
  console.log('');
  return runs;
}

function printWhereTimeGoes(steward: Run | undefined, floor: Run | undefined): void {
  const h = steward?.result.history;
  const f = floor?.result.floor;
  if (!h && !f) return;
  console.log('where the time goes (seconds; a step\'s figure is the time it was under way, so steps run at once for both members count once)');
  console.log(OVERHEAD_DEFINITION);
  const b = h ? breakdown(h.times, NEW) : undefined;
  const ff = f ? floorFigures(f) : undefined;
  const each = (byMember: Record<string, number> | undefined) => (byMember && Object.keys(byMember).length ? NEW.map((m) => sec(byMember[m] ?? 0, 2)).join(' + ') : '');
  const row = (label: string, s: string, sEach: string, fl: string, flEach: string, note = '') =>
    console.log(`  ${label.padEnd(20)}${s.padStart(8)}  ${sEach.padEnd(13)}${fl.padStart(8)}  ${flEach.padEnd(13)} ${note}`);
  row('step', 'steward', NEW.join(' + '), 'floor', NEW.join(' + '), 'steward: activities, Σ scheduled→started (task queue, retry backoff) / Σ started→closed, retries');
  for (const step of STEPS) {
    const s = b?.steps[step];
    const fs = (FLOOR_STEPS as readonly string[]).includes(step) ? (step as keyof FloorMember['at']) : undefined;
    const flEach = fs && f ? Object.fromEntries(f.members.map((m) => [m.name, m.at[fs][1] - m.at[fs][0]])) : undefined;
    row(
      step,
      s ? sec(s.totalMs, 2) : '-',
      each(s?.byMember),
      fs && f ? sec(f.steps[fs], 2) : '-',
      each(flEach),
      s ? `${s.n}, ${sec(s.waitMs, 2)} / ${sec(s.runMs, 2)}${s.retries ? `, ${s.retries} retries` : ''}` : '',
    );
  }
  for (const [step, s] of Object.entries(b?.steps ?? {}).filter(([k]) => !(STEPS as readonly string[]).includes(k))) row(step, sec(s.totalMs, 2), each(s.byMember), '-', '', `${s.n}`);
  row('connect (floor)', '-', '', f ? sec(f.steps.connect, 2) : '-', '', 'floor: one SSH connection per host opened; env files and ca.pem read once');
  if (b) {
    const maxGap = Math.max(0, ...b.gaps);
    row(
      'between activities',
      sec(b.betweenMs, 2),
      '',
      f ? sec(f.totalMs - FLOOR_STEPS.reduce((x, k) => x + f.steps[k], 0), 2) : '-',
      '',
      `no activity scheduled or running: ${b.gaps.length} gaps, mean ${Math.round(b.betweenMs / Math.max(1, b.gaps.length))} ms, max ${maxGap} ms; ${b.workflowTasks} workflow tasks, Σ scheduled→completed ${sec(b.workflowTaskMs, 2)} s`,
    );
  }
  row('operation', b ? sec(b.operationMs, 2) : '-', '', f ? sec(f.totalMs, 2) : '-', '', 'steward: WorkflowExecutionStarted → Completed');
  const line = (label: string, x: { catchUpMs: Record<string, number>; reconfigMs: Record<string, number>; overheadMs: number; overheadPerMemberMs: number }) =>
    console.log(
      `  ${label}: etcd's time ${NEW.map((m) => `${m} catch-up ${sec(x.catchUpMs[m] ?? 0, 2)} s + strict-reconfig ${sec(x.reconfigMs[m] ?? 0, 2)} s`).join(', ')}; overhead ${sec(x.overheadMs, 2)} s = ${sec(x.overheadPerMemberMs, 2)} s per member`,
    );
  if (b) line('steward', b);
  if (ff) line('floor  ', ff);
  if (steward && floor) console.log(`  steward ÷ floor, whole operation (bench clock, same for both): ${(steward.totalMs / floor.totalMs).toFixed(2)} (${sec(steward.totalMs)} s vs ${sec(floor.totalMs)} s)`);
  if (b && ff) console.log(`  steward ÷ floor, overhead only (etcd's time taken out of both, as defined above): ${(b.overheadMs / ff.overheadMs).toFixed(2)}`);
  if (f) console.log(`  floor: ${f.sshConnections} SSH connections, ${f.sshExecs} commands over them`);
  if (b?.retried.length) console.log(`  steward activities retried: ${b.retried.join('; ')}`);
  if (h) console.log(`  steward history: ${h.times.events} events, ${(h.bytes / 1024).toFixed(0)} KB (${Math.round(h.times.events / NEW.length)} events, ${(h.bytes / 1024 / NEW.length).toFixed(0)} KB per member added)`);
  console.log('');
}

// ---- the machine-readable lines ------------------------------------------------------------------

function seg(r: Run | undefined, key: string, fields: (r: Run) => string[]): string {
  if (!r) return `${key} not run`;
  return [key, `failed=${r.writes.failed}`, `gap=${r.writes.longestGapMs}ms`, ...fields(r)].join(' ');
}

function scaleOutLine(mb: number, runs: Run[]): string {
  const get = (k: string) => runs.find((r) => r.key === k);
  const floor = get('floor');
  const cu = (r: Run) => (catchUpOf(r) !== undefined ? [`catchup=${sec(catchUpOf(r)!, 2)}s`] : []);
  const s = seg(get('steward'), 'steward', (r) => {
    const b = r.result.history ? breakdown(r.result.history.times, NEW) : undefined;
    return [`overhead_per_member=${b ? sec(b.overheadPerMemberMs, 2) : 'n/a'}s`, `ratio_to_floor=${floor ? (r.totalMs / floor.totalMs).toFixed(2) : 'n/a'}`, `total=${sec(r.totalMs)}s`, ...cu(r)];
  });
  const f = seg(floor, 'floor', (r) => [`total=${sec(r.totalMs)}s`, `overhead_per_member=${r.result.floor ? sec(floorFigures(r.result.floor).overheadPerMemberMs, 2) : 'n/a'}s`, ...cu(r)]);
  const base = (k: string) => seg(get(k), k, (r) => [`total=${sec(r.totalMs)}s`, ...cu(r), `restart_max=${sec(maxRestart(r), 2)}s`]);
  return `bench: ${versionTag()}${mb}MB ${s} | ${f} | ${base('naive')} | ${base('throttled')}`;
}

function restartLine(n: number, runs: Run[]): string {
  const get = (k: string) => runs.find((r) => r.key === k);
  const fields = (r: Run) => [`maxdown=${r.maxDown}`, `total=${sec(r.totalMs)}s`, `restart_max=${sec(maxRestart(r), 2)}s`];
  return `bench: ${versionTag()}restart ${n} members ${seg(get('steward'), 'steward', fields)} | ${seg(get('naive'), 'all-at-once', fields)} | ${seg(get('throttled'), 'throttled', fields)}`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const lines: string[] = [];
  const catchUps: string[] = [];
  console.log(`bench: data sizes ${DATA_SIZES.join(', ')} MB; rolling restart of ${opts.restartSizes.join(', ') || 'no'} members at ${RESTART_MB} MB; ${opts.rate} writes/s; cases ${opts.cases.join(', ')}`);
  console.log('prefill: Kubernetes-like keys /registry/<resource>/<ns>/<name>, each written once (one revision per key), values 0.5–5 KiB uniform; 256 writes in flight over 4 connections to the leader\n');
  for (const version of VERSIONS) {
    currentVersion = version;
    if (VERSIONS.length > 1) console.log(`\n==== etcd ${version} ====\n`);
    for (const mb of DATA_SIZES) {
      const runs = await runCases(
        `bench: 3 → 5 on identical fresh clusters, ${versionTag()}${mb} MB of data, ${opts.rate} writes/s`,
        [
          ['naive', 'baseline (voting add + restart all at once)', () => ({ run: (b, m) => naive(b, m, (n) => n) }), true],
          ['throttled', 'throttled (voting add + restart floor(n/2) at a time)', () => ({ run: (b, m) => naive(b, m, (n) => Math.max(1, Math.floor(n / 2))) }), true],
          [
            'floor',
            'floor (learners, straight-line script, one SSH connection per host, no Temporal)',
            () => ({
              run: async (b, m) => {
                const floor = await floorScaleOut({ spec: b.spec, add: NEW.map((n) => Bed.memberInput(b.host(n))), ssh: b.sshIdentity, etcd: b.etcdCredentials, catchUpLimitMs: limits(m).operationMs });
                return { floor, catchUpMs: Object.fromEntries(floor.members.map((m) => [m.name, m.catchUpMs])) };
              },
            }),
            false,
          ],
          ['steward', 'steward (scaleOut workflow: learners, no restart)', () => steward((client, b) => client.startScaleOut({ spec: b.spec, add: NEW.map((n) => Bed.memberInput(b.host(n))) }), (h) => breakdown(h, NEW).catchUpMs), false],
        ],
        mb,
        { hosts: 5, members: 3 },
      );
      printWhereTimeGoes(
        runs.find((r) => r.key === 'steward'),
        runs.find((r) => r.key === 'floor'),
      );
      lines.push(scaleOutLine(mb, runs));
      const cu = (k: string) => {
        const r = runs.find((x) => x.key === k);
        const v = r ? catchUpOf(r) : undefined;
        return v === undefined ? '-' : `${sec(v, 2)} s`;
      };
      catchUps.push(`${versionTag()}${mb} MB: ${cu('steward')} / ${cu('floor')} / ${cu('naive')}`);
    }
    for (const n of opts.restartSizes) {
      const runs = await runCases(
        `bench: rolling restart of ${n} members on identical fresh clusters, ${versionTag()}${RESTART_MB} MB of data, ${opts.rate} writes/s`,
        [
          ['naive', 'all at once (restart every member together)', () => ({ run: (b, m) => restartHandler(b, b.spec.members, (k) => k, m) }), true],
          ['throttled', "throttled (Kubespray's floor(n/2) at a time)", () => ({ run: (b, m) => restartHandler(b, b.spec.members, (k) => Math.max(1, Math.floor(k / 2)), m) }), true],
          ['steward', 'steward (rollingRestart, leader last)', () => steward((client, b) => client.startRollingRestart({ spec: b.spec, reason: 'bench' })), true],
        ],
        RESTART_MB,
        { hosts: n, members: n },
      );
      lines.push(restartLine(n, runs));
    }
  }
  if (catchUps.length > 1) console.log(`catch-up of both new members by data size (steward / floor / naive): ${catchUps.join('; ')}\n`);
  for (const l of lines) console.log(l);
  console.log(`bench: total run time ${sec(Date.now() - started)} s (${new Date().toISOString()})`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
