/** Shared set-up for integration tests: a Temporal dev server, an in-process worker, a client. */
import { execFile } from 'node:child_process';
import { after, before } from 'node:test';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { WorkflowNotFoundError } from '@temporalio/client';
import { StewardClient } from '../client';
import { etcdClient, listMembers, type EtcdCredentials, type ListedMember } from '../activities/etcd';
import { closeSshPool } from '../activities/ssh';
import { Bed, type BedOptions } from '../testbed';
import { type ClusterSpec, expand } from '../spec/cluster';
import { resolveTemporalCli, startTemporal, type TemporalServer } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

let runtimeInstalled = false;

export interface Stack {
  temporal: TemporalServer;
  steward: StewardClient;
  /**
   * Terminates the cluster's operation if one still runs (a test that failed midway must not
   * leave it acting on the next test's bed). Returns whether it did.
   */
  terminateRunning(cluster: string): Promise<boolean>;
  /** Starts a worker with the bed's secrets (one at a time). */
  startWorker(bed: Bed): Promise<void>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** The Temporal server's directory; default $TMPDIR/etcd-steward-temporal. */
  dir?: string;
  /** Frontend and Web UI ports on 127.0.0.1; default 17233 and 18233. */
  port?: number;
  uiPort?: number;
}

/**
 * Where a test's Temporal dev server lives: $TMPDIR/<name>, on the default ports. With
 * STEWARD_TEST_TEMPORAL_PORT=P (and STEWARD_BED_NET / STEWARD_BED_DIR for the bed), a second
 * suite runs beside the first on one machine: frontend P + offset, Web UI P + 1000 + offset.
 */
export function testTemporalPlace(name: string, offset = 0): { dir: string; port?: number; uiPort?: number } {
  const base = process.env.STEWARD_TEST_TEMPORAL_PORT ? Number(process.env.STEWARD_TEST_TEMPORAL_PORT) : undefined;
  if (!base) return { dir: join(tmpdir(), name) };
  return { dir: join(tmpdir(), `${name}-${base + offset}`), port: base + offset, uiPort: base + 1000 + offset };
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  if (!runtimeInstalled) {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const temporal = await startTemporal({ ...testTemporalPlace('etcd-steward-temporal'), ...(opts.dir ? { dir: opts.dir } : {}), ...(opts.port ? { port: opts.port } : {}), ...(opts.uiPort ? { uiPort: opts.uiPort } : {}) });
  const connection = await NativeConnection.connect({ address: temporal.address });
  const steward = await StewardClient.connect({ address: temporal.address });
  let current: { worker: Worker; running: Promise<void> } | null = null;
  const stopWorker = async () => {
    if (!current) return;
    current.worker.shutdown();
    await current.running;
    current = null;
    await closeSshPool(); // a worker's SSH connections end with it (a new worker starts with none)
  };
  return {
    temporal,
    steward,
    async startWorker(bed: Bed) {
      await stopWorker();
      const worker = await createWorker({ connection, namespace: temporal.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials } });
      current = { worker, running: worker.run() };
    },
    stopWorker,
    async terminateRunning(cluster: string) {
      const handle = steward.operation(cluster).handle;
      try {
        if ((await handle.describe()).status.name !== 'RUNNING') return false;
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return false;
        throw e;
      }
      await handle.terminate('test clean-up: still running when the next test began');
      return true;
    },
    async stop() {
      await stopWorker();
      await closeSshPool();
      await steward.close();
      await connection.close();
      await temporal.stop();
    },
  };
}

/**
 * The set-up the operations' integration tests share, registered on the enclosing `describe`: one
 * Temporal stack for the file, and `freshBed` for a new bed (the previous one and any operation
 * still running on it stopped first) with a worker on it; everything stopped after the file.
 */
export function stackAndBeds(): { readonly stack: Stack; readonly bed: Bed | undefined; freshBed(opts: BedOptions): Promise<Bed> } {
  let stack: Stack | undefined;
  let bed: Bed | undefined;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
    await bed?.down();
  });
  return {
    get stack() {
      if (!stack) throw new Error('the stack is not up yet (use it inside a test)');
      return stack;
    },
    get bed() {
      return bed;
    },
    async freshBed(opts: BedOptions) {
      await this.stack.terminateRunning(opts.name ?? 'bed');
      await bed?.down();
      bed = await Bed.up(opts);
      await this.stack.startWorker(bed);
      return bed;
    },
  };
}

/** Samples the member list in the background (I1: never more than one learner; new members appear as learners first). */
/**
 * The bed's spec for the members named (in host order). When the CA host is not among them (an
 * earlier test removed or replaced it), the CA moves to the first that is, as the operations'
 * warning tells an operator to do: ca.pem and ca-key.pem copied there, ca.host set to it.
 */
export function specFor(b: Bed, names: string[]): ClusterSpec {
  const members = b.hosts.filter((h) => names.includes(h.name)).map((h) => Bed.memberInput(h));
  if (members.length === 0) throw new Error(`specFor: none of ${names.join(', ')} is a host of the bed`);
  if (names.includes(b.spec.ca.host)) return { ...b.spec, members };
  const to = members[0]!.name;
  const [fromDir, toDir] = [expand(b.spec.ca.dir, b.spec.ca.host), expand(b.spec.ca.dir, to)];
  mkdirSync(toDir, { recursive: true });
  for (const f of ['ca.pem', 'ca-key.pem']) copyFileSync(join(fromDir, f), join(toDir, f));
  chmodSync(join(toDir, 'ca-key.pem'), 0o600);
  return { ...b.spec, members, ca: { ...b.spec.ca, host: to } };
}

