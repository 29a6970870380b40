/**
 * Running commands on member hosts over SSH (ssh2), with the host key checked against the pin
 * in the cluster spec. There is no "accept any key" mode: a host whose key does not match its
 * pin is refused before authentication, and the error names both fingerprints. Connections are
 * pooled per process and reused only for the pin they were verified against (ssh-pool.ts).
 */
import { type ExecOptions, type ExecResult, type SshIdentity, SshPool, type SshPoolStats, type SshTarget } from './ssh-pool';

export { type ExecOptions, type ExecResult, type SshIdentity, SshError, SshPool, type SshPoolStats, type SshTarget, fingerprint, pinFingerprint } from './ssh-pool';

/**
 * The process's connections (one pool per worker): every activity's commands go through it, so
 * a host is connected to once and its connection reused while it is in use and for a short
 * while after (see ssh-pool.ts for the keys, limits and failure handling).
 */
export const sshPool = new SshPool();

/** Closes every pooled connection: the worker's shutdown (and a test stack's) calls it. */
export function closeSshPool(): Promise<void> {
  return sshPool.closeAll();
}

/** What the process's SSH traffic has cost so far (connections opened, exec channels used, ...). */
export function sshPoolStats(): SshPoolStats {
  return sshPool.stats();
}

/** Runs one command on a host and returns its exit status and output (it does not throw on non-zero exit). */
export function sshExec(target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  return sshPool.exec(target, identity, command, opts);
}

/** Like sshExec, but a non-zero exit is an error that carries the command's stderr. */
export function sshRun(target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<string> {
  return runOn(sshPool, target, identity, command, opts);
}

/** sshRun through a given pool (e.g. one of a tool's own, whose counts are its own). */
export async function runOn(pool: SshPool, target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<string> {
  const r = await pool.exec(target, identity, command, opts);
  if (r.code !== 0) {
    const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n');
    throw new Error(`${target.name}: \`${command.length > 160 ? `${command.slice(0, 160)}…` : command}\` exited ${r.code ?? r.signal}: ${detail}`);
  }
  return r.stdout;
}

/** Quotes a string for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
