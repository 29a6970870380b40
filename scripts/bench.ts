/**
 * `npm run bench`, part 1: the same 3 → 5 scale-out on identical fresh clusters under the same write
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
 *
 * Part 2: a rolling restart of every member (4 and 5 members by default) three ways:
 *
 *   all at once   every member restarted together (Kubespray's old "Reload etcd" handler);
 *   throttled     floor(n/2) at a time, Kubespray's newer handler (4 members: 2 down of 4, quorum lost);
 *   steward       the rollingRestart workflow: min(maxUnavailable, tolerance - down) from live health,
 *                 the leader last after MoveLeader.
 *
 * Reported as above, plus the most members seen down at once (each member's Status asked every
 * ~100 ms) and how many members' pids changed, all observed, with ratios to "all at once".
 * Bounded: each run stops its load after at most 5 minutes. Uses its own addresses (127.30.0.x)
 * and ports (Temporal 37233/38233), so it does not collide with a bed left running.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { etcdClient } from '../activities/etcd';
import { sshRun } from '../activities/ssh';
import { StewardClient } from '../client';
import { expand, type Member } from '../spec/cluster';
import { Bed } from '../testbed';
import { LivenessSampler } from '../testbed/liveness';
import { activityRunner } from '../testbed/run-activity';
import { type LoadReport, WriteLoad } from '../testbed/load';
import { startTemporal } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

const opts = new Command('bench')
  .description('3 → 5 scale-out, then a rolling restart, each three ways on identical clusters under the same write load')
  .option('--data-mb <n>', 'data written before each scale-out', (v) => Number(v), 20)
  .option('--rate <n>', 'writes per second', (v) => Number(v), 100)
  .option('--restart-sizes <list>', 'cluster sizes for the rolling-restart comparison, comma-separated (empty: skip it)', (v) => v.split(',').filter(Boolean).map(Number), [4, 5])
  .parse()
  .opts<{ dataMb: number; rate: number; restartSizes: number[] }>();

Runtime.install({ logger: new DefaultLogger('ERROR') });

interface Run {
  name: string;
  writes: LoadReport;
  totalMs: number;
  /** Existing members whose etcd pid changed (observed). */
  restarted: number;
  /** The most members seen down at once (observed), of the `members` there at the start. */
  maxDown: number;
  members: number;
  catchUpMs?: number;
}

const NEW = ['etcd4', 'etcd5'];

/** A way to scale out: `prepare` runs before the load and the clock start (e.g. a worker bundling its workflows). */
interface Procedure {
  prepare?(bed: Bed): Promise<void>;
  /** Does the scale-out; returns the learners' total catch-up time where it knows it. */
  run(bed: Bed): Promise<number | undefined>;
  cleanup?(): Promise<void>;
}

/** Runs a procedure on a fresh bed under load and measures what the writers and the liveness sampler saw. */
async function measure(name: string, procedure: Procedure, shape: { hosts: number; members: number } = { hosts: 5, members: 3 }): Promise<Run> {
  const bed = await Bed.up({ ...shape, net: '127.30.0', dir: join(tmpdir(), 'etcd-steward-bench-bed') });
  try {
    await procedure.prepare?.(bed);
    const load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials, rate: opts.rate, maxDurationMs: 5 * 60_000 });
    if (opts.dataMb > 0) await load.prefill(opts.dataMb);
    const existing = bed.spec.members.map((m) => m.name);
    const before = bed.etcdProcesses();
    for (const n of existing) if (before[n] === null) throw new Error(`${name}: ${n} has no etcd pid before the run: nothing to compare`);
    const live = new LivenessSampler(bed.spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })), bed.etcdCredentials, (n) => bed.etcdPid(n));
    load.start();
    await new Promise((r) => setTimeout(r, 2_000)); // steady state first
    const t0 = Date.now();
    const catchUpMs = await procedure.run(bed);
    const totalMs = Date.now() - t0;
    await bed.waitHealthy(120_000);
    await new Promise((r) => setTimeout(r, 2_000));
    const writes = await load.stop();
    await live.stop();
    const after = bed.etcdProcesses();
    const restarted = existing.filter((n) => after[n] !== null && JSON.stringify(before[n]) !== JSON.stringify(after[n])).length;
    const counts = live.counts();
    const unsampled = existing.filter((n) => (counts[n] ?? 0) < 10);
    if (unsampled.length) throw new Error(`${name}: too few liveness samples of ${unsampled.join(', ')}: the "down at once" figure would mean nothing`);
    const o = await bed.observe();
    const expected = shape.hosts;
    if (o.voters !== expected) throw new Error(`${name}: ended with ${o.voters} voting members, not ${expected}`);
    return { name, writes, totalMs, restarted, maxDown: live.maxDownAtOnce().count, members: existing.length, ...(catchUpMs !== undefined ? { catchUpMs } : {}) };
  } finally {
    await procedure.cleanup?.();
    await bed.down();
  }
}

