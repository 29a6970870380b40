/**
 * mTLS in front of the Temporal dev server, which has no TLS of its own: Debian's nginx with its
 * stream module terminates TLS on a loopback port, requires a client certificate signed by a test
 * CA, offers ALPN h2 (gRPC clients insist on it) and passes the bytes to the dev server. Started
 * and stopped like every other bed process (recorded by pid; a run killed midway is cleaned by
 * the next start in the same directory).
 *
 * Made in `dir`: the CA (ca.pem), the server's certificate for `serverName` and the listen
 * address, and one client certificate (client.pem, client-key.pem) — what a worker and the CLI
 * are given through TEMPORAL_TLS_*.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyAndCsrScript, makeCaScript, signCsrScript } from '../activities/certs';
import { bash, portFree, readRecorded, spawnRecorded, stopProcesses, waitForPort } from './procs';

const NGINX = '/usr/sbin/nginx';
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface TlsProxyOptions {
  dir: string;
  /** Where the proxy listens (loopback); default 127.0.0.1. */
  ip?: string;
  port: number;
  /** The dev server's frontend, host:port. */
  upstream: string;
  /** The name in the server certificate (and what clients verify); default `temporal.bed`. */
  serverName?: string;
}

export interface TlsProxy {
  address: string;
  serverName: string;
  files: { ca: string; clientCert: string; clientKey: string };
  /** The TEMPORAL_* variables a worker or the CLI connects through the proxy with. */
  env: Record<string, string>;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the proxy; needs Debian's nginx and libnginx-mod-stream (the set-up installs them). */
export async function startTemporalTlsProxy(o: TlsProxyOptions): Promise<TlsProxy> {
  for (const f of [NGINX, STREAM_MODULE]) if (!existsSync(f)) throw new Error(`the mTLS proxy needs ${f}: apt-get install nginx libnginx-mod-stream (scripts/setup.sh does)`);
  const ip = o.ip ?? '127.0.0.1';
  const serverName = o.serverName ?? 'temporal.bed';
  await stopProcesses(readRecorded(o.dir)); // a proxy left by a killed run
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  if (!(await portFree(ip, o.port))) throw new Error(`${ip}:${o.port} (the Temporal mTLS proxy) is already in use`);

  // The CA, the server's certificate and one client certificate (serverAuth and clientAuth: signCsrScript's).
  await bash(makeCaScript(o.dir, 'etcd-steward Temporal test CA'));
  const issue = async (name: string, cn: string, sans: string[]) => {
    const csr = await bash(keyAndCsrScript(join(o.dir, `${name}-key.pem`), cn));
    writeFileSync(join(o.dir, `${name}.pem`), await bash(signCsrScript(o.dir, sans), csr));
  };
  await issue('server', serverName, [`DNS:${serverName}`, `IP:${ip}`]);
  await issue('client', 'etcd-steward-worker', ['DNS:etcd-steward-worker']);

  const conf = join(o.dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      `load_module ${STREAM_MODULE};`,
      'daemon off;',
      'worker_processes 1;',
      `pid ${join(o.dir, 'nginx.pid')};`,
      `error_log ${join(o.dir, 'error.log')} info;`,
      'events { worker_connections 512; }',
      'stream {',
      '  server {',
      `    listen ${ip}:${o.port} ssl;`,
      `    ssl_certificate ${join(o.dir, 'server.pem')};`,
      `    ssl_certificate_key ${join(o.dir, 'server-key.pem')};`,
      `    ssl_client_certificate ${join(o.dir, 'ca.pem')};`,
      '    ssl_verify_client on;',
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_alpn h2;',
      `    proxy_pass ${o.upstream};`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  await bash(`${NGINX} -t -q -p '${o.dir}' -e '${join(o.dir, 'error.log')}' -c '${conf}'`);
  const pid = spawnRecorded(o.dir, 'nginx mTLS proxy for Temporal', NGINX, ['-p', o.dir, '-e', join(o.dir, 'error.log'), '-c', conf], join(o.dir, 'nginx.out'), conf);
  await waitForPort(ip, o.port, 15_000, 'the nginx mTLS proxy for Temporal', join(o.dir, 'error.log'));
  const files = { ca: join(o.dir, 'ca.pem'), clientCert: join(o.dir, 'client.pem'), clientKey: join(o.dir, 'client-key.pem') };
  const address = `${ip}:${o.port}`;
  return {
    address,
    serverName,
    files,
    env: {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: files.ca,
      TEMPORAL_TLS_SERVER_NAME: serverName,
      TEMPORAL_TLS_CLIENT_CERT_PATH: files.clientCert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: files.clientKey,
    },
    pid,
    stop: async () => {
      await stopProcesses(readRecorded(o.dir));
      rmSync(o.dir, { recursive: true, force: true });
    },
  };
}
