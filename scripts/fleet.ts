/**
 * `npm run bench:fleet`: one worker, many clusters scaled out at once (issue 8, "Scale of fleet").
 *
 * Brings up N test-bed clusters (3 members + 2 spare hosts each, cluster i on 127.40.<i>.x, its
 * files in $TMPDIR/etcd-steward-fleet/<i>), all sharing ONE worker identity (one SSH key, one etcd
 * CA, one etcd client certificate: Bed's `secretsFrom`), a Temporal dev server (127.0.0.1:47233,
 * Web UI 48233), and ONE worker in a child process of its own (`node --import tsx worker/main.ts`,
 * configured from the environment like any worker, with a workflow bundle made ahead so its
 * figures are the steady state's, not webpack's). Puts a small prefill and a steady write load on
 * every cluster, starts N scaleOut workflows (3 → 5) at once through the typed client, and waits for
 * all of them under a hard limit (after which the ones still running are terminated and count as
 * not completed).
 *
 * Observed, not taken from the workflows' word: each cluster's member list (5 voters, no learner)
 * and its existing members' etcd pids (restarted or not); the worker process's RSS and CPU time
 * (/proc) and its open TCP connections to sshd (port 2222) and etcd client (2379) ports (its socket
 * inodes matched against `ss`), every 500 ms; each operation's duration and history size from its
 * history (server event times); what the writers saw in a window over the operations, beside the
 * same load in a window before them with no operation; where the machine's CPU went (/proc), and
 * etcd's own slow-request warnings and leader elections (its logs). A figure with no samples is a
 * failure, not 0. Every process it starts is stopped at the end, on failure and on Ctrl-C too.
 *
 * On a 2-core machine the beds (100 sshd, 100 etcd at 20 clusters) saturate the CPU, and the
 * kernel's autogroup scheduling gives each session (every etcd member, every SSH session) an equal
 * share: the writers (this process) and the worker, which stand for processes on machines of their
 * own, are raised above the beds (see raisePriority), or they starve and their own delays count
 * as failed writes and timed-out SSH handshakes.
 *
 * The worker's limits (STEWARD_MAX_CONCURRENT_ACTIVITIES, STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS,
 * STEWARD_MAX_CACHED_WORKFLOWS, STEWARD_SSH_MAX_CONNECTIONS) are passed on from this process's environment when set.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, setPriority, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { type Operation, StewardClient, type ScaleOutResult } from '../client';
import { Bed } from '../testbed';
import { historyTimes } from '../testbed/history';
import { type LoadReport, type LoadWindow, WriteLoad } from '../testbed/load';
import { readRecorded, record, sleep, socketInodes, stopProcesses } from '../testbed/procs';
import { startTemporal, type TemporalServer } from '../testbed/temporal';
import { WORKER_LIMIT_DEFAULTS } from '../worker/config';
import { writeWorkflowBundle } from './bundle';

const execFileP = promisify(execFile);

const int = (what: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${what} must be a whole number from ${min} to ${max}, not "${v}"`);
  return n;
};
const opts = new Command('bench:fleet')
  .description('one worker, N clusters scaled out 3 → 5 at once, each under its own write load')
  .option('--clusters <n>', 'clusters (each 3 members + 2 spare hosts, on 127.40.<i>.x)', int('--clusters', 1, 250), 20)
  .option('--data-mb <m>', 'data written to each cluster before the scale-out, MB', int('--data-mb', 0, 1000), 2)
  .option('--writes-per-s <w>', 'writes per second on each cluster during the scale-out', int('--writes-per-s', 0, 1000), 10)
  .option('--limit-min <n>', 'hard limit for all the operations, minutes: still running then → terminated, not completed', int('--limit-min', 1, 240), 20)
  .option('--baseline-s <n>', 'seconds of the same load with no operation, measured before the operations start', int('--baseline-s', 0, 600), 20)
  .option('--no-raise-worker', "leave the worker at the beds' priority (default: raised like the writers, as if on a machine of its own)")
  .option('--up-parallel <n>', 'clusters brought up at once', int('--up-parallel', 1, 32), 4)
  .parse()
  .opts<{ clusters: number; dataMb: number; writesPerS: number; limitMin: number; baselineS: number; raiseWorker: boolean; upParallel: number }>();

const N = opts.clusters;
const ROOT = join(tmpdir(), 'etcd-steward-fleet');
const SECRETS = join(ROOT, 'worker-secrets');
const BUNDLE = join(ROOT, 'workflow-bundle.js');
const WORKER_LOG = join(ROOT, 'worker.log');
const TEMPORAL_PORT = 47233;
const UI_PORT = 48233;
const REPO = resolve(__dirname, '..');
const NEW = ['etcd4', 'etcd5'];
const EXISTING = ['etcd1', 'etcd2', 'etcd3'];
const SSH_PORT = 2222;
const ETCD_CLIENT_PORT = 2379;
/** etcd refuses a membership change until every voter has been connected for 5 s (strict reconfig check). */
const STRICT_RECONFIG_MS = 5_000;
const LIMIT_MS = opts.limitMin * 60_000;
const LIMIT_VARS = ['STEWARD_MAX_CONCURRENT_ACTIVITIES', 'STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS', 'STEWARD_MAX_CACHED_WORKFLOWS', 'STEWARD_SSH_MAX_CONNECTIONS'] as const;

