/**
 * `npm run bench`: the same 3 → 5 scale-out on identical fresh clusters under the same write
 * load, done three ways, measured side by side in one run:
 *
 *   baseline    Kubespray's old way: each new member added as a *voting* member, env files
 *               re-rendered everywhere, then the "Reload etcd" handler restarts every member at once;
 *   throttled   the same with the newer handler: restarts in batches of floor(n/2);
 *   steward     the scaleOut workflow: learners one at a time, no existing member restarted.
 *
 * Reported: failed writes, the longest gap between successful writes, p50/p99 write latency,
 * total time, existing members restarted; for steward also orchestration overhead (operation
 * time minus learner catch-up time). Each figure also as a ratio to the baseline of this run.
 * Bounded: each run stops its load after at most 5 minutes. Uses its own addresses (127.30.0.x)
 * and ports (Temporal 37233/38233), so it does not collide with a bed left running.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities, type Activities } from '../activities';
import { etcdClient } from '../activities/etcd';
import { sshRun } from '../activities/ssh';
import { StewardClient } from '../client';
import { expand, type Member } from '../spec/cluster';
import { Bed } from '../testbed';
import { type LoadReport, WriteLoad } from '../testbed/load';
import { startTemporal } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

const opts = new Command('bench')
  .description('3 → 5 scale-out three ways on identical clusters under the same write load')
  .option('--data-mb <n>', 'data written before each scale-out', (v) => Number(v), 20)
  .option('--rate <n>', 'writes per second', (v) => Number(v), 100)
  .parse()
  .opts<{ dataMb: number; rate: number }>();

Runtime.install({ logger: new DefaultLogger('ERROR') });

interface Run {
  name: string;
  writes: LoadReport;
  totalMs: number;
  restarted: number;
  catchUpMs?: number;
}

const NEW = ['etcd4', 'etcd5'];
const EXISTING = ['etcd1', 'etcd2', 'etcd3'];

/** A way to scale out: `prepare` runs before the load and the clock start (e.g. a worker bundling its workflows). */
interface Procedure {
  prepare?(bed: Bed): Promise<void>;
  /** Does the scale-out; returns the learners' total catch-up time where it knows it. */
  run(bed: Bed): Promise<number | undefined>;
  cleanup?(): Promise<void>;
}

/** Runs a procedure on a fresh bed under load and measures what the writers saw. */
async function measure(name: string, procedure: Procedure): Promise<Run> {
  const bed = await Bed.up({ hosts: 5, members: 3, net: '127.30.0', dir: join(tmpdir(), 'etcd-steward-bench-bed') });
  try {
    await procedure.prepare?.(bed);
    const load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials, rate: opts.rate, maxDurationMs: 5 * 60_000 });
    if (opts.dataMb > 0) await load.prefill(opts.dataMb);
    const before = bed.etcdProcesses();
    load.start();
    await new Promise((r) => setTimeout(r, 2_000)); // steady state first
    const t0 = Date.now();
    const catchUpMs = await procedure.run(bed);
    const totalMs = Date.now() - t0;
    await bed.waitHealthy(120_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const writes = await load.stop();
    const after = bed.etcdProcesses();
    const restarted = EXISTING.filter((n) => JSON.stringify(before[n]) !== JSON.stringify(after[n])).length;
    const o = await bed.observe();
    if (o.voters !== 5) throw new Error(`${name}: ended with ${o.voters} voting members`);
    return { name, writes, totalMs, restarted, ...(catchUpMs !== undefined ? { catchUpMs } : {}) };
  } finally {
    await procedure.cleanup?.();
    await bed.down();
  }
}