export class MembershipSampler {
  readonly samples: ListedMember[][] = [];
  /** When each sample came (ms since epoch), index for index with `samples`. */
  readonly times: number[] = [];
  /** Samples that could not be taken, and why the last one could not: a check needs samples to count. */
  failures = 0;
  lastError: string | undefined;
  private stopped = false;
  private loop: Promise<void>;
  /** Samples until stop(), or for `maxDurationMs` at most: a sampler a failed test forgot ends by itself. */
  constructor(endpoints: string[], creds: EtcdCredentials, everyMs = 100, maxDurationMs = 15 * 60_000) {
    const until = Date.now() + maxDurationMs;
    const c = etcdClient(endpoints, creds, { timeoutMs: 2_000 });
    this.loop = (async () => {
      while (!this.stopped && Date.now() < until) {
        try {
          this.samples.push(await listMembers(c));
          this.times.push(Date.now());
        } catch (e) {
          // A sample lost while a member restarts is fine; none at all is not (see `failures`).
          this.failures++;
          this.lastError = e instanceof Error ? e.message : String(e);
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
      c.close();
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
  maxLearners(): number {
    return Math.max(0, ...this.samples.map((s) => s.filter((m) => m.isLearner).length));
  }
  /** Names (or peer URLs) first seen as voters without ever being seen as learners. */
  addedAsVoters(initial: string[]): string[] {
    const seenLearner = new Set<string>();
    const bad = new Set<string>();
    for (const s of this.samples) {
      for (const m of s) {
        const key = m.peerURLs.join(',');
        if (m.isLearner) seenLearner.add(key);
        else if (!initial.includes(key) && !seenLearner.has(key)) bad.add(key);
      }
    }
    return [...bad];
  }
}

/** Polls until `f` returns a truthy value. */
export async function waitFor<T>(what: string, f: () => Promise<T> | T, timeoutMs = 60_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A workflow history as text with every payload decoded (payload data is base64 in the history
 * JSON, so a plain search of it would find nothing: I8's scan must look at the decoded text).
 */
export function decodedHistoryText(history: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'data' && typeof x === 'string') out.push(Buffer.from(x, 'base64').toString('utf8'));
        else if (k === 'data' && x instanceof Uint8Array) out.push(Buffer.from(x).toString('utf8'));
        else walk(x);
      }
    } else if (typeof v === 'string') out.push(v);
  };
  walk(history);
  return out.join('\n');
}

/**
 * With RECORD_HISTORIES=1, saves a finished workflow's history (its latest run, or `runId`) as test/histories/<name>.json
 * (the Temporal CLI's `workflow show --output json` format), for test/replay.test.ts to replay
 * against the current workflow code in CI.
 */
export async function recordHistory(handle: { workflowId: string; fetchHistory(): Promise<unknown> }, name: string, address: string, runId?: string): Promise<void> {
  if (!process.env.RECORD_HISTORIES) return;
  const cli = resolveTemporalCli();
  if (!cli) throw new Error('recording histories needs the Temporal CLI');
  const run = runId ? ['--run-id', runId] : [];
  const { stdout } = await promisify(execFile)(cli, ['workflow', 'show', '--workflow-id', handle.workflowId, ...run, '--address', address, '--output', 'json'], { maxBuffer: 64 * 1024 * 1024 });
  if (/PRIVATE KEY/.test(decodedHistoryText(JSON.parse(stdout)))) throw new Error(`history ${name} holds a private key: not recording it`);
  const dir = join(__dirname, 'histories');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), stdout.endsWith('\n') ? stdout : `${stdout}\n`);
}

/** Every message in an error's cause chain, joined with " <- " (for assertions on the whole story). */
export function causeChain(e: unknown): string {
  const parts: string[] = [];
  for (let x: unknown = e; x instanceof Error; x = (x as { cause?: unknown }).cause) parts.push(x.message);
  return parts.join(' <- ') || String(e);
}

/** Whether process `pid` holds a listening TCP socket on `port` (from /proc, without connecting). */
export function listensOn(pid: number, port: number): boolean {
  let inodes: string[];
  try {
    inodes = readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
        } catch {
          return undefined;
        }
      })
      .filter((x): x is string => !!x);
  } catch {
    return false;
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].some((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .some((c) => c[3] === '0A' && c[1]?.endsWith(`:${hexPort}`) && inodes.includes(c[9] ?? '')),
  );
}

/** The pid of `member`'s etcd once it listens on its client port: started, not caught up yet (a learner to freeze with SIGSTOP). */
export function pidOnceListening(b: Bed, member: string): Promise<number> {
  return waitFor(`${member} to listen on its client port`, () => {
    const p = b.etcdPid(member);
    return p !== null && listensOn(p, 2379) ? p : null;
  }, 60_000, 5);
}