Runtime.install({ logger: new DefaultLogger('ERROR') });

const t0 = Date.now();
const secs = (ms: number, digits = 1) => (ms / 1000).toFixed(digits);
const say = (line: string) => console.log(`[${secs(Date.now() - t0).padStart(6)} s] ${line}`);
const bedDir = (i: number) => join(ROOT, String(i));

// ---- what runs, for the cleanup (also on Ctrl-C) ------------------------------------------------

const loads: WriteLoad[] = [];
let temporal: TemporalServer | undefined;
let worker: ChildProcess | undefined;
let steward: StewardClient | undefined;
let sampler: Sampler | undefined;
let cleaning: Promise<void> | undefined;

const WORKER_MARK = 'worker/main.ts';

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    restorePriority();
    sampler?.stop();
    await Promise.all(loads.map((l) => l.stop().catch(() => undefined)));
    await steward?.close().catch(() => undefined);
    if (worker?.pid !== undefined) await stopProcesses([{ pid: worker.pid, what: 'fleet worker', mark: WORKER_MARK }], 15_000);
    await temporal?.stop().catch((e: unknown) => console.error(`stopping Temporal: ${String(e)}`));
    // every bed directory, up or half up (Bed.up records its processes as it starts them)
    for (let i = 1; i <= N; i += 8) await Promise.all(Array.from({ length: Math.min(8, N - i + 1) }, (_, k) => Bed.cleanStale(bedDir(i + k)).catch((e: unknown) => console.error(`cleaning ${bedDir(i + k)}: ${String(e)}`))));
    rmSync(ROOT, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping everything the fleet bench started ...`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- the worker process and what /proc says about it ----------------------------------------------

/** The worker in a child process of its own, configured from the environment as `npm run worker` is. */
async function startWorker(address: string, secrets: Bed['secretFiles']): Promise<ChildProcess> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TMPDIR: process.env.TMPDIR,
    TEMPORAL_ADDRESS: address,
    STEWARD_SSH_KEY: secrets.sshKey,
    STEWARD_ETCD_CA: secrets.etcdCa,
    STEWARD_ETCD_CERT: secrets.etcdCert,
    STEWARD_ETCD_KEY: secrets.etcdKey,
    STEWARD_WORKFLOW_BUNDLE: BUNDLE,
  };
  for (const v of LIMIT_VARS) if (process.env[v] !== undefined) env[v] = process.env[v];
  const fd = openSync(WORKER_LOG, 'a');
  // node itself, not the tsx CLI (which would run the worker in a second process)
  const child = spawn(process.execPath, ['--import', 'tsx', '--disable-warning=DEP0123', WORKER_MARK], { cwd: REPO, env, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error('cannot start the worker process');
  record(ROOT, { pid: child.pid, what: 'fleet worker', mark: WORKER_MARK });
  const deadline = Date.now() + 60_000;
  while (!/polling task queue/.test(readFileSync(WORKER_LOG, 'utf8'))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the worker did not start (exit ${child.exitCode}):\n${readFileSync(WORKER_LOG, 'utf8').slice(-2000)}`);
    await sleep(100);
  }
  return child;
}

const CLK_TCK = 100; // `getconf CLK_TCK` on Linux

/** utime, stime, cutime, cstime of a pid, in ticks; null when it is gone. */
function cpuTicks(pid: number): { own: number; children: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    return { own: f[11]! + f[12]!, children: f[13]! + f[14]! };
  } catch {
    return null;
  }
}

function rssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Every process's children, from one pass over /proc. */
function processTree(): Map<number, number[]> {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = kids.get(ppid);
      if (list) list.push(Number(d));
      else kids.set(ppid, [Number(d)]);
    } catch {
      /* gone */
    }
  }
  return kids;
}

/** A process's children from the kernel's own list (/proc/<pid>/task/<tid>/children): no pass over /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* gone */
    }
  }
  return out;
}

function descendants(pid: number, tree?: Map<number, number[]>): number[] {
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const c of tree ? (tree.get(p) ?? []) : childrenOf(p)) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

/**
 * Connected TCP sockets to these remote ports, by port: (inode, port) pairs from `ss` (netlink,
 * filtered in the kernel; reading /proc/net/tcp instead walks every socket of the machine, which
 * with 100 etcd members costs this process ~150 ms a sample), asked without blocking the event loop.
 */
