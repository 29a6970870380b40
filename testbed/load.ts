/**
 * A steady write load on the bed's cluster, as a Kubernetes API server would put on it, and the
 * figures that show whether anything served noticed an operation: failed writes, the longest
 * gap between successful writes, latency percentiles. Bounded: it stops by itself after
 * `maxDurationMs` even if nobody calls stop(), and says so in its report.
 *
 * A write counts as ok only when it succeeded within its deadline, measured from its first
 * attempt: the client retries a failed write on another endpoint, so a write that took 20 s
 * through retries is a failed write here, not an ok one with a long latency.
 *
 * The client fails over as a Kubernetes API server's (Go clientv3's round-robin balancer) does:
 * an endpoint whose connection failed is left out for a moment and the write goes to the next one
 * at once, within the same deadline. (The etcd3 package's own pool kept sending a share of the
 * writes to a stopped member and then opened every host's circuit breaker for 5 s after a
 * leader change: hundreds of failed writes in a rolling restart that no API server would see.)
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { type EtcdCredentials, etcdClient } from '../activities/etcd';

export interface LoadOptions {
  endpoints: string[];
  credentials: EtcdCredentials;
  /** Writes per second; default 100. */
  rate?: number;
  valueBytes?: number;
  /** Hard stop; default 10 minutes. */
  maxDurationMs?: number;
  /** Per-write deadline, from the first attempt; default 5 s. */
  timeoutMs?: number;
  /** For tests: the client writes go through (default: an etcd3 client on `endpoints`). */
  client?: LoadClient;
}

/** The part of an etcd client the load uses. */
export interface LoadClient {
  put(key: string, value: Buffer): Promise<unknown>;
  close(): void;
}

export interface PrefillReport {
  keys: number;
  /** Value bytes written. */
  bytes: number;
  ms: number;
}

export interface LoadReport {
  ok: number;
  failed: number;
  /** Longest time between two successful write completions while the load ran, ms. */
  longestGapMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  durationMs: number;
  /** The first few distinct errors. */
  errors: string[];
  /** Writes that succeeded, but after their deadline (counted in `failed`). */
  late: number;
  /** true when the load hit maxDurationMs and stopped itself before stop() was called. */
  stoppedItself: boolean;
}

/** The etcd3 package's client as a LoadClient (the prefill's: many writes in flight, no deadline games). */
function etcd(c: Etcd3): LoadClient {
  return { put: (key, value) => c.put(key).value(value).exec(), close: () => c.close() };
}

/** How long an endpoint whose write failed is left out before it is tried again. */
const ENDPOINT_BACKOFF_MS = 500;

/**
 * Writes through one connection per endpoint (no retries of the etcd3 package's own), starting
 * with the endpoint that answered last; a failed write goes to the next endpoint not left out
 * (the failed one is, for ENDPOINT_BACKOFF_MS), until one answers or the deadline passes. Each
 * key is written once per write, so a retried put whose first attempt did reach etcd writes the
 * same value twice: harmless for the measurement.
 */
