// Integration: production Temporal settings — reached only through mTLS, metrics to alert on. nginx's stream module terminates TLS in front
// of the dev server and requires a client certificate (testbed/temporalTls.ts); a worker process
// and the CLI connect through it with the Temporal CLI's own variables (TEMPORAL_ADDRESS,
// TEMPORAL_TLS_*), and a scale-out runs on a real bed. Observed, not assumed: the worker's
// sockets (from /proc) go to the proxy and none to the dev server. A CLI without a client
// certificate is refused with a message saying why; a missing certificate file is named.
// The worker serves Prometheus metrics: etcd_steward_* counters move with a completed and a failed
// operation, and no secret shows in a label or the log.
// With OTEL_TRACES_EXPORTER=otlp the worker's workflow and activity spans reach an OTLP/HTTP
// receiver (a small one in this test).
// Its own ports and addresses (Temporal 27283/28283, proxy 27284, metrics 27285, OTLP 27286, hosts 127.26.0.x).
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Bed } from '../testbed';
import { type TemporalServer, startTemporal } from '../testbed/temporal';
import { remotesOf } from '../testbed/procs';
import { type TlsProxy, startTemporalTlsProxy } from '../testbed/temporalTls';
import { StewardClient, temporalConnection } from '../client';
import { causeChain, waitFor } from './helpers';

const ROOT = resolve(__dirname, '..');
const TEMPORAL = { port: 27283, uiPort: 28283 };
const PROXY_PORT = 27284;
const METRICS_ADDRESS = '127.0.0.1:27285';
const OTLP_PORT = 27286;

/** The sum of the samples of `name` whose labels include `labels` (Prometheus text format). */
function sample(text: string, name: string, labels: Record<string, string>): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a process we start: nothing of the test run's Temporal settings, no config file. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: '/nonexistent', ...extra };
  for (const k of Object.keys(env)) if ((k.startsWith('TEMPORAL_') && !(k in extra)) || k.startsWith('STEWARD_TEMPORAL') || k === 'STEWARD_NAMESPACE' || k === 'NODE_TEST_CONTEXT' || k === 'NODE_OPTIONS') delete env[k];
  return env;
}

