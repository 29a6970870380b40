/**
 * `npm run demo`: the main job on this machine, with real parts only.
 *
 * Brings up the test bed (5 loopback hosts with sshd, a 3-member TLS etcd cluster on the first
 * three), a Temporal dev server with its Web UI, and a worker; puts data and a steady write
 * load on the cluster; scales it 3 → 5 with the scaleOut workflow while it serves writes; and
 * reports what the writers saw. Exits non-zero unless the cluster ends healthy with 5 voters.
 * With --restart it then rolling-restarts the 5 members under the same load, and reports what
 * was observed (pids, each member's liveness every ~100 ms, the writers), not the workflow's word.
 * With --scale-in it then scales back 5 → 3, removing the current leader and the last member
 * added, under the same load, and reports the same way (pids of the members that stay).
 * With --non-root the hosts refuse root logins and are reachable only through a bastion: the
 * worker logs in as `etcd-steward` with `become: sudo`, through the bastion (needs root to make
 * the bed's users, sudoers file and firewall rule), and reports how it reached them, observed.
 * With --temporal-mtls every connection to Temporal (the worker's, the client's) goes through an
 * mTLS proxy (nginx, client certificate required) in front of the dev server, the worker serves
 * Prometheus metrics, and the summary says both, observed (this process's sockets, a scrape).
 */
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { type ClusterObservation, observeCluster } from '../activities/etcd';
import { SshError, closeSshPool, sshExec } from '../activities/ssh';
import { type Operation, StewardClient, type OperationStatus } from '../client';
import { approvalPolicies, type ApprovalPolicy } from '../spec/operations';
import { Bed } from '../testbed';
import { LivenessSampler } from '../testbed/liveness';
import { connectionsTo, remotesOf } from '../testbed/procs';
import { type TlsProxy, startTemporalTlsProxy } from '../testbed/temporalTls';
import { temporalConnection } from '../client/connection';
import { prometheusRuntime } from '../worker/runtime';
import { WriteLoad } from '../testbed/load';
import { startTemporal } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';
import { innermostMessage } from '../common/errors';

const opts = new Command('demo')
  .description('scale a local 3-member TLS etcd cluster to 5 through Temporal while it serves writes')
  .addOption(new Option('--approval <policy>', 'when the quorum gate waits for an operator').choices(approvalPolicies).default('never'))
  .option('--data-mb <n>', 'data written before the scale-out', (v) => Number(v), 20)
  .option('--rate <n>', 'writes per second during the scale-out', (v) => Number(v), 100)
  .option('--restart', 'after the scale-out, rolling-restart the 5 members under the same write load', false)
  .option('--scale-in', 'at the end, scale back 5 → 3 (removing the current leader among others) under the same write load', false)
  .option('--non-root', 'SSH as the unprivileged user etcd-steward with sudo, through a bastion (the hosts refuse root logins; the bastion is the only way in)', false)
  .option('--temporal-mtls', 'connect the worker and the client to Temporal only through an mTLS proxy (nginx, client certificate required), and serve Prometheus metrics', false)
  .option('--metrics-port <port>', 'with --temporal-mtls: the worker\'s Prometheus endpoint port on 127.0.0.1', (v) => Number(v), 19464)
  .option('--keep', 'leave the bed, the Temporal server and its Web UI running at the end', false)
  .option('--temporal-port <port>', 'Temporal frontend port', (v) => Number(v), 17233)
  .option('--ui-port <port>', 'Temporal Web UI port', (v) => Number(v), 18233)
  .parse()
  .opts<{ approval: ApprovalPolicy; dataMb: number; rate: number; restart: boolean; scaleIn: boolean; nonRoot: boolean; temporalMtls: boolean; metricsPort: number; keep: boolean; temporalPort: number; uiPort: number }>();

const METRICS_ADDRESS = `127.0.0.1:${opts.metricsPort}`;
Runtime.install({ logger: new DefaultLogger('WARN'), ...(opts.temporalMtls ? prometheusRuntime(METRICS_ADDRESS) : {}) });

const t0 = Date.now();
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const stamp = () => `[${secs(Date.now() - t0).padStart(7)}]`;
const say = (line: string) => console.log(`${stamp()} ${line}`);

async function step<T>(label: string, f: () => Promise<T>): Promise<T> {
  const s = Date.now();
  const r = await f();
  say(`${label} (${secs(Date.now() - s)})`);
  return r;
}

