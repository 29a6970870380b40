// Integration: Temporal reached only through mTLS. nginx's stream module terminates TLS in front
// of the dev server and requires a client certificate (testbed/temporalTls.ts); a worker process
// and the CLI connect through it with the Temporal CLI's own variables (TEMPORAL_ADDRESS,
// TEMPORAL_TLS_*), and a scale-out runs on a real bed. Observed, not assumed: the worker's
// sockets (from /proc) go to the proxy and none to the dev server. A CLI without a client
// certificate is refused with a message saying why; a missing certificate file is named.
// Its own ports and addresses (Temporal 27283/28283, proxy 27284, hosts 127.26.0.x).
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Bed } from '../testbed';
import { type TemporalServer, startTemporal } from '../testbed/temporal';
import { type TlsProxy, startTemporalTlsProxy } from '../testbed/temporalTls';
import { waitFor } from './helpers';

const ROOT = resolve(__dirname, '..');
const TEMPORAL = { port: 27283, uiPort: 28283 };
const PROXY_PORT = 27284;

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

/** The remote `a.b.c.d:port` of each TCP socket process `pid` holds (its fds matched to /proc/net/tcp by inode). */
function remotesOf(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: string[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9]!) || f[3] !== '01') continue;
    const [ipHex, portHex] = f[2]!.split(':');
    const ip = [3, 2, 1, 0].map((i) => parseInt(ipHex!.slice(i * 2, i * 2 + 2), 16)).join('.');
    out.push(`${ip}:${parseInt(portHex!, 16)}`);
  }
  return out;
}

describe('Temporal through mTLS (nginx in front of the dev server)', () => {
  let temporal: TemporalServer;
  let proxy: TlsProxy;
  let bed: Bed;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  let files: string;
  const f = (n: string) => join(files, n);

  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'etcd-steward-mtls-'));
    temporal = await startTemporal({ dir: join(tmpdir(), 'etcd-steward-temporal-mtls'), ...TEMPORAL });
    proxy = await startTemporalTlsProxy({ dir: join(tmpdir(), 'etcd-steward-temporal-mtls-proxy'), port: PROXY_PORT, upstream: temporal.address });
    bed = await Bed.up({ hosts: 4, members: 3, net: '127.26.0', dir: join(tmpdir(), 'etcd-steward-bed-mtls'), name: 'mtls' });
    writeFileSync(f('spec.json'), JSON.stringify(bed.spec, null, 2));
    writeFileSync(f('add.json'), JSON.stringify([Bed.memberInput(bed.host('etcd4'))], null, 2));
  });
  after(async () => {
    worker?.kill('SIGTERM');
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
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (workerLog += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (workerLog += d.toString()));
    await waitFor('the worker to poll', () => /polling task queue/.test(workerLog) || worker!.exitCode !== null, 60_000);
    assert.match(workerLog, new RegExp(`polling task queue "etcd-steward" on 127\\.0\\.0\\.1:${PROXY_PORT} \\(mTLS\\), namespace default`), workerLog);
  });

  it('scale-out 3 → 4 from the CLI through the proxy; the worker talks to the proxy only', async () => {
    const r = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add.json'), '--wait'], proxy.env);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /completed/, show(r));
    assert.equal((await bed.observe()).voters, 4);
    const remotes = remotesOf(worker!.pid!);
    assert.ok(remotes.includes(proxy.address), `the worker holds no connection to the proxy: ${remotes.join(', ')}`);
    assert.ok(!remotes.includes(temporal.address), `the worker reached the dev server directly: ${remotes.join(', ')}`);
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