/** Kubespray's way, driven with the project's own activities for the parts that are the same (cert, env files, start). */
async function naive(bed: Bed, restartBatch: (n: number) => number): Promise<undefined> {
  const acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
  const run = activityRunner(() => acts);
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
  return restartHandler(bed, members, restartBatch);
}

/** An etcd-steward workflow through a real Temporal dev server and worker, started before the clock. */
function steward(start: (client: StewardClient, bed: Bed) => Promise<number | undefined>): Procedure {
  let stop: (() => Promise<void>) | undefined;
  let run: ((bed: Bed) => Promise<number | undefined>) | undefined;
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
      run = (b) => start(client, b);
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

/** Kubespray's "Reload etcd" handler on its own: every member restarted, `batch(n)` at a time, waiting for health between batches. */
async function restartHandler(bed: Bed, members: Member[], batch: (n: number) => number): Promise<undefined> {
  const size = batch(members.length);
  for (let i = 0; i < members.length; i += size) {
    await Promise.all(members.slice(i, i + size).map((m) => sshRun(bed.host(m.name).ssh, bed.sshIdentity, expand(bed.spec.service.restart, m.name))));
    await bed.waitHealthy(120_000);
  }
  return undefined;
}

async function runAll(title: string, procedures: [string, () => Procedure][], shape?: { hosts: number; members: number }): Promise<void> {
  console.log(title);
  const runs: Run[] = [];
  for (const [name, f] of procedures) {
    process.stdout.write(`${name} ... `);
    const r = await measure(name, f(), shape);
    runs.push(r);
    console.log(`done in ${(r.totalMs / 1000).toFixed(1)} s`);
  }
  const base = runs[0]!;
  console.log('');
  for (const r of runs) {
    const w = r.writes;
    console.log(r.name);
    console.log(`  writes: ${w.ok} ok, ${w.failed} failed${w.late ? ` (${w.late} late: succeeded past their deadline)` : ''} (${ratio(w.failed, base.writes.failed)} of baseline)${w.stoppedItself ? '; the load hit its limit and stopped itself' : ''}`);
    console.log(`  longest write gap: ${w.longestGapMs} ms (${ratio(w.longestGapMs, base.writes.longestGapMs)})`);
    console.log(`  write latency: p50 ${w.p50Ms} ms (${ratio(w.p50Ms, base.writes.p50Ms)}), p99 ${w.p99Ms} ms (${ratio(w.p99Ms, base.writes.p99Ms)})`);
    console.log(`  total time: ${(r.totalMs / 1000).toFixed(1)} s (${ratio(r.totalMs, base.totalMs)})`);
    console.log(`  of the ${r.members} members at the start: restarted (pid changed) ${r.restarted}; most seen down at once ${r.maxDown} (${ratio(r.maxDown, base.maxDown)})`);
    if (r.catchUpMs !== undefined) console.log(`  learner catch-up ${r.catchUpMs} ms; orchestration overhead ${((r.totalMs - r.catchUpMs) / 1000).toFixed(1)} s`);
  }
  console.log('');
}

async function main(): Promise<void> {
  await runAll(`bench: 3 → 5 on identical fresh clusters, ${opts.dataMb} MB of data, ${opts.rate} writes/s\n`, [
    ['baseline (voting add + restart all at once)', () => ({ run: (b: Bed) => naive(b, (n) => n) })],
    ['throttled (voting add + restart floor(n/2) at a time)', () => ({ run: (b: Bed) => naive(b, (n) => Math.max(1, Math.floor(n / 2))) })],
    [
      'steward (learners, no restart)',
      () =>
        steward(async (client, b) => {
          const op = await client.startScaleOut({ spec: b.spec, add: NEW.map((n) => Bed.memberInput(b.host(n))) });
          const r = await op.result();
          return Object.values(r.catchUpMs).reduce((x, y) => x + y, 0);
        }),
    ],
  ]);
  for (const n of opts.restartSizes) {
    await runAll(
      `bench: rolling restart of ${n} members on identical fresh clusters, ${opts.dataMb} MB of data, ${opts.rate} writes/s\n`,
      [
        ['all at once (restart every member together)', () => ({ run: (b: Bed) => restartHandler(b, b.spec.members, (k) => k) })],
        ["throttled (Kubespray's floor(n/2) at a time)", () => ({ run: (b: Bed) => restartHandler(b, b.spec.members, (k) => Math.max(1, Math.floor(k / 2))) })],
        [
          'steward (rollingRestart, leader last)',
          () =>
            steward(async (client, b) => {
              const op = await client.startRollingRestart({ spec: b.spec, reason: 'bench' });
              await op.result();
              return undefined;
            }),
        ],
      ],
      { hosts: n, members: n },
    );
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