async function main(): Promise<number> {
  console.log('etcd-steward demo: real etcd, real sshd, real TLS and a real Temporal dev server, all on loopback.\n');
  const access = opts.nonRoot ? '; root logins refused, a bastion on 127.10.0.254 the only way in' : '';
  const bed = await step(`test bed up: 5 hosts on 127.10.0.1-5 with sshd${access}; 3-member TLS etcd cluster on etcd1-3 (etcd ${process.env.ETCD_VERSION || '3.4, Debian\'s'})`, () =>
    Bed.up({
      hosts: 5,
      members: 3,
      ...(opts.nonRoot ? { access: 'sudo' as const, bastion: true } : {}),
      log: (line) => (line.startsWith('building etcd') || line.includes('built in') ? say(`  ${line}`) : undefined),
    }),
  );
  let temporal: Awaited<ReturnType<typeof startTemporal>> | undefined;
  let proxy: TlsProxy | undefined;
  let connection: NativeConnection | undefined;
  let steward: StewardClient | undefined;
  let load: WriteLoad | undefined;
  try {
    // Another port, another directory: a server recorded in a directory is stopped when the next one starts there.
    const place = opts.temporalPort === 17233 ? '' : `-${opts.temporalPort}`;
    temporal = await step('Temporal dev server and Web UI up', () => startTemporal({ dir: join(tmpdir(), `etcd-steward-temporal${place}`), port: opts.temporalPort, uiPort: opts.uiPort }));
    proxy = opts.temporalMtls
      ? await step(`mTLS proxy for Temporal up (nginx on 127.0.0.1:${opts.temporalPort + 210}, client certificate required)`, () =>
          startTemporalTlsProxy({ dir: join(tmpdir(), `etcd-steward-temporal-proxy${place}`), port: opts.temporalPort + 210, upstream: temporal!.address }),
        )
      : undefined;
    // How the worker and the client connect: through the proxy with TEMPORAL_TLS_*, or straight to the dev server.
    const temporalSettings = temporalConnection(proxy ? { env: { ...proxy.env, HOME: tmpdir() } } : { address: temporal.address, env: { HOME: tmpdir() } });
    connection = await NativeConnection.connect(temporalSettings.options);
    const worker = await step('worker ready', () =>
      createWorker({ connection: connection!, namespace: temporal!.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials } }),
    );
    steward = await StewardClient.connect({ temporal: temporalSettings });

    load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials, rate: opts.rate, maxDurationMs: 15 * 60_000 });
    if (opts.dataMb > 0) await step(`${opts.dataMb} MB of data written`, () => load!.prefill(opts.dataMb));
    load.start();
    say(`write load started: ${opts.rate} writes/s`);
    const before = bed.etcdProcesses();
    const scaleOutWindow = load.window();

    const op = await steward.startScaleOut({
      spec: bed.spec,
      add: ['etcd4', 'etcd5'].map((n) => Bed.memberInput(bed.host(n))),
      policy: { approval: opts.approval },
    });
    say(`scaleOut started: workflow ${op.workflowId}`);
    say(`  watch it in the Web UI: ${temporal.uiUrl}/namespaces/default/workflows/${op.workflowId}`);
    if (opts.approval !== 'never') {
      say(`  approval "${opts.approval}": send the "approve" signal from the Web UI (Send a Signal → approve), or run`);
      say(`    npm run steward -- approve --cluster ${bed.spec.name} --address ${temporal.address}`);
    }

    const worked = worker.run();
    const { outcome, error, opMs } = await follow(op);
    const writes = await scaleOutWindow.close();
    // Who holds the connections to the hosts' sshd now (the pool keeps them open a while): observed, not reported.
    const sshOwners = bed.hosts.flatMap((h) => connectionsTo(h.address, h.ssh.port));
    const accessEvents = (await op.status()).events.map((e) => e.message).filter((m) => m.startsWith('access '));
    const rootRefused = opts.nonRoot ? await rootLoginsRefused(bed) : [];

    const after = bed.etcdProcesses();
    const restarted = ['etcd1', 'etcd2', 'etcd3'].filter((n) => JSON.stringify(before[n]) !== JSON.stringify(after[n]));
    const health = await bed.observe();
    const names = health.members.filter((m) => !m.isLearner).map((m) => m.name).sort();
    const ok = outcome === 'completed' && health.healthy && names.join() === 'etcd1,etcd2,etcd3,etcd4,etcd5' && restarted.length === 0;

    console.log('\nsummary');
    console.log(`scale-out 3 → 5: ${outcome} in ${secs(opMs)}${error ? `: ${error}` : ''}`);
    console.log(`existing members restarted: ${restarted.length}${restarted.length ? ` (${restarted.join(', ')})` : ''}`);
    console.log(`writes: ${writes.ok} ok, ${writes.failed} failed${writes.late ? ` (${writes.late} of them succeeded only after their 5 s deadline)` : ''}, longest gap ${writes.longestGapMs} ms`);
    console.log(`write latency: p50 ${writes.p50Ms} ms, p99 ${writes.p99Ms} ms, max ${writes.maxMs} ms${writes.errors.length ? `; errors: ${writes.errors.join(' | ')}` : ''}`);
    console.log(`cluster: ${health.voters} voting members (${names.join(', ')}), ${health.learners} learners, ${health.healthy ? 'healthy' : `NOT healthy: ${health.problems.join('; ')}`}`);
    console.log(`etcd version: ${versionsOf(health)} (as the members report it; the bed runs ${bed.etcd.label}: ETCD_VERSION=3.4|3.5|3.6|3.7)`);
    const accessOk = !opts.nonRoot || reportAccess(bed, accessEvents, sshOwners, rootRefused);
    const temporalOk = !proxy || (await reportTemporal(proxy.address, temporal.address));
    let restartOk = accessOk && temporalOk;
    if (opts.restart && ok && restartOk) restartOk = await rollingRestart(bed, steward, load);
    if (opts.scaleIn && ok && restartOk) restartOk = await scaleIn(bed, steward, load);
    const whole = await load.stop();
    load = undefined;
    if (whole.stoppedItself) console.log('note: the write load reached its 15-minute limit and stopped itself before the end; later figures saw no writes');
    worker.shutdown();
    await worked;
    console.log(`\n${ok && restartOk ? 'OK' : 'FAILED'} (total ${secs(Date.now() - t0)})`);
    if (opts.keep) {
      console.log(`\nLeft running: the bed in ${bed.dir}, Temporal at ${temporal.address}, Web UI ${temporal.uiUrl}. Stop it all with: npm run bed -- down`);
      temporal = undefined;
    }
    return ok && restartOk ? 0 : 1;
  } finally {
    await load?.stop();
    if (!opts.keep) await proxy?.stop();
    await closeSshPool(); // the in-process worker's SSH connections
    await steward?.close();
    await connection?.close();
    if (!opts.keep) {
      await temporal?.stop();
      await bed.down();
    }
  }
}