async function tcpToPorts(ports: number[]): Promise<{ inode: string; port: number }[]> {
  const { stdout } = await execFileP('ss', ['-tnHe', `( ${ports.map((p) => `dport = :${p}`).join(' or ')} )`], { maxBuffer: 64 * 1024 * 1024 });
  const out: { inode: string; port: number }[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    const inode = /\bino:(\d+)/.exec(line)?.[1];
    const port = Number(/:(\d+)$/.exec(f[4] ?? '')?.[1]);
    if (inode && inode !== '0' && ports.includes(port)) out.push({ inode, port });
  }
  return out;
}

/** CPU seconds of a process and its reaped children (an sshd listener's include its finished sessions and their shells); 0 when gone. */
function cpuSecondsOf(pid: number | null | undefined): number {
  if (pid === null || pid === undefined) return 0;
  const c = cpuTicks(pid);
  return c ? (c.own + c.children) / CLK_TCK : 0;
}

/** Busy and total CPU seconds of the whole machine since boot (/proc/stat; idle and iowait are not busy). */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - f[3]! - f[4]!) / CLK_TCK, total: total / CLK_TCK };
}

/** Where the machine's CPU time went so far: the beds' sshd (with their sessions and shells), etcd, Temporal, this process. */
function cpuAccount(beds: Bed[], temporalPid: number | undefined): Record<'machine' | 'sshd' | 'etcd' | 'temporal' | 'bench', number> {
  let sshd = 0;
  let etcd = 0;
  const tree = processTree();
  for (const b of beds) {
    // the listener with its reaped sessions, plus the sessions (and shells) still open
    for (const r of readRecorded(b.dir).filter((x) => x.what.startsWith('sshd of'))) sshd += [r.pid, ...descendants(r.pid, tree)].reduce((x, p) => x + cpuSecondsOf(p), 0);
    for (const h of b.hosts) etcd += cpuSecondsOf(b.etcdPid(h.name));
  }
  const u = process.cpuUsage();
  return { machine: machineCpu().busy, sshd, etcd, temporal: cpuSecondsOf(temporalPid), bench: (u.user + u.system) / 1e6 };
}

interface Figure {
  samples: number;
  peak: number;
  last: number;
}

const figure = (): Figure => ({ samples: 0, peak: 0, last: 0 });
function add(f: Figure, v: number): void {
  f.samples++;
  f.peak = Math.max(f.peak, v);
  f.last = v;
}

/** The worker process (and any children) every `everyMs`: RSS, CPU time, connections to sshd and etcd. */
class Sampler {
  readonly rssKb = figure();
  /** CPU seconds since the worker started (own + children's, living and reaped). */
  readonly cpuS = figure();
  readonly ssh = figure();
  readonly etcd = figure();
  readonly failures: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly marks = new Map<string, number>();
  constructor(
    private readonly pid: number,
    everyMs = 500,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.sample();
  }
  /** What sampling cost this process (it runs on the event loop the writers share). */
  readonly cost = { n: 0, totalMs: 0, maxMs: 0 };
  private sample(): void {
    const t = performance.now();
    try {
      this.sampleNow();
    } finally {
      const ms = performance.now() - t;
      this.cost.n++;
      this.cost.totalMs += ms;
      this.cost.maxMs = Math.max(this.cost.maxMs, ms);
    }
  }
  private sampleNow(): void {
    const pids = [this.pid, ...descendants(this.pid)];
    let rss = 0;
    let ticks = 0;
    let seen = false;
    for (const p of pids) {
      const r = rssKb(p);
      const c = cpuTicks(p);
      if (r === null || c === null) continue;
      seen = true;
      rss += r;
      ticks += c.own + (p === this.pid ? c.children : 0);
    }
    if (!seen) {
      if (this.failures.length < 5) this.failures.push(`worker pid ${this.pid} not readable at ${secs(Date.now() - t0)} s`);
      return;
    }
    add(this.rssKb, rss);
    add(this.cpuS, ticks / CLK_TCK);
    if (this.connections) return; // the last one still running
    this.connections = tcpToPorts([SSH_PORT, ETCD_CLIENT_PORT])
      .then((socks) => {
        const inodes = new Set([this.pid, ...descendants(this.pid)].flatMap((p) => [...socketInodes(p)]));
        const mine = socks.filter((x) => inodes.has(x.inode));
        add(this.ssh, mine.filter((x) => x.port === SSH_PORT).length);
        add(this.etcd, mine.filter((x) => x.port === ETCD_CLIENT_PORT).length);
      })
      .catch((e: unknown) => {
        if (this.failures.length < 5) this.failures.push(`connections of pid ${this.pid}: ${(e as Error).message}`);
      })
      .finally(() => (this.connections = undefined));
  }
  private connections: Promise<void> | undefined;
  /** Takes a sample now and remembers the CPU time under `name`. */
  mark(name: string): number {
    this.sample();
    this.marks.set(name, this.cpuS.last);
    return this.cpuS.last;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

// ---- this process's priority ---------------------------------------------------------------------

const AUTOGROUP = '/proc/self/autogroup';
let autogroupWas: string | undefined;

const autogroups = () => existsSync(AUTOGROUP) && readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';

/**
 * This process holds the writers (clients that stand for API servers on machines of their own) and
 * the sampler: on a machine the beds saturate it must not starve, or its own delays would count as
 * failed writes. With the kernel's autogroup scheduling (on by default) each session is scheduled
 * as one group, whatever its processes' nice values: every sshd session and every etcd member is a
 * session of its own, so at 20 clusters a session gets about 1/100 of the CPU. So this process's
 * session group is raised (undone at the end), and its own threads; and the worker's likewise (a
 * session of its own), unless --no-raise-worker: in production it runs on a machine of its own,
 * and starved of CPU here its SSH handshakes time out. What else it started (sshd, etcd, Temporal:
 * each a session of its own) keeps the normal priority.
 */
function raisePriority(workerPid: number | undefined): string {
  const done: string[] = [];
  const raise = (pid: number | 'self') => {
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), -20); // nice is per thread
    if (autogroups()) writeFileSync(`/proc/${pid}/autogroup`, '-20');
  };
  try {
    if (autogroups()) autogroupWas = /nice (-?\d+)/.exec(readFileSync(AUTOGROUP, 'utf8'))?.[1];
    raise('self');
    done.push('this bench process (writers, sampler)');
    if (workerPid !== undefined) {
      raise(workerPid);
      done.push('the worker');
    }
    return `${done.join(' and ')}: threads at nice -20${autogroups() ? ', and the scheduling group (autogroup) of its session at nice -20' : ''}; what else it started (sshd, etcd, Temporal) keeps nice 0, each in a scheduling group of its own`;
  } catch (e) {
    return `cannot raise the priority of ${workerPid !== undefined && done.length ? 'the worker' : 'this bench process'} (${(e as Error).message}; raised: ${done.join(', ') || 'nothing'}): on a saturated machine its own delays count against the figures`;
  }
}