/** Kubespray's way, driven with the project's own activities for the parts that are the same (cert, env files, start). */
async function naive(bed: Bed, restartBatch: (n: number) => number): Promise<undefined> {
  const acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
  const env = new MockActivityEnvironment();
  const run = async <K extends keyof Activities>(k: K, ...args: Parameters<Activities[K]>) => {
    for (let i = 0; ; i++) {
      try {
        return (await (env.run as (f: unknown, ...a: unknown[]) => Promise<unknown>)(acts[k], ...args)) as Awaited<ReturnType<Activities[K]>>;
      } catch (e) {
        if (!(e instanceof ApplicationFailure && e.category === 'BENIGN') || i > 30) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
  const members: Member[] = [...bed.spec.members];
  for (const n of NEW) {
    const m = Bed.memberInput(bed.host(n));
    const spec = { ...bed.spec, members: [...members] };
    await run('issueCert', { spec, member: m });
    const c = etcdClient(members.flatMap((x) => x.clientURLs), bed.etcdCredentials);
    try {
      for (let i = 0; ; i++) {
        try {
          await c.cluster.memberAdd({ peerURLs: m.peerURLs }); // a voting member: quorum grows before it runs
          break;
        } catch (e) {
          if (!/unhealthy cluster/.test(String(e)) || i > 30) throw e; // etcd's 5 s strict-reconfig wait
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      c.close();
    }
    await run('syncConfig', { spec, members: [...members, m], joining: n });
    await run('startMember', { spec, member: m });
    members.push(m);
    await bed.waitHealthy(120_000);
  }
  // The "Reload etcd" handler: every member restarted, in batches.
  const size = restartBatch(members.length);
  for (let i = 0; i < members.length; i += size) {
    await Promise.all(members.slice(i, i + size).map((m) => sshRun(bed.host(m.name).ssh, bed.sshIdentity, expand(bed.spec.service.restart, m.name))));
    await bed.waitHealthy(120_000);
  }
  return undefined;
}

/** The scaleOut workflow through a real Temporal dev server and worker, started before the clock. */
function steward(): Procedure {
  let stop: (() => Promise<void>) | undefined;
  let run: ((bed: Bed) => Promise<number>) | undefined;
  return {
    async prepare(bed) {
      const temporal = await startTemporal({ dir: join(tmpdir(), 'etcd-steward-bench-temporal'), port: 37233, uiPort: 38233 });
      const connection = await NativeConnection.connect({ address: temporal.address });
      const client = await StewardClient.connect({ address: temporal.address });
      const worker = await createWorker({ connection, namespace: temporal.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials } });
      const running = worker.run();
      stop = async () => {
        worker.shutdown();
        await running;
        await client.close();
        await connection.close();
        await temporal.stop();
      };
      run = async (b) => {
        const op = await client.startScaleOut({ spec: b.spec, add: NEW.map((n) => Bed.memberInput(b.host(n))) });
        const r = await op.result();
        return Object.values(r.catchUpMs).reduce((x, y) => x + y, 0);
      };
    },
    run: (bed) => run!(bed),
    cleanup: async () => stop?.(),
  };
}

function ratio(x: number, base: number): string {
  if (base === 0) return x === 0 ? '1.00x' : 'n/a (baseline 0)';
  const r = x / base;
  return `${r === 0 || r >= 0.01 ? r.toFixed(2) : r.toPrecision(2)}x`;
}

async function main(): Promise<void> {
  console.log(`bench: 3 → 5 on identical fresh clusters, ${opts.dataMb} MB of data, ${opts.rate} writes/s\n`);
  const runs: Run[] = [];
  for (const [name, f] of [
    ['baseline (voting add + restart all at once)', { run: (b: Bed) => naive(b, (n) => n) }],
    ['throttled (voting add + restart floor(n/2) at a time)', { run: (b: Bed) => naive(b, (n) => Math.max(1, Math.floor(n / 2))) }],
    ['steward (learners, no restart)', steward()],
  ] as [string, Procedure][]) {
    process.stdout.write(`${name} ... `);
    const r = await measure(name, f);
    runs.push(r);
    console.log(`done in ${(r.totalMs / 1000).toFixed(1)} s`);
  }
  const base = runs[0]!;
  console.log('');
  for (const r of runs) {
    const w = r.writes;
    console.log(r.name);
    console.log(`  writes: ${w.ok} ok, ${w.failed} failed (${ratio(w.failed, base.writes.failed)} of baseline)`);
    console.log(`  longest write gap: ${w.longestGapMs} ms (${ratio(w.longestGapMs, base.writes.longestGapMs)})`);
    console.log(`  write latency: p50 ${w.p50Ms} ms (${ratio(w.p50Ms, base.writes.p50Ms)}), p99 ${w.p99Ms} ms (${ratio(w.p99Ms, base.writes.p99Ms)})`);
    console.log(`  total time: ${(r.totalMs / 1000).toFixed(1)} s (${ratio(r.totalMs, base.totalMs)})`);
    console.log(`  existing members restarted: ${r.restarted}`);
    if (r.catchUpMs !== undefined) console.log(`  learner catch-up ${r.catchUpMs} ms; orchestration overhead ${((r.totalMs - r.catchUpMs) / 1000).toFixed(1)} s`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