/**
 * `access: user <name> via bastion <address>, sudo` when every host's preflight said so and every
 * connection to the hosts' sshd seen at the end was the bastion's (its login user's); false otherwise.
 */
function reportAccess(bed: Bed, events: string[], owners: number[], rootRefused: string[]): boolean {
  const b = bed.bastion!;
  const user = bed.spec.members[0]!.ssh.user;
  const expected = ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5'].map((n) => `access ${n}: user ${user} via bastion ${b.address}:${b.port}, sudo -n works`);
  const missing = expected.filter((e) => !events.includes(e));
  const jumpUid = Number(execFileSync('id', ['-u', b.user], { encoding: 'utf8' }).trim());
  const direct = owners.filter((uid) => uid !== jumpUid).length;
  const ok = missing.length === 0 && owners.length > 0 && direct === 0 && rootRefused.length === bed.hosts.length;
  if (ok) console.log(`access: user ${user} via bastion ${b.address}:${b.port}, sudo`);
  else console.log(`access: NOT as expected: ${missing.length ? `preflight did not report ${missing.join('; ')}` : ''}${owners.length === 0 ? ' no connection to the hosts\' sshd was seen' : ''}${direct ? ` ${direct} connection(s) to the hosts' sshd not from the bastion` : ''}${rootRefused.length < bed.hosts.length ? ` root could log in on some host` : ''}`);
  console.log(`  observed: ${owners.length} connection(s) to the hosts' sshd, ${owners.length - direct} of them the bastion's tunnels (user ${b.user}); a root login through the bastion refused by ${rootRefused.length} of ${bed.hosts.length} hosts`);
  return ok;
}

/**
 * `temporal: mTLS via <address>` when this process (worker and client) holds connections to the
 * proxy and none to the dev server; `metrics: <N> etcd_steward_* series at <url>` from a scrape.
 */
async function reportTemporal(proxyAddress: string, serverAddress: string): Promise<boolean> {
  const remotes = remotesOf(process.pid);
  const viaProxy = remotes.filter((r) => r === proxyAddress).length;
  const direct = remotes.filter((r) => r === serverAddress).length;
  const url = `http://${METRICS_ADDRESS}/metrics`;
  const text = await fetch(url).then(
    (r) => r.text(),
    () => '',
  );
  const series = new Set(text.split('\n').filter((l) => l.startsWith('etcd_steward_')).map((l) => l.replace(/ [^ ]+$/, ''))).size;
  const ok = viaProxy > 0 && direct === 0 && series > 0;
  console.log(ok ? `temporal: mTLS via ${proxyAddress}` : `temporal: NOT only through the proxy: ${viaProxy} connection(s) to ${proxyAddress}, ${direct} to the dev server ${serverAddress}`);
  console.log(`  observed: this process (worker and client) holds ${viaProxy} connection(s) to the proxy and ${direct} to the dev server`);
  console.log(`metrics: ${series} etcd_steward_* series at ${url}`);
  return ok;
}

/** The hosts whose sshd refuses a root login (tried through the bastion with the worker's key). */
async function rootLoginsRefused(bed: Bed): Promise<string[]> {
  const refused: string[] = [];
  for (const h of bed.hosts) {
    const err = await sshExec({ ...h.ssh, user: 'root', become: undefined }, bed.sshIdentity, 'true', { timeoutMs: 10_000 }).then(
      () => null,
      (e: unknown) => e,
    );
    if (err instanceof SshError && err.kind === 'auth') refused.push(h.name);
  }
  return refused;
}

/** The etcd server versions the members report ("3.6.16", or "3.5.35 (etcd1), 3.6.16 (etcd2, etcd3)" when mixed). */
function versionsOf(o: ClusterObservation): string {
  const by = new Map<string, string[]>();
  for (const s of o.statuses) if (s.version) by.set(s.version, [...(by.get(s.version) ?? []), s.name]);
  if (by.size === 0) return 'unknown (no member answered)';
  if (by.size === 1) return [...by.keys()][0]!;
  return [...by].map(([v, names]) => `${v} (${names.join(', ')})`).join(', ');
}

/** Prints every new event of an operation as it happens, until it ends. */
async function follow(op: Operation<{ outcome: string }>): Promise<{ outcome: string; error?: string; opMs: number }> {
  const seen = new Set<string>();
  const showNew = (s: OperationStatus | undefined) => {
    for (const e of s?.events ?? []) {
      const key = `${e.at} ${e.message}`;
      if (!seen.has(key)) {
        seen.add(key);
        say(`  ${e.message}`);
      }
    }
  };
  const progress = setInterval(() => void op.status().then(showNew, () => undefined), 300);
  const opStart = Date.now();
  let outcome: string;
  let error: string | undefined;
  try {
    outcome = (await op.result()).outcome;
  } catch (e) {
    outcome = 'failed';
    error = innermostMessage(e);
  } finally {
    clearInterval(progress);
  }
  const opMs = Date.now() - opStart;
  showNew(await op.status().catch(() => undefined));
  return { outcome, opMs, ...(error ? { error } : {}) };
}

/**
 * The 5 members rolling-restarted under the running load. Every figure is observed: pids from
 * the hosts' pidfiles, liveness from each member's own Status every ~100 ms, writes from the load.
 */
async function rollingRestart(bed: Bed, steward: StewardClient, load: WriteLoad): Promise<boolean> {
  const spec = { ...bed.spec, members: bed.hosts.slice(0, 5).map((h) => Bed.memberInput(h)) };
  const names = spec.members.map((m) => m.name);
  const pidsBefore = Object.fromEntries(names.map((n) => [n, bed.etcdPid(n)]));
  const live = new LivenessSampler(spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })), bed.etcdCredentials, (n) => bed.etcdPid(n));
  const window = load.window();
  console.log('');
  const op = await steward.startRollingRestart({ spec, reason: 'demo: restart every member, one at a time', policy: { approval: opts.approval } });
  say(`rollingRestart started: workflow ${op.workflowId}`);
  const { outcome, error, opMs } = await follow(op);
  const writes = await window.close();
  await live.stop();
  const restarted = names.filter((n) => pidsBefore[n] !== null && bed.etcdPid(n) !== null && bed.etcdPid(n) !== pidsBefore[n]);
  const counts = live.counts();
  const unsampled = names.filter((n) => (counts[n] ?? 0) === 0);
  const worst = live.maxDownAtOnce();
  const ok = outcome === 'completed' && restarted.length === names.length && unsampled.length === 0 && worst.count <= 1;
  console.log(`rolling restart of ${names.length} members: ${outcome} in ${secs(opMs)}${error ? `: ${error}` : ''}`);
  console.log(
    `members restarted: ${restarted.length} of ${names.length}, at most ${worst.count} down at once` +
      (unsampled.length ? ` (NOT observed: no liveness samples of ${unsampled.join(', ')})` : ` (${live.samples.length} liveness samples)`),
  );
  console.log(`writes: ${writes.ok} ok, ${writes.failed} failed${writes.late ? ` (${writes.late} of them succeeded only after their 5 s deadline)` : ''}, longest gap ${writes.longestGapMs} ms`);
  console.log(`write latency: p50 ${writes.p50Ms} ms, p99 ${writes.p99Ms} ms, max ${writes.maxMs} ms${writes.errors.length ? `; errors: ${writes.errors.join(' | ')}` : ''}`);
  return ok;
}

