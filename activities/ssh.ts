/**
 * Running commands on member hosts over SSH (ssh2), with the host key checked against the pin
 * in the cluster spec. There is no "accept any key" mode: a host whose key does not match its
 * pin is refused before authentication, and the error names both fingerprints.
 */
import { createHash } from 'node:crypto';
import { Client, type ConnectConfig } from 'ssh2';

/** Where a host's sshd is and which key it must present. */
export interface SshTarget {
  /** The member (or host) name, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  /** `ssh-ed25519 AAAA...` or `SHA256:...` */
  hostKey: string;
}

/** The worker's SSH identity (worker configuration, never part of a workflow payload). */
export interface SshIdentity {
  privateKey: Buffer;
  passphrase?: string;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's standard input, which is then closed. */
  stdin?: string | Buffer;
  /** Whole-command limit, connection included. Default 60 s. */
  timeoutMs?: number;
}

export class SshError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'host-key-mismatch' | 'auth' | 'timeout' | 'protocol',
  ) {
    super(message);
    this.name = 'SshError';
  }
}

/** The OpenSSH fingerprint (`SHA256:<base64, no padding>`) of a raw public key blob. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprint a pin stands for, whichever form it was written in. */
export function pinFingerprint(pin: string): string {
  const p = pin.trim();
  if (p.startsWith('SHA256:')) return p.replace(/=+$/, '');
  const blob = p.split(/\s+/)[1];
  if (!blob) throw new Error(`host key pin "${p}" has no key data`);
  return fingerprint(Buffer.from(blob, 'base64'));
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/** Runs one command on a host and returns its exit status and output (it does not throw on non-zero exit). */
export function sshExec(target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const where = `${target.name} (${target.user}@${target.host}:${target.port})`;
  const expected = pinFingerprint(target.hostKey);
  let presented: string | undefined;

  return new Promise<ExecResult>((resolve, reject) => {
    const conn = new Client();
    let settled = false;
    const finish = (err: Error | undefined, result?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.end();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new SshError(`${where}: command did not finish within ${timeoutMs} ms: ${command.slice(0, 120)}`, 'timeout')), timeoutMs);

    conn.on('error', (err: Error & { level?: string; code?: string }) => {
      if (presented !== undefined && presented !== expected) {
        finish(
          new SshError(
            `${where}: host key does not match its pin: the host presented ${presented}, the cluster spec pins ${expected}. ` +
              'If the host was rebuilt on purpose, check its new key out of band and update ssh.hostKey in the cluster spec; otherwise do not connect.',
            'host-key-mismatch',
          ),
        );
      } else if (err.level === 'client-authentication') {
        finish(new SshError(`${where}: login refused (publickey): is the worker's public key in ${target.user}'s authorized_keys on that host?`, 'auth'));
      } else if (err.level === 'client-timeout') {
        finish(new SshError(`${where}: SSH handshake timed out`, 'timeout'));
      } else if (err.code !== undefined || err.level === 'client-socket') {
        finish(new SshError(`${where}: cannot reach sshd: ${err.message}`, 'unreachable'));
      } else {
        finish(new SshError(`${where}: ${err.message}`, 'protocol'));
      }
    });

    conn.on('ready', () => {
      conn.exec(command, (err, stream) => {
        if (err) return finish(new SshError(`${where}: cannot start command: ${err.message}`, 'protocol'));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let size = 0;
        const take = (chunks: Buffer[]) => (d: Buffer) => {
          size += d.length;
          if (size <= MAX_OUTPUT) chunks.push(d);
        };
        stream.on('data', take(out));
        stream.stderr.on('data', take(errOut));
        stream.on('close', (code: number | null, signal: string | null) => {
          finish(undefined, { code: code ?? null, signal: signal ?? null, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      });
    });

    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey: identity.privateKey,
      passphrase: identity.passphrase,
      readyTimeout: Math.min(timeoutMs, 20_000),
      hostVerifier: (key: Buffer) => {
        presented = fingerprint(key);
        return presented === expected;
      },
    };
    conn.connect(config);
  });
}

/** Like sshExec, but a non-zero exit is an error that carries the command's stderr. */
export async function sshRun(target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<string> {
  const r = await sshExec(target, identity, command, opts);
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