export function failoverClient(endpoints: string[], credentials: EtcdCredentials, deadlineMs: number): LoadClient {
  if (endpoints.length === 0) throw new Error('the write load needs at least one endpoint');
  const clients = endpoints.map((e) => etcdClient([e], credentials, { retry: false, timeoutMs: deadlineMs }));
  const leftOutUntil = endpoints.map(() => 0);
  let preferred = 0;
  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  return {
    async put(key, value) {
      const t0 = Date.now();
      let last: unknown;
      for (let attempt = 0; Date.now() - t0 < deadlineMs; attempt++) {
        const now = Date.now();
        // the next endpoint not left out, from the preferred one on; when all are, the one back soonest
        const order = endpoints.map((_, i) => (preferred + i) % endpoints.length);
        const at = order.find((i) => leftOutUntil[i]! <= now) ?? order.reduce((a, b) => (leftOutUntil[b]! < leftOutUntil[a]! ? b : a));
        if (leftOutUntil[at]! > now) await sleep(Math.min(leftOutUntil[at]! - now, deadlineMs - (now - t0)));
        try {
          await clients[at]!.put(key).value(value).options({ deadline: t0 + deadlineMs }).exec();
          preferred = at;
          return;
        } catch (e) {
          last = e;
          leftOutUntil[at] = Date.now() + ENDPOINT_BACKOFF_MS;
          if (at === preferred) preferred = (at + 1) % endpoints.length;
        }
      }
      throw last ?? new Error(`no endpoint answered within ${deadlineMs} ms`);
    },
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** What the writers saw over one stretch of time; each write counts in the windows open when it was issued. */
class Window {
  readonly latencies: number[] = [];
  ok = 0;
  failed = 0;
  late = 0;
  lastOk: number;
  longestGap = 0;
  readonly inflight = new Set<Promise<void>>();
  readonly errors = new Set<string>();
  constructor(readonly started: number) {
    this.lastOk = started;
  }
  failedWith(error: string): void {
    this.failed++;
    if (this.errors.size < 5) this.errors.add(error);
  }
  succeeded(t0: number, now: number): void {
    this.ok++;
    this.latencies.push(now - t0);
    this.longestGap = Math.max(this.longestGap, now - this.lastOk);
    this.lastOk = now;
  }
  report(end: number, stoppedItself = false): LoadReport {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      ok: this.ok,
      failed: this.failed,
      longestGapMs: Math.max(this.longestGap, end - this.lastOk), // an outage at the very end counts too
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? 0,
      durationMs: end - this.started,
      errors: [...this.errors],
      late: this.late,
      stoppedItself,
    };
  }
}

/** An open measurement window of a WriteLoad (see `WriteLoad.window`). */
export interface LoadWindow {
  /** Stops counting new writes in this window, waits for the ones it issued, and reports. */
  close(): Promise<LoadReport>;
}

export class WriteLoad {
  private readonly client: LoadClient;
  private readonly deadlineMs: number;
  private stoppedItself = false;
  private timer: NodeJS.Timeout | undefined;
  private hardStop: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private readonly windows = new Set<Window>();
  private whole: Window | undefined;
  private seq = 0;
  private readonly value: Buffer;

  constructor(private readonly opts: LoadOptions) {
    this.deadlineMs = opts.timeoutMs ?? 5_000;
    this.client = opts.client ?? failoverClient(opts.endpoints, opts.credentials, this.deadlineMs);
    this.value = randomBytes(opts.valueBytes ?? 256);
  }

  /**
   * Writes `megabytes` of data first, so catch-up has something to catch up on, shaped like a
   * Kubernetes API server's keyspace: many keys `/registry/<resource>/<namespace>/<name>`, each
   * written once (one revision per key, as objects are created), values of 0.5–5 KiB (uniform,
   * mean ~2.75 KiB: 20 MB is ~7,400 keys, 200 MB ~74,000). Fast enough for hundreds of MB: many
   * writes in flight over a few client connections (etcd batches their fsyncs), sent to
   * `endpoints` (e.g. the leader alone, which saves the followers forwarding every proposal;
   * default the load's endpoints). Bounded: each write has a 10 s deadline, the whole prefill
   * `limitMs` (default 1 s per MB + 2 min).
   */
  async prefill(
    megabytes: number,
    onProgress?: (doneMb: number) => void,
    opts: { concurrency?: number; clients?: number; limitMs?: number; endpoints?: string[] } = {},
  ): Promise<PrefillReport> {
    const t0 = Date.now();
    const target = megabytes * 1024 * 1024;
    const limitMs = opts.limitMs ?? megabytes * 1_000 + 120_000;
    const clients = this.opts.client
      ? [this.opts.client]
      : Array.from({ length: opts.clients ?? 2 }, () => etcd(etcdClient(opts.endpoints ?? this.opts.endpoints, this.opts.credentials, { timeoutMs: 10_000 })));
    const pool = randomBytes(1 << 20);
    const resources = ['pods', 'configmaps', 'secrets', 'events', 'replicasets', 'services', 'endpointslices', 'serviceaccounts', 'leases', 'deployments'];
    let bytes = 0;
    let keys = 0;
    let reported = 0;
    let failed = false;
    const worker = async (w: number) => {
      const c = clients[w % clients.length]!;
      while (bytes < target && !failed) {
        if (Date.now() - t0 > limitMs) {
          failed = true;
          throw new Error(`prefill: only ${(bytes / 1048576).toFixed(0)} of ${megabytes} MB written within ${limitMs} ms`);
        }
        const size = 512 + Math.floor(Math.random() * (5 * 1024 - 512 + 1));
        const i = keys++;
        bytes += size;
        const off = Math.floor(Math.random() * (pool.length - size));
        await c.put(`/registry/${resources[i % resources.length]}/ns-${String(i % 97).padStart(2, '0')}/obj-${String(i).padStart(7, '0')}`, pool.subarray(off, off + size)).catch((e: unknown) => {
          failed = true;
          throw e;
        });
        if (onProgress && bytes - reported >= 10 * 1048576) {
          reported = bytes;
          onProgress(Math.round(bytes / 1048576));
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: opts.concurrency ?? 128 }, (_, w) => worker(w)));
    } finally {
      if (!this.opts.client) for (const c of clients) c.close();
    }
    return { keys, bytes, ms: Date.now() - t0 };
  }

  start(): void {
    const rate = this.opts.rate ?? 100;
    const t0 = Date.now();
    this.whole = new Window(t0);
    this.windows.add(this.whole);
    // Open loop, paced by the clock, not by the ticks: a tick that comes late (this process short
    // of CPU) issues every write that fell due meanwhile, so the load keeps its rate instead of
    // quietly thinning out when the machine is busiest.
    let issued = 0;
    this.timer = setInterval(() => {
      const due = Math.floor((rate * (Date.now() - t0)) / 1000);
      while (issued < due) {
        issued++;
        this.writeOne();
      }
    }, 10);
    this.hardStop = setTimeout(() => {
      this.stoppedItself = true;
      void this.stop();
    }, this.opts.maxDurationMs ?? 10 * 60_000);
  }

  /**
   * Opens a measurement window over part of the run (e.g. one operation of several): the writes
   * issued while it is open count in it, including those that fail after it closes.
   */
  window(): LoadWindow {
    const w = new Window(Date.now());
    this.windows.add(w);
    return {
      close: async () => {
        const end = Date.now();
        this.windows.delete(w);
        await Promise.all([...w.inflight]);
        return w.report(end);
      },
    };
  }

  private writeOne(): void {
    const open = [...this.windows];
    if (this.inflight.size >= 500) {
      for (const w of open) w.failedWith('more than 500 writes outstanding');
      return;
    }
    const t0 = Date.now();
    const p = this.client
      .put(`load/${String(this.seq++ % 10_000).padStart(5, '0')}`, this.value)
      .then(
        () => {
          const now = Date.now();
          if (now - t0 > this.deadlineMs) {
            for (const w of open) {
              w.late++;
              w.failedWith(`succeeded only after ${now - t0} ms, past its ${this.deadlineMs} ms deadline (client retries)`);
            }
          } else for (const w of open) w.succeeded(t0, now);
        },
        (e: unknown) => {
          for (const w of open) w.failedWith(e instanceof Error ? e.message.split('\n')[0]! : String(e));
        },
      )
      .finally(() => {
        this.inflight.delete(p);
        for (const w of open) w.inflight.delete(p);
      });
    this.inflight.add(p);
    for (const w of open) w.inflight.add(p);
  }

  private stopping: Promise<LoadReport> | undefined;

  /** Stops issuing writes, waits for those in flight, and reports the whole run (the same report on every call). */
  stop(): Promise<LoadReport> {
    this.stopping ??= this.finish();
    return this.stopping;
  }

  private async finish(): Promise<LoadReport> {
    clearInterval(this.timer);
    clearTimeout(this.hardStop);
    await Promise.all([...this.inflight]);
    const end = Date.now();
    this.client.close();
    this.windows.clear();
    return (this.whole ?? new Window(end)).report(end, this.stoppedItself);
  }
}