/**
 * 5 → 3 under the running load, removing the current leader and the last member added. Every
 * figure is observed: the staying members' pids from the pidfiles, the membership from etcd, the
 * writes from the load (whose client still lists the original three endpoints, as an
 * application's configuration would).
 */
async function scaleIn(bed: Bed, steward: StewardClient, load: WriteLoad): Promise<boolean> {
  const spec = { ...bed.spec, members: bed.hosts.slice(0, 5).map((h) => Bed.memberInput(h)) };
  const names = spec.members.map((m) => m.name);
  const o = await observeCluster(bed.etcdCredentials, { endpoints: spec.members.flatMap((m) => m.clientURLs) });
  const leader = o.statuses.find((x) => x.id === o.leaderId)?.name;
  if (!leader) throw new Error(`no leader before the scale-in: ${o.problems.join('; ')}`);
  const remove = [leader, names.filter((n) => n !== leader).at(-1)!];
  const staying = names.filter((n) => !remove.includes(n));
  const pidsBefore = Object.fromEntries(staying.map((n) => [n, bed.etcdPid(n)]));
  const window = load.window();
  console.log('');
  const op = await steward.startScaleIn({ spec, remove, policy: { approval: opts.approval } });
  say(`scaleIn started: workflow ${op.workflowId} (removing ${remove.join(', ')}; ${leader} leads now)`);
  const { outcome, error, opMs } = await follow(op);
  const writes = await window.close();
  const restarted = staying.filter((n) => pidsBefore[n] === null || bed.etcdPid(n) !== pidsBefore[n]);
  const health = await observeCluster(bed.etcdCredentials, { endpoints: spec.members.filter((m) => staying.includes(m.name)).flatMap((m) => m.clientURLs) });
  const voters = health.members.filter((m) => !m.isLearner).map((m) => m.name).sort();
  const ok = outcome === 'completed' && restarted.length === 0 && health.healthy && voters.join() === [...staying].sort().join();
  console.log(`scale-in 5 → 3: ${outcome} in ${secs(opMs)}${error ? `: ${error}` : ''}`);
  console.log(`existing members restarted: ${restarted.length}${restarted.length ? ` (${restarted.join(', ')})` : ''}`);
  console.log(`writes: ${writes.ok} ok, ${writes.failed} failed${writes.late ? ` (${writes.late} of them succeeded only after their 5 s deadline)` : ''}, longest gap ${writes.longestGapMs} ms`);
  console.log(`write latency: p50 ${writes.p50Ms} ms, p99 ${writes.p99Ms} ms, max ${writes.maxMs} ms${writes.errors.length ? `; errors: ${writes.errors.join(' | ')}` : ''}`);
  console.log(`cluster: ${health.voters} voting members (${voters.join(', ')}), ${health.learners} learners, ${health.healthy ? 'healthy' : `NOT healthy: ${health.problems.join('; ')}`}`);
  return ok;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