function restorePriority(): void {
  if (autogroupWas === undefined) return;
  try {
    writeFileSync(AUTOGROUP, autogroupWas);
  } catch {
    /* the session keeps -20 until it ends */
  }
}

// ---- the run -------------------------------------------------------------------------------------

interface ClusterRun {
  i: number;
  bed: Bed;
  load: WriteLoad;
  before: ReturnType<Bed['etcdProcesses']>;
  op?: Operation<ScaleOutResult>;
  outcome: string;
  error?: string;
  terminated: boolean;
  opMs?: number;
  events?: number;
  bytes?: number;
  retries?: number;
  /** Per activity type: Σ scheduled → started of the final attempt (waiting for a worker slot, retry backoff) and Σ started → closed, ms. */
  steps?: Record<string, { n: number; waitMs: number; runMs: number }>;
  voters?: number;
  learners?: number;
  healthy?: boolean;
  restarted: string[];
  /** What the writers saw from just before the operations started until 2 s after the last one ended. */
  writes?: LoadReport;
  window?: LoadWindow;
  /** The load's whole run (from its cluster's bring-up). */
  whole?: LoadReport;
  elections: number;
  /** etcd's "took too long" warnings during the operations. */
  slow: number;
}

/** Runs `f` on 1..n, `parallel` at a time. */
async function pool<T>(n: number, parallel: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 1;
  let failed: unknown;
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next <= n && failed === undefined) {
        const i = next++;
        try {
          out[i - 1] = await f(i);
        } catch (e) {
          failed ??= e;
        }
      }
    }),
  );
  if (failed !== undefined) throw failed;
  return out;
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN;
}

/**
 * Lines of a cluster's etcd logs that match `what`, from `since` on (to the second), e.g. leader
 * elections: raft's own `raft2026/11/26 09:54:05 INFO: <id> became leader at term N` (Go's log,
 * local time), or capnslog's `2026-11-26 09:54:05.123456 I | raft: <id> became leader at term N`.
 */
