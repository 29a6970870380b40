/**
 * The worker's SSH connections to member hosts (ssh2), pooled: a command runs on a connection
 * already open to the same host, as the same user, with the same identity, verified against the
 * same pinned host key, when there is one; otherwise a new connection is made, and like every
 * new connection it checks the host key against the pin before authenticating. There is no
 * "accept any key" mode: a host whose key does not match its pin is refused, and the error names
 * both fingerprints. A connection verified against one pin is never used for another.
 *
 * Limits: at most `maxChannels` commands at once on one connection (sshd's MaxSessions is 10 by
 * default; more wait their turn), at most `maxConnections` connections (the least recently used
 * idle one is closed to make room, or the command waits), and a connection idle for `idleMs` is
 * closed. An idle connection does not keep the process alive.
 *
 * Failures: a connection that errors or closes (sshd restarted, host gone) leaves the pool at
 * once. A command whose exec channel could not be opened on a pooled connection (so it cannot
 * have run) is retried once on a fresh connection; a command that may have run is never retried
 * here: its error goes to the activity, whose retry is idempotent.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';

/** Where a host's sshd is and which key it must present. */
export interface SshTarget {
  /** The member (or host) name, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  /** `ssh-ed25519 AAAA...` or `SHA256:...` */
  hostKey: string;
  /**
   * `sudo`: every command runs as root through `sudo -n` (non-interactive: a password prompt is an
   * error naming the sudoers entry needed, see sudoCommand). Absent: commands run as `user`.
   */
  become?: 'sudo';
  /**
   * Jump hosts, outermost first (OpenSSH's ProxyJump): the connection to this host is a tunnel
   * (direct-tcpip) through a pooled connection to the last one, itself reached through the ones
   * before it. Each is verified against its own pin, like any host, before authenticating.
   */
  via?: JumpHost[];
  /** Where the pin is written, for messages (default `ssh.hostKey`). */
  pinnedAt?: string;
}

/** A bastion on the way to a host: where its sshd is, as whom to log in, which key it must present. */
export interface JumpHost {
  host: string;
  port: number;
  user: string;
  hostKey: string;
}

/**
 * What a command becomes under `become: sudo`: the script runs as root in bash, its standard input
 * passed through. The sudoers entry it needs is exactly one command (see sudoersLine).
 */