function cli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<Run> {
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', '--disable-warning=DEP0123', 'client/cli/main.ts', ...args], { cwd: ROOT, env: cleanEnv(env), timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr });
    });
  });
}
const show = (r: Run) => `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

describe('Temporal through mTLS (nginx in front of the dev server)', () => {
  let temporal: TemporalServer;
  let proxy: TlsProxy;
  let bed: Bed;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  /** The worker's log lines that are JSON objects (all of them: a non-JSON line fails the test). */
  const logLines = () =>
    workerLog
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return assert.fail(`a worker log line is not JSON: ${l}`);
        }
      });
  let files: string;
  const f = (n: string) => join(files, n);
  /** What the OTLP receiver got: spans by name, with their resource's service.name. */
  const spans: { name: string; service: string }[] = [];
  let otlp: Server | undefined;

  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'etcd-steward-mtls-'));
    otlp = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        try {
          const doc = JSON.parse(body) as { resourceSpans?: { resource?: { attributes?: { key: string; value: { stringValue?: string } }[] }; scopeSpans?: { spans?: { name: string }[] }[] }[] };
          for (const rs of doc.resourceSpans ?? []) {
            const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
            for (const ss of rs.scopeSpans ?? []) for (const sp of ss.spans ?? []) spans.push({ name: sp.name, service });
          }
        } catch {
          /* not JSON: counted as nothing */
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => otlp!.listen(OTLP_PORT, '127.0.0.1', r));
    temporal = await startTemporal({ dir: join(tmpdir(), 'etcd-steward-temporal-mtls'), ...TEMPORAL });
    proxy = await startTemporalTlsProxy({ dir: join(tmpdir(), 'etcd-steward-temporal-mtls-proxy'), port: PROXY_PORT, upstream: temporal.address });
    bed = await Bed.up({ hosts: 4, members: 3, net: '127.26.0', dir: join(tmpdir(), 'etcd-steward-bed-mtls'), name: 'mtls' });
    writeFileSync(f('spec.json'), JSON.stringify(bed.spec, null, 2));
    writeFileSync(f('add.json'), JSON.stringify([Bed.memberInput(bed.host('etcd4'))], null, 2));
  });
  after(async () => {
    worker?.kill('SIGTERM');
    otlp?.close();
    await bed?.down();
    await proxy?.stop();
    await temporal?.stop();
    rmSync(files, { recursive: true, force: true });
  });

  it('a worker process connects through the proxy with TEMPORAL_TLS_* and says how', async () => {
    worker = spawn(process.execPath, ['--import', 'tsx', '--disable-warning=DEP0123', 'worker/main.ts'], {
      cwd: ROOT,
      env: cleanEnv({
        ...proxy.env,
        STEWARD_SSH_KEY: bed.secretFiles.sshKey,
        STEWARD_ETCD_CA: bed.secretFiles.etcdCa,
        STEWARD_ETCD_CERT: bed.secretFiles.etcdCert,
        STEWARD_ETCD_KEY: bed.secretFiles.etcdKey,
        STEWARD_METRICS_ADDRESS: METRICS_ADDRESS,
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${OTLP_PORT}/v1/traces`,
        OTEL_BSP_SCHEDULE_DELAY: '200',
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
    await waitFor('the worker to poll', () => /polling task queue/.test(workerLog) || worker!.exitCode !== null, 60_000);
    // stderr is not a terminal: one JSON object per line
    const polling = logLines().find((l) => String(l.message).includes('polling task queue'));
    assert.ok(polling, workerLog);
    assert.match(String(polling.message), new RegExp(`polling task queue "etcd-steward" on 127\\.0\\.0\\.1:${PROXY_PORT} \\(mTLS\\), namespace default`));
    assert.match(String(polling.message), new RegExp(`metrics on http://${METRICS_ADDRESS.replace(/\./g, '\\.')}/metrics`));
    assert.equal(polling.level, 'INFO');
  });

  it('scale-out 3 → 4 from the CLI through the proxy; the worker talks to the proxy only', async () => {
    const r = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add.json'), '--wait'], proxy.env);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /completed/, show(r));
    assert.equal((await bed.observe()).voters, 4);
    // The operation's events in the worker's log, as JSON with the cluster, the operation, the step and the workflow id.
    const done = await waitFor('the completion in the worker log', () => logLines().find((l) => String(l.message).startsWith('completed: 4 voting members')), 10_000);
    assert.deepEqual([done.cluster, done.operation, done.step, done.workflowId, done.workflowType], ['mtls', 'scaleOut', 'completed', 'etcd-steward-mtls', 'scaleOut']);
    assert.ok(logLines().some((l) => l.activityType === 'startMember' || (typeof l.message === 'string' && l.step === 'join')), 'no step or activity in the log lines');
    const remotes = remotesOf(worker!.pid!);
    assert.ok(remotes.includes(proxy.address), `the worker holds no connection to the proxy: ${remotes.join(', ')}`);
    assert.ok(!remotes.includes(temporal.address), `the worker reached the dev server directly: ${remotes.join(', ')}`);
  });

  it('the metrics endpoint: etcd_steward_* counters move with a completed and a failed scale-out; gates, batches, catch-up, retries by step; no secret in a label or the log', async () => {
    const scrape = async () => (await fetch(`http://${METRICS_ADDRESS}/metrics`)).text();
    // A scale-out that fails: a new host with no sshd; preflight's three tries fail (two retries), then the operation.
    const steward = await StewardClient.connect({ temporal: temporalConnection({ env: cleanEnv(proxy.env) }) });
    try {
      const spec = { ...bed.spec, members: bed.hosts.slice(0, 4).map((h) => Bed.memberInput(h)) };
      const ghost = { ...Bed.memberInput(bed.host('etcd4')), name: 'ghost', address: '127.26.0.99', peerURLs: ['https://127.26.0.99:2380'], clientURLs: ['https://127.26.0.99:2379'] };
      ghost.ssh = { ...ghost.ssh, host: '127.26.0.99' };
      const op = await steward.startScaleOut({ spec, add: [ghost] });
      const err = await op.result().then(
        () => assert.fail('the scale-out completed'),
        (e: unknown) => e,
      );
      assert.match(causeChain(err), /cannot reach sshd/);
    } finally {
      await steward.close();
    }
    const labels = { cluster: 'mtls', operation: 'scaleOut' };
    const text = await waitFor('the failed operation in the metrics', async () => {
      const t = await scrape();
      return (sample(t, 'etcd_steward_operations_ended_total', { ...labels, outcome: 'failed' }) ?? 0) >= 1 ? t : null;
    }, 30_000, 500);
    assert.equal(sample(text, 'etcd_steward_operations_started_total', labels), 2, 'two scale-outs started');
    assert.equal(sample(text, 'etcd_steward_operations_ended_total', { ...labels, outcome: 'completed' }), 1);
    assert.equal(sample(text, 'etcd_steward_operations_ended_total', { ...labels, outcome: 'failed' }), 1);
    assert.equal(sample(text, 'etcd_steward_batches_total', labels), 1, 'one batch let through its gate');
    assert.equal(sample(text, 'etcd_steward_gate_wait_seconds_count', labels), 2, "the batch's gate and the final check");
    assert.equal(sample(text, 'etcd_steward_gate_waiting', labels), 0, 'no gate waiting now');
    assert.equal(sample(text, 'etcd_steward_learner_catch_up_seconds_count', labels), 1);
    assert.ok((sample(text, 'etcd_steward_learner_catch_up_seconds_sum', labels) ?? 0) > 0);
    assert.equal(sample(text, 'etcd_steward_activity_retries_total', { ...labels, step: 'preflightScaleOut' }), 2, 'preflight tried three times');
    const ours = text.split('\n').filter((l) => l.startsWith('etcd_steward_'));
    assert.ok(new Set(ours.map((l) => l.split(/[{ ]/)[0])).size >= 8, `etcd_steward_* series:\n${ours.join('\n')}`);
    assert.ok(text.includes('temporal_'), "the SDK's own metrics are served too");
    for (const secret of [readFileSync(proxy.files.clientKey, 'utf8'), readFileSync(bed.secretFiles.sshKey, 'utf8'), readFileSync(bed.secretFiles.etcdKey, 'utf8')]) {
      const body = secret.split('\n')[1]!; // a line of key material
      assert.ok(!text.includes(body) && !workerLog.includes(body), 'key material in the metrics or the worker log');
    }
    assert.doesNotMatch(text + workerLog, /PRIVATE KEY/);
  });

  it('tracing (OTEL_TRACES_EXPORTER=otlp): the scale-out\'s workflow and activity spans reach the OTLP receiver', async () => {
    await waitFor('spans of the scale-out', () => spans.some((s) => s.name === 'RunWorkflow:scaleOut') && spans.some((s) => s.name === 'RunActivity:startMember'), 30_000, 200);
    const names = new Set(spans.map((s) => s.name));
    for (const n of ['RunWorkflow:scaleOut', 'StartActivity:preflightScaleOut', 'RunActivity:preflightScaleOut', 'RunActivity:addLearner', 'RunActivity:promoteLearner']) assert.ok(names.has(n), `no span ${n} in: ${[...names].join(', ')}`);
    assert.deepEqual([...new Set(spans.map((s) => s.service))], ['etcd-steward-worker']);
  });

  it('a CLI without a client certificate is refused, and says what it tried and what the server wants', async () => {
    const { TEMPORAL_TLS_CLIENT_CERT_PATH: _c, TEMPORAL_TLS_CLIENT_KEY_PATH: _k, ...noCert } = proxy.env;
    const r = await cli(['health', '--spec', f('spec.json')], noCert);
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      new RegExp(`cannot connect to Temporal at 127\\.0\\.0\\.1:${PROXY_PORT} \\(TLS\\), namespace default \\(with TLS and no client certificate; a server that wants mTLS needs TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH\\)`),
      show(r),
    );
    assert.match(readFileSync(join(tmpdir(), 'etcd-steward-temporal-mtls-proxy', 'error.log'), 'utf8'), /client sent no required SSL certificate/, 'nginx did not see a client without a certificate');
    const plain = await cli(['health', '--spec', f('spec.json')], { TEMPORAL_ADDRESS: proxy.address });
    assert.equal(plain.code, 1, show(plain));
    assert.match(plain.stderr, /\(plaintext\), namespace default \(without TLS; a server that wants TLS needs TEMPORAL_TLS_\* \(or a --profile with tls\)\)/, show(plain));
  });

  it('a certificate file that cannot be read is named with its setting (CLI exit 2, worker exit 1), before any connection', async () => {
    const missing = join(files, 'no-such-client.pem');
    const r = await cli(['health', '--spec', f('spec.json')], { ...proxy.env, TEMPORAL_TLS_CLIENT_CERT_PATH: missing });
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, new RegExp(`the Temporal TLS client certificate ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(TEMPORAL_TLS_CLIENT_CERT_PATH\\) cannot be read: ENOENT`), show(r));
    const w = await new Promise<Run>((res) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', '--disable-warning=DEP0123', 'worker/main.ts'],
        { cwd: ROOT, env: cleanEnv({ ...proxy.env, TEMPORAL_TLS_CLIENT_KEY_PATH: missing, STEWARD_SSH_KEY: bed.secretFiles.sshKey, STEWARD_ETCD_CA: bed.secretFiles.etcdCa, STEWARD_ETCD_CERT: bed.secretFiles.etcdCert, STEWARD_ETCD_KEY: bed.secretFiles.etcdKey }), timeout: 60_000 },
        (err, stdout, stderr) => res({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
      ),
    );
    assert.equal(w.code, 1, show(w));
    assert.match(w.stderr, /the Temporal TLS client key .*no-such-client\.pem \(TEMPORAL_TLS_CLIENT_KEY_PATH\) cannot be read: ENOENT/, show(w));
    assert.doesNotMatch(w.stderr + r.stderr, /BEGIN|PRIVATE KEY/, 'no key material in the messages');
  });
});
