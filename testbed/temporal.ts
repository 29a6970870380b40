/**
 * The Temporal CLI (dev server + Web UI) for the demo and the tests.
 *
 * Which binary: $TEMPORAL_CLI if set, else `temporal` on PATH, else $(go env GOPATH)/bin/temporal,
 * else it is built once with `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`, else
 * (machines without Go but with internet) the SDK downloads its own copy.
 *
 * We spawn the dev server ourselves with a readiness wait instead of `createLocal`, whose
 * 5-second start-up limit is too tight on a loaded 2-core machine.
 *
 * `tsx testbed/temporal.ts ensure` resolves (building if needed) and prints the path.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../common/ids';
import { portFree, readRecorded, spawnRecorded, stopProcesses, type Recorded, waitForPort, sleep } from './procs';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && executable(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

function goBin(): string | undefined {
  const go = onPath('go') ?? (executable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) return undefined;
  try {
    const gopath = execFileSync(go, ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
    return gopath ? join(gopath.split(':')[0]!, 'bin') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The path of the Temporal CLI, or undefined when none is here and none can be built (then
 * the SDK's download is the fallback). With `build`, runs `go install` when Go is present.
 */
export function resolveTemporalCli(opts: { build?: boolean; log?: (s: string) => void } = {}): string | undefined {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`TEMPORAL_CLI=${fromEnv} is not an executable file; unset it or point it at the temporal binary`);
    return fromEnv;
  }
  const found = onPath('temporal');
  if (found) return found;
  const bin = goBin();
  if (bin && executable(join(bin, 'temporal'))) return join(bin, 'temporal');
  if (opts.build && bin) {
    const go = onPath('go') ?? '/usr/local/go/bin/go';
    log(`Building the Temporal CLI once with \`go install ${TEMPORAL_CLI_MODULE}\` (a few minutes the first time)...`);
    const t0 = Date.now();
    const r = spawnSync(go, ['install', TEMPORAL_CLI_MODULE], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status === 0 && executable(join(bin, 'temporal'))) {
      log(`Temporal CLI built in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${join(bin, 'temporal')}`);
      return join(bin, 'temporal');
    }
    log(`go install failed (exit ${r.status}); falling back to the SDK's download of the Temporal CLI.`);
  }
  return undefined;
}

export interface TemporalOptions {
  /** Directory for the server's log (and database file, when persisted). */
  dir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  /** SQLite file for a server whose state survives a restart; in-memory when absent. */
  dbFilename?: string;
  namespace?: string;
  startTimeoutMs?: number;
}

export interface TemporalServer {
  address: string;
  namespace: string;
  uiUrl: string;
  /** The dev server's pid when we spawned it ourselves. */
  pid: number | undefined;
  /** Stops the server and removes its directory (log, database), unless `keepFiles` (to restart it on the same database). */
  stop(opts?: { keepFiles?: boolean }): Promise<void>;
}

/** Starts a Temporal dev server with its Web UI and waits until both answer. */
export async function startTemporal(opts: TemporalOptions): Promise<TemporalServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? 17233;
  const uiPort = opts.uiPort ?? 18233;
  const namespace = opts.namespace ?? 'default';
  const address = `${ip}:${port}`;
  const uiUrl = `http://${ip}:${uiPort}`;
  mkdirSync(opts.dir, { recursive: true });
  await stopProcesses(readRecorded(opts.dir)); // a server left behind by a killed run
  rmSync(join(opts.dir, 'pids.json'), { force: true });
  for (const [what, p] of [
    ['Temporal frontend', port],
    ['Temporal Web UI', uiPort],
  ] as const) {
    if (!(await portFree(ip, p))) throw new Error(`${what} port ${ip}:${p} is already in use: is another bed or Temporal server running? Stop it, or choose other ports.`);
  }

  const cli = resolveTemporalCli({ build: true });
  if (!cli) {
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'cached-download' }, ip, port, ui: true, uiPort, namespace, searchAttributes: [...SEARCH_ATTRIBUTES], ...(opts.dbFilename ? { dbFilename: opts.dbFilename } : {}) },
    });
    return {
      address,
      namespace,
      uiUrl,
      pid: undefined,
      stop: async (o) => {
        await env.teardown();
        if (!o?.keepFiles) rmSync(opts.dir, { recursive: true, force: true });
      },
    };
  }

  const log = join(opts.dir, 'temporal.log');
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--ui-port', String(uiPort), '--namespace', namespace, '--log-level', 'warn'];
  // The search attributes operations are started with (common/ids.ts), as a production namespace registers them once.
  for (const key of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=Keyword`);
  if (opts.dbFilename) args.push('--db-filename', opts.dbFilename);
  const pid = spawnRecorded(opts.dir, 'temporal dev server', cli, args, log, `--port ${port}`);
  const proc: Recorded = { pid, what: 'temporal dev server', mark: `--port ${port}` };
  const timeout = opts.startTimeoutMs ?? 60_000;
  try {
    await waitForPort(ip, port, timeout, 'Temporal dev server', log);
    await waitForFrontend(address, namespace, timeout);
    await waitForPort(ip, uiPort, timeout, 'Temporal Web UI', log);
  } catch (e) {
    await stopProcesses([proc]);
    throw e;
  }
  return {
    address,
    namespace,
    uiUrl,
    pid,
    stop: async (o) => {
      await stopProcesses([proc]);
      if (!o?.keepFiles) rmSync(opts.dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the frontend answers and the namespace exists. */
async function waitForFrontend(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await conn.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await conn.close();
      }
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw new Error(`Temporal frontend at ${address} not ready within ${timeoutMs} ms: ${String(last)}`);
}

if (require.main === module) {
  if (process.argv[2] !== 'ensure') {
    process.stderr.write('usage: tsx testbed/temporal.ts ensure\n');
    process.exit(2);
  }
  const p = resolveTemporalCli({ build: true });
  if (p) process.stdout.write(`${p}\n`);
  else process.stdout.write(`no Temporal CLI here; the SDK will download one on first use (needs internet)\n`);
  if (p && !existsSync(p)) process.exit(1);
}