function countLog(bed: Bed, since: number, what: RegExp): number {
  const from = Math.floor(since / 1000) * 1000;
  let n = 0;
  for (const h of bed.hosts) {
    const f = join(h.root, 'log', 'etcd.log');
    if (!existsSync(f)) continue;
    for (const l of readFileSync(f, 'utf8').split('\n')) {
      if (!what.test(l)) continue;
      const m = /^(?:raft)?(\d{4})[/-](\d\d)[/-](\d\d) (\d\d:\d\d:\d\d)/.exec(l);
      if (!m) throw new Error(`cannot read the time of this etcd log line: ${l}`);
      if (Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`) >= from) n++;
    }
  }
  return n;
}

async function main(): Promise<number> {
  console.log(
    `bench: fleet: ${N} clusters (3 members + 2 spare hosts each), one worker for all; ${opts.dataMb} MB prefill and ${opts.writesPerS} writes/s per cluster; all ${N} scale-outs 3 → 5 started at once, limit ${opts.limitMin} min`,
  );
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average ${loadavg()} (1, 5, 15 min) before the bench`);
  await stopProcesses(readRecorded(ROOT)); // a worker left behind by a killed run
  for (let i = 1; i <= N; i++) await Bed.cleanStale(bedDir(i));
  rmSync(ROOT, { recursive: true, force: true });
  mkdirSync(ROOT, { recursive: true });

  await writeWorkflowBundle(BUNDLE);
  await Bed.sharedSecrets(SECRETS);
  temporal = await startTemporal({ dir: join(ROOT, 'temporal'), port: TEMPORAL_PORT, uiPort: UI_PORT });
  say(`workflow bundle made, shared worker identity made, Temporal up at ${temporal.address} (Web UI ${temporal.uiUrl})`);

  const upAt: number[] = [];
  const clusters = await pool(N, opts.upParallel, async (i) => {
    const bed = await Bed.up({ hosts: 5, members: 3, net: `127.40.${i}`, dir: bedDir(i), name: `fleet-${i}`, secretsFrom: SECRETS });
    upAt.push(Date.now());
    // bounded: bring-up of the others, the operations' limit, and the end
    const load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials, rate: opts.writesPerS, maxDurationMs: LIMIT_MS + 10 * 60_000 + N * 20_000 });
    loads.push(load);
    if (opts.dataMb > 0) await load.prefill(opts.dataMb, undefined, { concurrency: 32, clients: 1 });
    load.start(); // from now on: its client connected and steady before the operations' window opens
    say(`cluster ${i}/${N} up on 127.40.${i}.1-5${opts.dataMb ? `, ${opts.dataMb} MB written` : ''}, ${opts.writesPerS} writes/s`);
    const run: ClusterRun = { i, bed, load, before: {}, outcome: 'not started', terminated: false, restarted: [], elections: 0, slow: 0 };
    return run;
  });
  const mem = readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(mem)?.[1] ?? NaN);
  say(`all ${N} clusters up: ${N * 5} sshd, ${N * 3} etcd; memory available ${(kb('MemAvailable') / 2 ** 20).toFixed(1)} of ${(kb('MemTotal') / 2 ** 20).toFixed(1)} GiB`);

  const secrets = clusters[0]!.bed.secretFiles;
  if (clusters.some((c) => JSON.stringify(c.bed.secretFiles) !== JSON.stringify(secrets))) throw new Error('the clusters do not share one worker identity');
  worker = await startWorker(temporal.address, secrets);
  sampler = new Sampler(worker.pid!);
  steward = await StewardClient.connect({ address: temporal.address });
  const limits = LIMIT_VARS.map((v) => `${v}=${process.env[v] ?? `(unset: SDK default ${v.endsWith('ACTIVITIES') ? WORKER_LIMIT_DEFAULTS.maxConcurrentActivityTaskExecutions : v.endsWith('TASKS') ? WORKER_LIMIT_DEFAULTS.maxConcurrentWorkflowTaskExecutions : WORKER_LIMIT_DEFAULTS.maxCachedWorkflows})`}`);
  say(`worker up as pid ${worker.pid} (its own process; log ${WORKER_LOG}); ${limits.join(', ')}`);

  // Every cluster's voters connected for more than etcd's 5 s, so no start meets a strict-reconfig refusal the others don't.
  await sleep(Math.max(0, Math.max(...upAt) + STRICT_RECONFIG_MS + 1_000 - Date.now()));
  for (const c of clusters) {
    c.before = c.bed.etcdProcesses();
    for (const n of EXISTING) if (c.before[n] === null) throw new Error(`cluster ${c.i}: ${n} has no etcd pid before the run: nothing to compare`);
  }
  say(raisePriority(opts.raiseWorker ? worker.pid : undefined));
  // The same load with no operation running, for comparison: what this machine gives the writers anyway.
  const baselineWindows = clusters.map((c) => c.load.window());
  const baselineCpu = machineCpu();
  await sleep(opts.baselineS * 1000);
  const baselineBusy = (machineCpu().busy - baselineCpu.busy) / opts.baselineS / cpus().length;
  const baseline = await Promise.all(baselineWindows.map((w) => w.close()));
  for (const c of clusters) c.window = c.load.window();
  // The writers run in this process: while its event loop is held up (CPU starved), no write is issued.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  // ... and when: the longest hold-ups, with the time they ended
  const stalls: { at: number; ms: number }[] = [];
  let tick = Date.now();
  const stallWatch = setInterval(() => {
    const now = Date.now();
    if (now - tick > 1_100) {
      stalls.push({ at: now, ms: now - tick - 100 });
      stalls.sort((a, b) => b.ms - a.ms).splice(5);
    }
    tick = now;
  }, 100);
  const cpu0 = sampler.mark('start');
  let accountMs = performance.now();
  const account0 = cpuAccount(clusters.map((c) => c.bed), temporal.pid);
  accountMs = performance.now() - accountMs;
  const started = Date.now();
  await Promise.all(
    clusters.map(async (c) => {
      c.op = await steward!.startScaleOut({ spec: c.bed.spec, add: NEW.map((n) => Bed.memberInput(c.bed.host(n))) });
      c.outcome = 'running';
    }),
  );
  say(`${N} scaleOut workflows started (${secs(Date.now() - started, 2)} s to start them all)`);

  let done = 0;
  const deadline = started + LIMIT_MS;
  const progress = setInterval(() => say(`${done}/${N} operations ended; worker RSS ${(sampler!.rssKb.last / 1024).toFixed(0)} MB, SSH connections ${sampler!.ssh.last}, etcd connections ${sampler!.etcd.last}`), 15_000);
  try {
    await Promise.all(
      clusters.map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<'limit'>((r) => (timer = setTimeout(() => r('limit'), Math.max(0, deadline - Date.now()))));
        try {
          const r = await Promise.race([c.op!.result(), limit]);
          if (r === 'limit') {
            c.terminated = true;
            c.outcome = 'terminated at the limit';
            await c.op!.handle.terminate(`bench:fleet limit of ${opts.limitMin} min reached`).catch(() => undefined);
          } else {
            c.outcome = r.outcome;
            if (r.warnings.length) c.error = `warnings: ${r.warnings.join('; ')}`;
          }
        } catch (e) {
          c.outcome = 'failed';
          const cause = (e as { cause?: { message?: string } }).cause?.message;
          c.error = cause ?? (e as Error).message;
        } finally {
          clearTimeout(timer);
          done++;
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  const ended = Date.now();
  const cpu1 = sampler.mark('end');
  const account1 = cpuAccount(clusters.map((c) => c.bed), temporal.pid);
  say(`all ${N} operations ended in ${secs(ended - started)} s; load average ${loadavg()}`);
  await sleep(2_000); // writes after the end count too
  for (const c of clusters) c.writes = await c.window!.close();
  loopDelay.disable();
  clearInterval(stallWatch);
  for (const c of clusters) c.whole = await c.load.stop();
  sampler.stop();

  // What the clusters say, and what the histories say.
  for (const c of clusters) {
    const o = await c.bed.observe();
    c.voters = o.members.filter((m) => !m.isLearner).length;
    c.learners = o.learners;
    c.healthy = o.healthy;
    const after = c.bed.etcdProcesses();
    c.restarted = EXISTING.filter((n) => after[n] !== null && JSON.stringify(after[n]) !== JSON.stringify(c.before[n]));
    c.elections = countLog(c.bed, started, /became leader at term/);
    c.slow = countLog(c.bed, started, /took too long/);
    const history = await c.op!.handle.fetchHistory();
    const h = historyTimes(history);
    c.opMs = (h.workflowClosed ?? NaN) - h.workflowStarted;
    c.events = h.events;
    c.bytes = JSON.stringify(history).length;
    c.retries = h.activities.reduce((s, a) => s + a.attempt - 1, 0);
    c.steps = {};
    for (const a of h.activities.filter((x) => x.closed !== null)) {
      const st = (c.steps[a.type] ??= { n: 0, waitMs: 0, runMs: 0 });
      st.n++;
      st.waitMs += (a.started ?? a.closed!) - a.scheduled;
      st.runMs += a.closed! - (a.started ?? a.closed!);
    }
  }

  // The worker's own account of its SSH pool, written when it stops.
  await stopProcesses([{ pid: worker.pid!, what: 'fleet worker', mark: WORKER_MARK }], 15_000);
  const poolLine = /SSH: .*/.exec(readFileSync(WORKER_LOG, 'utf8'))?.[0];
  worker = undefined;

  // ---- the report ---------------------------------------------------------------------------------
  const ok = (c: ClusterRun) => c.outcome === 'completed' && c.voters === 5 && c.learners === 0 && c.healthy === true;
  const completed = clusters.filter(ok).length;
  const byOutcome = clusters.filter((c) => c.outcome === 'completed').length;
  const byEtcd = clusters.filter((c) => c.voters === 5 && c.learners === 0 && c.healthy).length;
  const failedWrites = clusters.reduce((s, c) => s + c.writes!.failed, 0);
  const okWrites = clusters.reduce((s, c) => s + c.writes!.ok, 0);
  const restarted = clusters.reduce((s, c) => s + c.restarted.length, 0);
  const durations = clusters.filter((c) => !c.terminated && Number.isFinite(c.opMs)).map((c) => c.opMs!).sort((a, b) => a - b);
  const events = clusters.map((c) => c.events!);
  const bytes = clusters.map((c) => c.bytes!);
  const s = sampler;
  const problems: string[] = [...s.failures];
  for (const [name, f] of [
    ['worker RSS', s.rssKb],
    ['worker CPU', s.cpuS],
    ['worker SSH connections', s.ssh],
    ['worker etcd connections', s.etcd],
  ] as const) {
    if (f.samples === 0) problems.push(`${name}: no samples`);
  }
  // The operations connect over SSH and to etcd: a peak of 0 means the sampler did not see them.
  if (s.ssh.samples > 0 && s.ssh.peak === 0) problems.push('worker SSH connections: never saw one, though every operation uses SSH: the sampler is not seeing them');
  if (s.etcd.samples > 0 && s.etcd.peak === 0) problems.push('worker etcd connections: never saw one, though every operation talks to etcd: the sampler is not seeing them');
  const cpuOps = cpu1 - cpu0;
  const opsWall = ended - started;

  console.log('\nper cluster');
  for (const c of clusters) {
    console.log(
      `  fleet-${String(c.i).padEnd(3)} ${c.outcome.padEnd(10)} ${Number.isFinite(c.opMs) ? `${secs(c.opMs!)} s` : '-'}; etcd: ${c.voters} voters, ${c.learners} learners, ${c.healthy ? 'healthy' : 'NOT healthy'}; restarted ${c.restarted.length ? c.restarted.join(',') : 'none'}; writes ${c.writes!.ok} ok, ${c.writes!.failed} failed, gap ${c.writes!.longestGapMs} ms, latency max ${c.writes!.maxMs} ms; leader elections ${c.elections}; activity retries ${c.retries}${c.error ? `; ${c.error.split('\n')[0]!.slice(0, 160)}` : ''}`,
    );
  }
  console.log('\nsummary');
  console.log(`clusters completed: ${completed} / ${N} (workflow outcome "completed": ${byOutcome}; etcd member list with 5 voters, no learner, healthy: ${byEtcd})`);
  const notCompleted = clusters.filter((c) => !ok(c));
  if (notCompleted.length) console.log(`  not completed: ${notCompleted.map((c) => `fleet-${c.i} (${c.outcome}${c.voters !== 5 ? `, ${c.voters} voters` : ''})`).join(', ')}`);
  console.log(`writes: ${okWrites} ok, ${failedWrites} failed (a write past its 5 s deadline is failed); longest gap ${Math.max(...clusters.map((c) => c.writes!.longestGapMs))} ms${clusters.some((c) => c.whole!.stoppedItself) ? '; A LOAD HIT ITS LIMIT AND STOPPED ITSELF BEFORE THE END' : ''} (from just before the first start to 2 s after the last end; the whole load, from each cluster's bring-up: ${clusters.reduce((x, c) => x + c.whole!.failed, 0)} failed, longest gap ${Math.max(...clusters.map((c) => c.whole!.longestGapMs))} ms)`);
  const due = clusters.reduce((x, c) => x + Math.floor((opts.writesPerS * c.writes!.durationMs) / 1000), 0);
  console.log(`writes issued: ${okWrites + failedWrites} of the ${due} due at ${opts.writesPerS}/s per cluster over the window`);
  const lat = (k: 'p50Ms' | 'p99Ms' | 'maxMs') => Math.max(...clusters.map((c) => c.writes![k]));
  console.log(
    `${stalls.length ? `longest hold-ups of this process's event loop: ${stalls.map((x) => `${secs(x.ms)} s ending ${secs(x.at - started)} s after the first start`).join(', ')}\n` : ''}write latency (worst cluster): p50 ${lat('p50Ms')} ms, p99 ${lat('p99Ms')} ms, max ${lat('maxMs')} ms; this bench process's event loop (where the writers run) was held up to ${(loopDelay.max / 1e6).toFixed(0)} ms at once (p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms): no write is issued meanwhile, so a gap up to that long is the bench's own CPU starvation, not etcd's`,
  );
  if (opts.baselineS > 0) {
    const bl = (k: 'p50Ms' | 'p99Ms' | 'maxMs') => Math.max(...baseline.map((r) => r[k]));
    console.log(
      `  for comparison, the same load in the ${opts.baselineS} s before the operations (no operation running; machine ${(baselineBusy * 100).toFixed(0)} % busy): ${baseline.reduce((x, r) => x + r.ok, 0)} ok, ${baseline.reduce((x, r) => x + r.failed, 0)} failed, longest gap ${Math.max(...baseline.map((r) => r.longestGapMs))} ms, latency (worst cluster) p50 ${bl('p50Ms')} ms, p99 ${bl('p99Ms')} ms, max ${bl('maxMs')} ms`,
    );
  }
  console.log(`etcd's own account of slow requests during the operations (its log's "took too long" warnings): ${clusters.reduce((x, c) => x + c.slow, 0)} (in ${clusters.filter((c) => c.slow > 0).length} clusters)`);
  if (failedWrites) console.log(`  errors: ${[...new Set(clusters.flatMap((c) => c.writes!.errors))].slice(0, 5).join(' | ')}`);
  console.log(`existing members restarted (etcd pid and start time compared): ${restarted} of ${N * 3}`);
  console.log(`etcd leader elections during the run: ${clusters.reduce((x, c) => x + c.elections, 0)} (in ${clusters.filter((c) => c.elections > 0).length} clusters)`);
  console.log(
    `operation duration (history: WorkflowExecutionStarted → closed, ${durations.length} not terminated): p50 ${secs(pct(durations, 50))} s, p95 ${secs(pct(durations, 95))} s, max ${secs(durations.at(-1) ?? NaN)} s; all ${N} ended ${secs(opsWall)} s after the first start`,
  );
  console.log(`activity retries: ${clusters.reduce((x, c) => x + c.retries!, 0)} in total`);
  const types = [...new Set(clusters.flatMap((c) => Object.keys(c.steps ?? {})))];
  const per = (t: string, k: 'waitMs' | 'runMs') => clusters.reduce((x, c) => x + (c.steps?.[t]?.[k] ?? 0), 0) / N;
  console.log(
    `where an operation's time goes (history, mean per operation, s: waiting for the worker = scheduled → started, running = started → closed): ${types
      .map((t) => `${t} ${secs(per(t, 'waitMs'), 2)} + ${secs(per(t, 'runMs'), 2)}`)
      .join(', ')}`,
  );
  console.log(
    `this bench process: sampling the worker took ${(s.cost.totalMs / 1000).toFixed(1)} s in all, ${s.cost.maxMs.toFixed(0)} ms at most (${s.cost.n} samples); the CPU account ${accountMs.toFixed(0)} ms`,
  );
  console.log(`worker RSS: peak ${(s.rssKb.peak / 1024).toFixed(0)} MB (${s.rssKb.samples} samples every 500 ms)`);
  console.log(`worker CPU: ${secs(cpuOps * 1000)} s during the operations (${(cpuOps / (opsWall / 1000)).toFixed(2)} cores on average of 2), ${secs(s.cpuS.last * 1000)} s since it started`);
  console.log(`worker connections: SSH (port ${SSH_PORT}) peak ${s.ssh.peak}, etcd client (port ${ETCD_CLIENT_PORT}) peak ${s.etcd.peak} (${s.ssh.samples} samples; ${N * 5} hosts, ${N * 5} etcd members at the end)`);
  const spent = (k: keyof typeof account0) => account1[k] - account0[k];
  console.log(
    `CPU during the operations, s (2 cores × ${secs(opsWall)} s = ${secs(2 * opsWall)} s): machine busy ${secs(spent('machine') * 1000)}; the beds' sshd with their sessions and shells ${secs(spent('sshd') * 1000)}; etcd ${secs(spent('etcd') * 1000)} (new members from their start); Temporal ${secs(spent('temporal') * 1000)}; this bench process (write loads, client) ${secs(spent('bench') * 1000)}; the worker ${secs(cpuOps * 1000)}; anything else ${secs((spent('machine') - spent('sshd') - spent('etcd') - spent('temporal') - spent('bench') - cpuOps) * 1000)}`,
  );
  if (poolLine) console.log(`worker SSH pool (its own count, at shutdown): ${poolLine.replace(/^SSH: /, '')}`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `history per operation: ${Math.round(mean(events))} events (max ${Math.max(...events)}), ${(mean(bytes) / 1024).toFixed(0)} KB (max ${(Math.max(...bytes) / 1024).toFixed(0)} KB); per member added ${Math.round(mean(events) / NEW.length)} events, ${(mean(bytes) / 1024 / NEW.length).toFixed(0)} KB`,
  );
  if (problems.length) console.log(`MEASUREMENT FAILED: ${problems.join('; ')}`);
  console.log(
    `bench: fleet clusters=${N} completed=${completed} failed_writes=${failedWrites} restarted=${restarted} op_p50=${secs(pct(durations, 50))}s op_p95=${secs(pct(durations, 95))}s op_max=${secs(durations.at(-1) ?? NaN)}s worker_rss_peak=${(s.rssKb.peak / 1024).toFixed(0)}MB worker_cpu=${secs(cpuOps * 1000)}s worker_cores=${(cpuOps / (opsWall / 1000)).toFixed(2)} ssh_conns_peak=${s.ssh.samples ? s.ssh.peak : 'n/a'} etcd_conns_peak=${s.etcd.samples ? s.etcd.peak : 'n/a'} history_events=${Math.round(mean(events))} history_kb=${(mean(bytes) / 1024).toFixed(0)}`,
  );
  return completed === N && failedWrites === 0 && restarted === 0 && problems.length === 0 ? 0 : 1;
}

void main()
  .catch((e: unknown) => {
    console.error(`bench:fleet failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  })
  .then(async (code) => {
    await cleanup();
    console.log(`bench: fleet total run time ${secs(Date.now() - t0)} s (${new Date().toISOString()})`);
    process.exit(code);
  });