export const SUDO_SHELL = '/bin/bash';
export function sudoCommand(command: string): string {
  return `sudo -n -- ${SUDO_SHELL} -c '${command.replaceAll("'", `'\\''`)}'`;
}

/** The sudoers line that lets `user` run our commands without a password. */
export function sudoersLine(user: string): string {
  return `${user} ALL=(root) NOPASSWD: ${SUDO_SHELL}`;
}

/** How a host is reached, for messages: `user@host:port`, then ` via bastion h:p` for each jump host. */
export function describeAccess(target: Pick<SshTarget, 'user' | 'host' | 'port' | 'via'>): string {
  return `${target.user}@${target.host}:${target.port}${(target.via ?? []).map((j) => ` via bastion ${j.host}:${j.port}`).join('')}`;
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
  /** Whole-command limit, waiting for a connection or a channel included. Default 60 s. */
  timeoutMs?: number;
}

export class SshError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'host-key-mismatch' | 'auth' | 'timeout' | 'protocol' | 'sudo',
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

/** The host-key algorithms that present a key of the pinned key line's type; null for a fingerprint pin (any). */
export function pinnedAlgorithms(pin: string): ServerHostKeyAlgorithm[] | null {
  const type = pin.trim().split(/\s+/)[0]!;
  if (type.startsWith('SHA256:')) return null;
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [type as ServerHostKeyAlgorithm];
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * The pool's default cap on open connections: room for every host of 50 five-member clusters
 * operated at once (an operation's preflight and config-sync hold a connection to each of its
 * hosts together), at the cost of one idle sshd process per host until `idleMs` passes. A cap
 * below the hosts in use at once makes commands wait for room and connections be closed and
 * reopened (STEWARD_SSH_MAX_CONNECTIONS sets it for a worker).
 */
export const DEFAULT_SSH_MAX_CONNECTIONS = 256;

export interface SshPoolOptions {
  /** An unused connection is closed after this long. Default 20 s. */
  idleMs?: number;
  /** Connections open at once (all hosts). Default DEFAULT_SSH_MAX_CONNECTIONS (256). */
  maxConnections?: number;
  /** Exec channels at once on one connection; more commands wait. Default 8 (sshd's MaxSessions defaults to 10). */
  maxChannels?: number;
  /**
   * How long a pooled connection may take to open a channel before it counts as dead (closed,
   * and the command retried on a fresh one: a channel that never opened ran nothing). Default 10 s.
   */
  openTimeoutMs?: number;
}

/** Counters since the pool was made (or `resetStats`): what the worker's SSH traffic cost. */
export interface SshPoolStats {
  /** Commands asked for. */
  commands: number;
  /** SSH connections opened (handshakes started). */
  connections: number;
  /** Exec channels opened (a command retried on a fresh connection counts twice). */
  execs: number;
  /** Commands that ran on a connection that had served an earlier command. */
  reused: number;
  /** Commands retried on a fresh connection because a pooled one could not open their channel. */
  retried: number;
  /** Commands that waited for a free channel (the per-connection cap) or a free connection (the pool's cap). */
  queued: number;
  /** Connections closed after `idleMs` unused. */
  expired: number;
  /** Connections that errored or were closed by the other end. */
  dropped: number;
  /** Idle connections closed early to make room under `maxConnections`. */
  evicted: number;
}

/** Connections and channels open now. */
export interface SshPoolState {
  connections: number;
  channels: number;
  /** Connections being closed (their socket not closed yet). */
  closing: number;
}

const zeroStats = (): SshPoolStats => ({ commands: 0, connections: 0, execs: 0, reused: 0, retried: 0, queued: 0, expired: 0, dropped: 0, evicted: 0 });

/** A failure that belongs to the connection, worded for each command that waited on it. */
type ConnectFailure = (where: string) => SshError;

/** A grant of a channel slot, or a wake-up because the connection went away. */
type SlotWaiter = (granted: boolean) => boolean;

class Connection {
  readonly client = new Client();
  state: 'connecting' | 'ready' | 'closed' = 'connecting';
  /** Takes no new channels (a command timed out on it, or it is being closed); closed once its channels end. */
  retired = false;
  /** Channel slots held. */
  active = 0;
  /** Tunnels (direct-tcpip channels) open through it to other hosts: sshd's MaxSessions does not count them, so neither do we, but it is in use while they are. */
  tunnels = 0;
  /** The connection this one is tunnelled through, if any. */
  jump: Connection | undefined;
  /** Exec channels opened on it so far. */
  uses = 0;
  lastUsed = Date.now();
  /** Chunks received since it was ready: a connection that received nothing since a channel open was sent has not answered it. */
  received = 0;
  idleTimer: NodeJS.Timeout | undefined;
  readonly slotWaiters: SlotWaiter[] = [];
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  private failure: ConnectFailure | undefined;
  onClosed: () => void = () => {};

  constructor(
    readonly key: string,
    target: SshTarget,
    identity: SshIdentity,
    readyTimeoutMs: number,
    /** For a host behind a bastion: opens the tunnel the connection runs over (its failure is the connection's). */
    tunnel?: () => Promise<{ sock: Duplex; jump: Connection }>,
  ) {
    const expected = pinFingerprint(target.hostKey);
    let presented: string | undefined;
    let resolveClosed!: () => void;
    let rejectReady!: (e: SshError) => void;
    this.closed = new Promise<void>((r) => (resolveClosed = r));
    this.ready = new Promise<void>((resolve, reject) => {
      rejectReady = reject;
      this.client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (this.state === 'connecting') {
          this.failure = classifyConnectError(err, presented, expected, target.user, target.pinnedAt ?? 'ssh.hostKey');
          this.state = 'closed';
          reject(this.failure);
        } else {
          this.state = 'closed';
        }
        this.client.destroy();
      });
      this.client.on('ready', () => {
        if (this.state !== 'connecting') return;
        this.state = 'ready';
        this.socket()?.on('data', () => this.received++);
        resolve();
      });
      this.client.on('close', () => {
        if (this.state === 'connecting') {
          this.failure = (where) => new SshError(`${where}: cannot reach sshd: connection closed during the handshake`, 'unreachable');
          reject(this.failure);
        }
        this.state = 'closed';
        clearTimeout(this.idleTimer);
        this.releaseJump();
        // Commands waiting for a channel on it go find another connection.
        for (const w of this.slotWaiters.splice(0)) w(false);
        resolveClosed();
        this.onClosed();
      });
    });
    // Waiters see the failure through `ready`; nobody waiting is not an unhandled rejection.
    this.ready.catch(() => undefined);

    const config: ConnectConfig = {
      ...(tunnel ? {} : { host: target.host, port: target.port }),
      username: target.user,
      privateKey: identity.privateKey,
      passphrase: identity.passphrase,
      readyTimeout: readyTimeoutMs,
      hostVerifier: (key: Buffer) => {
        presented = fingerprint(key);
        return presented === expected;
      },
      // A pin that is a key line names its type: ask sshd for that one (a host with ed25519 and
      // RSA keys pinned by its RSA key must not present the ed25519 one and be refused).
      ...(pinnedAlgorithms(target.hostKey) ? { algorithms: { serverHostKey: pinnedAlgorithms(target.hostKey)! } } : {}),
    };
    if (!tunnel) {
      this.client.connect(config);
      return;
    }
    tunnel().then(
      ({ sock, jump }) => {
        this.jump = jump;
        if (this.wantRef) jump.holdRef(true);
        if (this.state !== 'connecting') sock.destroy();
        else this.client.connect({ ...config, sock });
      },
      (e: unknown) => {
        // The bastion refused (its key, our login) or could not reach the host: that is this connection's failure.
        const err = e instanceof SshError ? e : new SshError(String((e as Error)?.message ?? e), 'unreachable');
        this.failure = (where) => new SshError(`${where}: ${err.message}`, err.kind);
        this.state = 'closed';
        rejectReady(this.failure(target.name));
        resolveClosed();
        this.onClosed();
      },
    );
  }

  /** The failure of a connection that never became ready, worded for `where`. */
  failureFor(where: string): SshError {
    return this.failure ? this.failure(where) : new SshError(`${where}: cannot reach sshd: the connection closed`, 'unreachable');
  }

  get usable(): boolean {
    return this.state !== 'closed' && !this.retired;
  }

  private socket(): Socket | undefined {
    return (this.client as unknown as { _sock?: Socket })._sock;
  }

  private wantRef = false;
  /** Connections tunnelled through this one that are in use. */
  private refHolders = 0;

  /** An idle connection must not keep the process alive; one in use must (and so must the bastion it goes through). */
  setRef(on: boolean): void {
    if (on === this.wantRef) return this.applyRef();
    const before = this.inUse;
    this.wantRef = on;
    this.applyRef(before);
  }

  /** A tunnelled connection through this one started or stopped being in use. */
  holdRef(on: boolean): void {
    const before = this.inUse;
    this.refHolders += on ? 1 : -1;
    this.applyRef(before);
  }

  private get inUse(): boolean {
    return this.wantRef || this.refHolders > 0;
  }

  private applyRef(before = this.inUse): void {
    if (this.jump) {
      if (before !== this.inUse) this.jump.holdRef(this.inUse);
      return;
    }
    const s = this.socket();
    if (!s || s.destroyed) return;
    if (this.inUse) s.ref();
    else s.unref();
  }

  /** Gives back what it held on its bastion's connection (once). */
  releaseJump(): void {
    if (this.jump && this.inUse) this.jump.holdRef(false);
    this.wantRef = false;
    this.refHolders = 0;
  }

  /** Closes it: politely, then (after `graceMs`, or at once with 0) by destroying the socket. */
  close(graceMs = 2_000): Promise<void> {
    this.retired = true;
    clearTimeout(this.idleTimer);
    if (this.state === 'closed') return this.closed;
    this.setRef(true); // whoever awaits the close gets it
    if (graceMs <= 0) {
      this.client.destroy();
    } else {
      this.client.end();
      setTimeout(() => this.client.destroy(), graceMs).unref();
    }
    return this.closed;
  }
}

function classifyConnectError(err: Error & { level?: string; code?: string }, presented: string | undefined, expected: string, user: string, pinnedAt: string): ConnectFailure {
  if (presented !== undefined && presented !== expected) {
    return (where) =>
      new SshError(
        `${where}: host key does not match its pin: the host presented ${presented}, the cluster spec pins ${expected}. ` +
          `If the host was rebuilt on purpose, check its new key out of band and update ${pinnedAt} in the cluster spec; otherwise do not connect.`,
        'host-key-mismatch',
      );
  }
  if (err.level === 'client-authentication') {
    const root = user === 'root' ? " Or its sshd refuses root logins (PermitRootLogin): then log in as a user with sudo (ssh.user, and ssh.become: sudo)." : '';
    return (where) => new SshError(`${where}: login refused (publickey): is the worker's public key in ${user}'s authorized_keys on that host?${root}`, 'auth');
  }
  if (err.level === 'client-timeout') return (where) => new SshError(`${where}: SSH handshake timed out`, 'timeout');
  if (err.code !== undefined || err.level === 'client-socket') return (where) => new SshError(`${where}: cannot reach sshd: ${err.message}`, 'unreachable');
  return (where) => new SshError(`${where}: ${err.message}`, 'protocol');
}

/**
 * ssh2's exec opens a session channel, then asks for the command. These errors come before the
 * command was asked for (so it cannot have run): a refused channel open (it carries `reason`), the
 * connection lost while the open was pending, no channel id free, or a connection already gone.
 * Every other exec error ("Unable to exec", ...) may come after the request went out.
 */
function channelNeverOpened(err: Error & { reason?: unknown }): boolean {
  return err.reason !== undefined || err.message === 'No response from server' || err.message === 'No free channels available' || err.message === 'Not connected';
}

/** Why a command gave up: its timer, with the error to report. */
class Aborted {
  constructor(readonly error: SshError) {}
}

/** One command's life: its deadline, and what to undo when the deadline passes. */
class CommandRun {
  aborted: SshError | undefined;
  private abortHooks: (() => void)[] = [];
  private timer: NodeJS.Timeout;
  constructor(timeoutMs: number, error: () => SshError) {
    this.timer = setTimeout(() => {
      this.aborted = error();
      for (const h of this.abortHooks.splice(0)) h();
    }, timeoutMs);
  }
  done(): void {
    clearTimeout(this.timer);
    this.abortHooks = [];
  }
  /** Resolves with `p`, or rejects with the timeout when the deadline comes first; `undo` then runs. */
  race<T>(p: Promise<T>, undo: () => void = () => {}): Promise<T> {
    if (this.aborted) {
      undo();
      return Promise.reject(new Aborted(this.aborted));
    }
    return new Promise<T>((resolve, reject) => {
      const hook = () => {
        undo();
        reject(new Aborted(this.aborted!));
      };
      this.abortHooks.push(hook);
      const off = () => (this.abortHooks = this.abortHooks.filter((h) => h !== hook));
      p.then(
        (v) => {
          off();
          resolve(v);
        },
        (e: unknown) => {
          off();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }
}

const identityKeys = new WeakMap<Buffer, string>();
function identityKey(id: SshIdentity): string {
  let k = identityKeys.get(id.privateKey);
  if (k === undefined) {
    k = createHash('sha256').update(id.privateKey).digest('hex');
    identityKeys.set(id.privateKey, k);
  }
  return id.passphrase === undefined ? k : `${k}:${createHash('sha256').update(id.passphrase).digest('hex')}`;
}

/** What makes a verified session: where, as whom, with which identity, verified against which key. */
export function poolKey(target: SshTarget, identity: SshIdentity): string {
  const via = (target.via ?? []).map((j) => ` via ${j.user}@${j.host}:${j.port} ${pinFingerprint(j.hostKey)}`).join('');
  return `${target.user}@${target.host}:${target.port} ${pinFingerprint(target.hostKey)}${via} ${identityKey(identity)}`;
}

/** The pool's view of a target's last jump host: a target itself, reached through the jump hosts before it. */
function jumpTarget(target: SshTarget): SshTarget {
  const via = target.via!;
  const hop = via[via.length - 1]!;
  return {
    name: `bastion ${hop.host}:${hop.port}`,
    host: hop.host,
    port: hop.port,
    user: hop.user,
    hostKey: hop.hostKey,
    pinnedAt: `ssh.via[${via.length - 1}].hostKey`,
    ...(via.length > 1 ? { via: via.slice(0, -1) } : {}),
  };
}

/** sudo's own refusals (it ran nothing): no sudoers entry, or one that wants a password. */
const SUDO_REFUSED = /^sudo: (a password is required|a terminal is required|sorry, you must have a tty|.*is not in the sudoers file|.*is not allowed to execute)/im;

export class SshPool {
  readonly idleMs: number;
  private maxConns: number;
  readonly maxChannels: number;
  readonly openTimeoutMs: number;
  private current = new Map<string, Connection>();
  /** Every connection counted against maxConnections (connecting, ready, retired but still busy). */
  private all = new Set<Connection>();
  /** Connections closed or being closed, until their socket is. */
  private closing = new Set<Connection>();
  private roomWaiters: (() => void)[] = [];
  private counters = zeroStats();

  constructor(opts: SshPoolOptions = {}) {
    this.idleMs = opts.idleMs ?? 20_000;
    this.maxConns = Math.max(1, opts.maxConnections ?? DEFAULT_SSH_MAX_CONNECTIONS);
    this.maxChannels = Math.max(1, opts.maxChannels ?? 8);
    this.openTimeoutMs = opts.openTimeoutMs ?? 10_000;
  }

  /** Connections open at once, at most (all hosts). */
  get maxConnections(): number {
    return this.maxConns;
  }

  /**
   * Sets the cap on open connections (the worker's STEWARD_SSH_MAX_CONNECTIONS). Lowering it
   * closes nothing in use: idle connections are closed as room is needed, busy ones when released.
   */
  setMaxConnections(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`maxConnections must be a whole number ≥ 1, not ${n}`);
    this.maxConns = n;
    while (this.all.size > this.maxConns && this.evictIdle()) {
      /* closed one idle connection */
    }
    this.wakeRoomWaiters();
  }

  stats(): SshPoolStats {
    return { ...this.counters };
  }

  resetStats(): void {
    this.counters = zeroStats();
  }

  state(): SshPoolState {
    let channels = 0;
    for (const c of this.all) channels += c.active;
    return { connections: this.all.size, channels, closing: this.closing.size };
  }

  /** Runs one command on a host and returns its exit status and output (it does not throw on non-zero exit). */
  async exec(target: SshTarget, identity: SshIdentity, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const where = `${target.name} (${describeAccess(target)})`;
    const key = poolKey(target, identity);
    this.counters.commands++;
    const run = new CommandRun(timeoutMs, () => new SshError(`${where}: command did not finish within ${timeoutMs} ms: ${command.slice(0, 120)}`, 'timeout'));
    const sent = target.become === 'sudo' ? sudoCommand(command) : command;
    try {
      for (let attempt = 0; ; attempt++) {
        const conn = await this.acquire(key, target, identity, where, run, Math.min(timeoutMs, 20_000));
        const out = await this.runOn(conn, where, sent, opts, run);
        if (out !== 'not-opened' && target.become === 'sudo' && out.code === 1) {
          const refused = SUDO_REFUSED.exec(out.stderr);
          if (refused) {
            const tty = /tty|terminal/i.test(refused[0]);
            throw new SshError(
              `${where}: sudo -n refused to run our command as root (${refused[0].trim()}): the SSH user ${target.user} needs ${tty ? 'sudo without a terminal' : 'this sudoers entry'} on that host, ` +
                `e.g. in /etc/sudoers.d/etcd-steward (edit it with visudo -f): ${tty ? `Defaults:${target.user} !requiretty, and ` : ''}${sudoersLine(target.user)}`,
              'sudo',
            );
          }
        }
        if (out !== 'not-opened') return out;
        if (attempt >= 1) throw new SshError(`${where}: cannot start command: sshd did not open a channel on a fresh connection either`, 'protocol');
        this.counters.retried++;
      }
    } catch (e) {
      if (e instanceof Aborted) throw e.error;
      throw e;
    } finally {
      run.done();
    }
  }

  /** Closes every connection (the worker's shutdown); resolves when their sockets are closed. */
  async closeAll(): Promise<void> {
    const conns = [...this.all, ...this.closing];
    this.current.clear();
    for (const c of this.all) this.closing.add(c);
    this.all.clear();
    await Promise.all(conns.map((c) => c.close(1_000)));
    this.wakeRoomWaiters();
  }

  /** A connection for `key` with a channel slot held for the caller. */
  private async acquire(key: string, target: SshTarget, identity: SshIdentity, where: string, run: CommandRun, readyTimeoutMs: number, forTunnel = false): Promise<Connection> {
    let waited = false;
    let opened = 0;
    for (;;) {
      let conn = this.current.get(key);
      if (conn && !conn.usable) {
        this.current.delete(key);
        conn = undefined;
      }
      if (!conn) {
        if (this.all.size >= this.maxConnections) {
          if (!this.evictIdle()) {
            if (!waited) this.counters.queued++;
            waited = true;
            let wake!: () => void;
            const room = new Promise<void>((r) => (wake = r));
            this.roomWaiters.push(wake);
            await run.race(room, () => (this.roomWaiters = this.roomWaiters.filter((w) => w !== wake)));
          }
          continue;
        }
        // (a host that lets us log in and then drops the connection at once must not make us loop)
        if (++opened > 2) throw new SshError(`${where}: cannot reach sshd: the connection closed right after login, twice`, 'unreachable');
        conn = this.open(key, target, identity, readyTimeoutMs);
      }
      if (conn.state === 'connecting') {
        try {
          await run.race(conn.ready);
        } catch (e) {
          if (e instanceof Aborted) throw e;
          throw conn.failureFor(where);
        }
        continue; // it may be gone or full by now
      }
      if (forTunnel) {
        conn.tunnels++;
        clearTimeout(conn.idleTimer);
        conn.idleTimer = undefined;
        return conn;
      }
      if (conn.active < this.maxChannels) {
        this.take(conn);
        return conn;
      }
      if (!waited) this.counters.queued++;
      waited = true;
      let granted = false;
      let gaveUp = false;
      const slot = new Promise<boolean>((resolve) => {
        const w: SlotWaiter = (g) => {
          if (gaveUp) return false;
          granted = g;
          resolve(g);
          return true;
        };
        conn.slotWaiters.push(w);
      });
      try {
        if (await run.race(slot, () => (gaveUp = true))) return conn; // the slot was handed over
      } catch (e) {
        if (granted) this.release(conn); // granted and timed out in the same turn
        throw e;
      }
    }
  }

  private open(key: string, target: SshTarget, identity: SshIdentity, readyTimeoutMs: number): Connection {
    const conn = new Connection(key, target, identity, readyTimeoutMs, target.via?.length ? () => this.tunnel(target, identity, readyTimeoutMs) : undefined);
    this.counters.connections++;
    this.current.set(key, conn);
    this.all.add(conn);
    conn.onClosed = () => {
      if (!conn.retired && conn.uses > 0) this.counters.dropped++;
      conn.retired = true;
      if (this.current.get(key) === conn) this.current.delete(key);
      this.all.delete(conn);
      this.closing.delete(conn);
      this.wakeRoomWaiters();
    };
    // Made for a command that gave up before it was ready: it idles like any other.
    conn.ready.then(
      () => setImmediate(() => conn.active === 0 && conn.tunnels === 0 && conn.usable && this.goIdle(conn)),
      () => undefined,
    );
    return conn;
  }

  /**
   * A tunnel to `target` through a pooled connection to its last jump host (opened, and verified
   * against that host's pin, like any other). The jump connection stays open while the tunnel
   * does; the tunnel closes with the connection made over it.
   */
  private async tunnel(target: SshTarget, identity: SshIdentity, readyTimeoutMs: number): Promise<{ sock: Duplex; jump: Connection }> {
    const jump = jumpTarget(target);
    const where = `${jump.name} (${describeAccess(jump)})`;
    const run = new CommandRun(readyTimeoutMs, () => new SshError(`${where}: no tunnel to ${target.host}:${target.port} within ${readyTimeoutMs} ms`, 'timeout'));
    try {
      const conn = await this.acquire(poolKey(jump, identity), jump, identity, where, run, readyTimeoutMs, true);
      let gaveUp = false;
      try {
        const sock = await run.race(
          new Promise<ClientChannel>((resolve, reject) => {
            conn.client.forwardOut('127.0.0.1', 0, target.host, target.port, (err, ch) => {
              if (gaveUp) return ch?.close();
              if (err) reject(new SshError(`${where}: cannot reach ${target.host}:${target.port} from the bastion: ${err.message}`, 'unreachable'));
              else resolve(ch);
            });
          }),
          () => (gaveUp = true),
        );
        sock.once('close', () => this.releaseTunnel(conn));
        return { sock, jump: conn };
      } catch (e) {
        this.releaseTunnel(conn);
        throw e;
      }
    } catch (e) {
      if (e instanceof Aborted) throw e.error;
      throw e;
    } finally {
      run.done();
    }
  }

  private releaseTunnel(conn: Connection): void {
    conn.tunnels--;
    conn.lastUsed = Date.now();
    if (conn.active > 0 || conn.tunnels > 0) return;
    if (!conn.usable) this.retire(conn);
    else this.goIdle(conn);
  }

  private take(conn: Connection): void {
    conn.active++;
    clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
    conn.setRef(true);
  }

  /** Gives a channel slot back: to the next waiting command, else the connection may go idle. */
  private release(conn: Connection): void {
    conn.lastUsed = Date.now();
    if (conn.usable) {
      while (conn.slotWaiters.length) if (conn.slotWaiters.shift()!(true)) return;
    }
    conn.active--;
    if (conn.active > 0 || conn.tunnels > 0) return;
    if (!conn.usable) this.retire(conn);
    else this.goIdle(conn);
  }

  private goIdle(conn: Connection): void {
    conn.setRef(false);
    clearTimeout(conn.idleTimer);
    if (this.idleMs <= 0) {
      this.expire(conn);
      return;
    }
    conn.idleTimer = setTimeout(() => this.expire(conn), this.idleMs);
    conn.idleTimer.unref();
    this.wakeRoomWaiters();
  }

  private expire(conn: Connection): void {
    if (conn.active > 0 || conn.tunnels > 0 || !conn.usable) return;
    this.counters.expired++;
    this.retire(conn);
  }

  /**
   * Takes a connection out of the pool: no new command goes to it (those waiting for one of its
   * channels go find another connection), and it is closed once no command uses it.
   */
  private retire(conn: Connection): void {
    conn.retired = true;
    if (this.current.get(conn.key) === conn) this.current.delete(conn.key);
    for (const w of conn.slotWaiters.splice(0)) w(false);
    if (conn.active > 0 || conn.tunnels > 0) return;
    if (this.all.delete(conn) && conn.state !== 'closed') this.closing.add(conn);
    void conn.close();
    this.wakeRoomWaiters();
  }

  /** Closes the least recently used idle connection; false when none is idle. */
  private evictIdle(): boolean {
    let lru: Connection | undefined;
    for (const c of this.all) if (c.state === 'ready' && c.active === 0 && c.tunnels === 0 && (!lru || c.lastUsed < lru.lastUsed)) lru = c;
    if (!lru) return false;
    this.counters.evicted++;
    this.retire(lru);
    return true;
  }

  private wakeRoomWaiters(): void {
    for (const w of this.roomWaiters.splice(0)) w();
  }

  /** Runs the command on `conn` (a slot held); 'not-opened' when its channel could not be opened. */
  private runOn(conn: Connection, where: string, command: string, opts: ExecOptions, run: CommandRun): Promise<ExecResult | 'not-opened'> {
    const reused = conn.uses > 0;
    conn.uses++;
    this.counters.execs++;
    if (reused) this.counters.reused++;
    let stream: ClientChannel | undefined;
    let settled = false;
    let openTimer: NodeJS.Timeout | undefined;
    const result = new Promise<ExecResult | 'not-opened'>((resolve, reject) => {
      const finish = (v: ExecResult | 'not-opened' | Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(openTimer);
        this.release(conn);
        if (v instanceof Error) reject(v);
        else resolve(v);
      };
      const dead = () => {
        // Nothing more goes on this connection; ssh2 fails whatever is pending on it.
        this.counters.dropped++;
        this.retire(conn);
        conn.state = 'closed';
        conn.client.destroy();
      };
      if (reused) {
        // A pooled connection whose peer vanished without a word never answers the channel open.
        // If nothing at all came in since the open was sent, its confirmation did not either, so
        // the command was never asked for: the connection is destroyed (which fails the open with
        // "No response from server") and the command retried. Anything received means it is alive.
        const seen = conn.received;
        openTimer = setTimeout(() => {
          if (!stream && conn.received === seen) dead();
        }, Math.max(1, this.openTimeoutMs));
        openTimer.unref();
      }
      try {
        conn.client.exec(command, (err, s) => {
          clearTimeout(openTimer);
          if (err) {
            if (channelNeverOpened(err)) {
              this.retire(conn); // it refused a channel, or is gone: let it go
              return finish('not-opened');
            }
            return finish(new SshError(`${where}: cannot start command: ${err.message}`, 'protocol'));
          }
          if (settled) {
            s.close(); // timed out meanwhile
            return;
          }
          stream = s;
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          let size = 0;
          const take = (chunks: Buffer[]) => (d: Buffer) => {
            size += d.length;
            if (size <= MAX_OUTPUT) chunks.push(d);
          };
          s.on('data', take(out));
          s.stderr.on('data', take(errOut));
          s.on('error', () => undefined); // the close that follows reports it
          s.on('close', (code: number | null | undefined, signal: string | null | undefined) => {
            if (code === undefined && signal === undefined && conn.state === 'closed') {
              return finish(new SshError(`${where}: cannot reach sshd: the connection was lost while the command ran (it may have run)`, 'unreachable'));
            }
            finish({ code: code ?? null, signal: signal ?? null, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
          });
          if (opts.stdin !== undefined) s.end(opts.stdin);
          else s.end();
        });
      } catch (e) {
        // "Not connected": the connection went away before anything was sent.
        if (channelNeverOpened(e as Error)) {
          dead();
          finish('not-opened');
        } else finish(e as Error);
      }
    });
    return run.race(result, () => {
      // The deadline: the command's channel is closed and the connection leaves the pool (a
      // connection that let a command hang is not trusted with the next one), as a command
      // used to take its own connection down with it.
      this.retire(conn);
      if (stream) stream.close();
      if (!settled) {
        settled = true;
        clearTimeout(openTimer);
        this.release(conn);
      }
    });
  }
}
