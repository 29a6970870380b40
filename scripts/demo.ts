/**
 * `npm run demo`: the main job on this machine, with real parts only.
 *
 * Brings up the test bed (5 loopback hosts with sshd, a 3-member TLS etcd cluster on the first
 * three), a Temporal dev server with its Web UI, and a worker; then runs the clusterHealth
 * workflow and prints what it saw. Exits non-zero unless the cluster is healthy.
 * `--keep` leaves everything running to explore (the Web UI, `npm run bed -- down` to stop).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { StewardClient } from '../client';
import { Bed } from '../testbed';
import { startTemporal } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';
import type { HealthReport } from '../workflows/health';

const opts = new Command('demo')
  .description('bring up a local TLS etcd cluster on loopback hosts and report its health through a Temporal workflow')
  .option('--keep', 'leave the bed, the Temporal server and its Web UI running at the end', false)
  .option('--temporal-port <port>', 'Temporal frontend port', (v) => Number(v), 17233)
  .option('--ui-port <port>', 'Temporal Web UI port', (v) => Number(v), 18233)
  .parse()
  .opts<{ keep: boolean; temporalPort: number; uiPort: number }>();

Runtime.install({ logger: new DefaultLogger('WARN') });

const t0 = Date.now();
const secs = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
async function step<T>(label: string, f: () => Promise<T>): Promise<T> {
  const s = Date.now();
  process.stdout.write(`${label} ... `);
  const r = await f();
  process.stdout.write(`done (${secs(s)})\n`);
  return r;
}

function printReport(r: HealthReport): void {
  console.log(`\ncluster "${r.cluster}": ${r.healthy ? 'healthy' : 'NOT healthy'}; ${r.voters} voting members, ${r.learners} learners, leader ${r.leader ?? 'none'}`);
  console.log(`quorum ${r.quorum}, can lose ${r.failureTolerance} more member(s) without losing it`);
  for (const m of r.members) {
    const db = m.dbSizeBytes !== undefined ? `${(m.dbSizeBytes / 1024).toFixed(0)} KiB` : '-';
    console.log(`  ${m.name.padEnd(8)} ${m.learner ? 'learner' : 'voter  '} ${m.answers ? 'answers' : 'DOWN   '} applied=${(m.raftAppliedIndex ?? '-').padEnd(6)} db=${db.padEnd(8)} ${m.version ?? ''} ${m.error ?? ''}`);
  }
  for (const p of r.problems) console.log(`  problem: ${p}`);
}

async function main(): Promise<number> {
  console.log('etcd-steward demo: real etcd, real sshd, real TLS, a real Temporal dev server — all on loopback.\n');
  const bed = await step('test bed: 5 hosts on 127.10.0.1-5 with sshd, 3-member TLS etcd cluster on etcd1-3', () => Bed.up({ hosts: 5, members: 3 }));
  let temporal: Awaited<ReturnType<typeof startTemporal>> | undefined;
  let connection: NativeConnection | undefined;
  let steward: StewardClient | undefined;
  try {
    temporal = await step('Temporal dev server and Web UI', () => startTemporal({ dir: join(tmpdir(), 'etcd-steward-temporal'), port: opts.temporalPort, uiPort: opts.uiPort }));
    console.log(`  Web UI: ${temporal.uiUrl}/namespaces/default/workflows`);
    connection = await NativeConnection.connect({ address: temporal.address });
    const worker = await step('worker (bundling the workflows)', () =>
      createWorker({ connection: connection!, namespace: temporal!.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials } }),
    );
    steward = await StewardClient.connect({ address: temporal.address });
    const report = await worker.runUntil(step('clusterHealth workflow', () => steward!.clusterHealth(bed.spec)));
    printReport(report);
    const ok = report.healthy && report.voters === 3;
    console.log(`\n${ok ? 'OK' : 'FAILED'}: the cluster is ${report.healthy ? 'healthy' : 'not healthy'} with ${report.voters} voting members (total ${secs(t0)})`);
    if (opts.keep) {
      console.log(`\nLeft running: the bed in ${bed.dir}, Temporal at ${temporal.address}, Web UI ${temporal.uiUrl}.`);
      console.log('Stop it all with: npm run bed -- down');
      temporal = undefined;
    }
    return ok ? 0 : 1;
  } finally {
    await steward?.close();
    await connection?.close();
    if (!opts.keep) {
      await temporal?.stop();
      await bed.down();
    }
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
