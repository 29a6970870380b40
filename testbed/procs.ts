/**
 * Processes the test bed starts, recorded by pid so teardown stops exactly those (and a bed left
 * behind by a killed run is cleaned up by the next one), never anything found by name alone.
 */
import { spawn, execFile } from 'node:child_process';
import { openSync, readFileSync, readdirSync, readlinkSync, writeFileSync, existsSync, closeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface Recorded {
  pid: number;
  what: string;
  /** A string the process's command line must contain for it to still be ours. */
  mark: string;
}

const registry = (dir: string) => join(dir, 'pids.json');

export function readRecorded(dir: string): Recorded[] {
  try {
    return JSON.parse(readFileSync(registry(dir), 'utf8')) as Recorded[];
  } catch {
    return [];
  }
}

export function record(dir: string, r: Recorded): void {
  writeFileSync(registry(dir), JSON.stringify([...readRecorded(dir), r], null, 1));
}

export function cmdline(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return null;
  }
}

/** True when pid is alive (and not a zombie) and its command line contains `mark`. */
export function isOurs(pid: number, mark: string): boolean {
  const c = cmdline(pid);
  if (c === null || !c.includes(mark)) return false;
  try {
    return !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Process start time in clock ticks since boot (field 22 of /proc/PID/stat): changes when a pid is reused or restarted. */
export function startTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[19]);
  } catch {
    return null;
  }
}

/** The pids whose parent is `pid` (from /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL after `graceMs`, for each process that is still ours. */
export async function stopProcesses(procs: Recorded[], graceMs = 5_000): Promise<void> {
  const live = procs.filter((p) => isOurs(p.pid, p.mark));
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some((p) => isOurs(p.pid, p.mark))) await sleep(50);
  for (const p of live) {
    if (isOurs(p.pid, p.mark)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  while (live.some((p) => isOurs(p.pid, p.mark))) await sleep(20);
}

/** Starts a long-running process detached from us, output to `logFile`, and records its pid. */
export function spawnRecorded(dir: string, what: string, file: string, args: string[], logFile: string, mark: string): number {
  const fd = openSync(logFile, 'a');
  const child = spawn(file, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`cannot start ${what} (${file})`);
  child.unref();
  record(dir, { pid: child.pid, what, mark });
  return child.pid;
}

/** Waits until a TCP port accepts connections. */
export async function waitForPort(host: string, port: number, timeoutMs: number, what: string, logFile?: string): Promise<void> {
  const connects = () =>
    new Promise<boolean>((resolve) => {
      const s = createConnection({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  await waitUntil(connects, host, port, timeoutMs, what, logFile);
}

/** Polls `up` every 100 ms; past the deadline, fails naming what did not listen, with its log's tail. */
async function waitUntil(up: () => boolean | Promise<boolean>, host: string, port: number, timeoutMs: number, what: string, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await up())) {
    if (Date.now() > deadline) {
      const tail = logFile && existsSync(logFile) ? `\n--- last lines of ${logFile} ---\n${readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n')}` : '';
      throw new Error(`${what} did not listen on ${host}:${port} within ${timeoutMs} ms${tail}`);
    }
    await sleep(100);
  }
}

/**
 * True when a socket listens on the IPv4 `host:port` (read from /proc/net/tcp, not by connecting:
 * a bed with a bastion refuses our own connections to the hosts' sshd).
 */
export function listening(host: string, port: number): boolean {
  const want = procNetAddress(host, port);
  return procNetTcp().some((f) => f[1] === want && f[3] === '0A');
}

/**
 * The uid owning each established TCP connection to the IPv4 `host:port` (/proc/net/tcp): who
 * connects to a host's sshd, observed (a bastion's tunnels are its login user's).
 */
export function connectionsTo(host: string, port: number): number[] {
  const want = procNetAddress(host, port);
  return procNetTcp()
    .filter((f) => f[2] === want && f[3] === '01')
    .map((f) => Number(f[7]));
}

/** `a.b.c.d:port` as /proc/net/tcp writes it (little-endian hex). */
function procNetAddress(host: string, port: number): string {
  const ip = host
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0').toUpperCase())
    .reverse()
    .join('');
  return `${ip}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
}

function procNetTcp(): string[][] {
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
}

/** waitForPort for a host our own connections may not reach (see `listening`). */
export function waitForListener(host: string, port: number, timeoutMs: number, what: string, logFile?: string): Promise<void> {
  return waitUntil(() => listening(host, port), host, port, timeoutMs, what, logFile);
}

/** True when nothing listens on host:port. */
export async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = createConnection({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/** Runs a bash script locally; throws with its stderr on failure. */
export async function bash(script: string, stdin?: string): Promise<string> {
  const p = execFileP('bash', ['-c', script], { maxBuffer: 16 * 1024 * 1024 });
  // A script that exits without reading its input makes the write fail with EPIPE: not an error here.
  p.child.stdin?.on('error', () => undefined);
  p.child.stdin?.end(stdin ?? '');
  try {
    return (await p).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`local script failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** The socket inodes a process holds open (its fds), to match against /proc/net/tcp. */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** The remote `a.b.c.d:port` of each established TCP connection process `pid` holds. */
export function remotesOf(pid: number): string[] {
  const inodes = socketInodes(pid);
  const out: string[] = [];
  for (const f of procNetTcp()) {
    if (f.length < 10 || !inodes.has(f[9]!) || f[3] !== '01') continue;
    const [ipHex, portHex] = f[2]!.split(':');
    const ip = [3, 2, 1, 0].map((i) => parseInt(ipHex!.slice(i * 2, i * 2 + 2), 16)).join('.');
    out.push(`${ip}:${parseInt(portHex!, 16)}`);
  }
  return out;
}
