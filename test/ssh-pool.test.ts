// The worker's SSH connection pool against the bed's real sshd: reuse, pinning per connection,
// recovery from a restarted sshd, the channel cap, idle expiry, and a clean shutdown.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { utils } from 'ssh2';
import { closeSshPool } from '../activities/ssh';
import { SshError, SshPool, poolKey } from '../activities/ssh-pool';
import { Bed } from '../testbed';
import { childPids, readRecorded, sleep } from '../testbed/procs';

describe('SSH connection pool (real sshd on the bed)', () => {
  let bed: Bed;
  const pools: SshPool[] = [];
  const pool = (opts: ConstructorParameters<typeof SshPool>[0] = {}) => {
    const p = new SshPool(opts);
    pools.push(p);
    return p;
  };
  /** The sessions (one per open connection) of a host's sshd listener. */
  const sessions = (name: string) => {
    const listener = readRecorded(bed.dir).filter((r) => r.mark === bed.host(name).sshdConfig).at(-1)!;
    return childPids(listener.pid).length;
  };

  /** Polls until a host's session count is `n` (3 s at most); returns the last count. */
  const sessionsSettle = async (name: string, n: number) => {
    const deadline = Date.now() + 3_000;
    while (sessions(name) !== n && Date.now() < deadline) await sleep(50);
    return sessions(name);
  };

  before(async () => {
    bed = await Bed.up({ hosts: 3, members: 1 });
  });
  after(async () => {
    await Promise.all([...pools.map((p) => p.closeAll()), closeSshPool()]);
    await bed?.down();
  });

  it('reuses one connection for many commands, one after another and at once', async () => {
    const p = pool();
    const h = bed.host('etcd2');
    for (let i = 0; i < 5; i++) assert.equal((await p.exec(h.ssh, bed.sshIdentity, `echo ${i}`)).stdout, `${i}\n`);
    const outs = await Promise.all([5, 6, 7, 8].map((i) => p.exec(h.ssh, bed.sshIdentity, `echo ${i}`)));
    assert.deepEqual(
      outs.map((o) => o.stdout),
      ['5\n', '6\n', '7\n', '8\n'],
    );
    const s = p.stats();
    assert.equal(s.connections, 1, JSON.stringify(s));
    assert.equal(s.execs, 9);
    assert.equal(s.reused, 8);
    assert.equal(p.state().connections, 1);
    assert.equal(sessions('etcd2'), 1, 'sshd sees one connection');
    // exit status, stderr and stdin go through as before
    const r = await p.exec(h.ssh, bed.sshIdentity, 'cat; echo oops >&2; exit 3', { stdin: 'in\n' });
    assert.deepEqual(r, { code: 3, signal: null, stdout: 'in\n', stderr: 'oops\n' });
  });

  it('a connection is reused only for the pin it was verified against: another pin to the same host:port is refused before any command runs', async () => {
    const p = pool();
    const h = bed.host('etcd1');
    await p.exec(h.ssh, bed.sshIdentity, 'true'); // pooled, verified against etcd1's own key
    const marker = `${bed.dir}/hosts/etcd1/pool-should-not-exist`;
    const wrong = { ...h.ssh, hostKey: bed.host('etcd2').hostKey };
    assert.notEqual(poolKey(wrong, bed.sshIdentity), poolKey(h.ssh, bed.sshIdentity));
    await assert.rejects(p.exec(wrong, bed.sshIdentity, `touch ${marker}`), (e: unknown) => {
      assert.ok(e instanceof SshError, String(e));
      assert.equal(e.kind, 'host-key-mismatch');
      assert.match(e.message, /etcd1 .*host key does not match its pin: the host presented SHA256:\S+, the cluster spec pins SHA256:\S+/);
      return true;
    });
    assert.equal((await p.exec(h.ssh, bed.sshIdentity, `test -e ${marker}`)).code, 1, 'the command must not have run');
    assert.equal(p.stats().connections, 2, 'the mismatching pin made its own connection attempt');
    // The same key pinned by its fingerprint is the same verified fact: the connection is shared.
    const fp = (await import('../activities/ssh-pool')).pinFingerprint(h.hostKey);
    await p.exec({ ...h.ssh, hostKey: fp }, bed.sshIdentity, 'true');
    assert.equal(p.stats().connections, 2);
  });

  it('another identity gets its own connection (and its own login)', async () => {
    const p = pool();
    const h = bed.host('etcd1');
    await p.exec(h.ssh, bed.sshIdentity, 'true');
    const stranger = { privateKey: Buffer.from(utils.generateKeyPairSync('ed25519').private) };
    await assert.rejects(p.exec(h.ssh, stranger, 'true'), (e: unknown) => e instanceof SshError && e.kind === 'auth' && /login refused \(publickey\)/.test(e.message));
    assert.equal(p.stats().connections, 2);
  });

  it("a restarted sshd: the next command works, on a new connection; while it is down the host is unreachable", async () => {
    const p = pool();
    const h = bed.host('etcd3');
    assert.equal((await p.exec(h.ssh, bed.sshIdentity, 'echo one')).stdout, 'one\n');
    await bed.stopSshd('etcd3');
    await assert.rejects(p.exec(h.ssh, bed.sshIdentity, 'echo down', { timeoutMs: 5_000 }), (e: unknown) => e instanceof SshError && e.kind === 'unreachable' && /cannot reach sshd/.test(e.message));
    await bed.startSshd('etcd3');
    assert.equal((await p.exec(h.ssh, bed.sshIdentity, 'echo two')).stdout, 'two\n');
    // stopped and started again without a command in between: the stale connection is replaced transparently
    await bed.stopSshd('etcd3');
    await bed.startSshd('etcd3');
    assert.equal((await p.exec(h.ssh, bed.sshIdentity, 'echo three')).stdout, 'three\n');
    const s = p.stats();
    assert.equal(s.connections, 4, JSON.stringify(s)); // one, the refused one while down, two, three
    assert.equal(p.state().connections, 1);
  });

  it('a pooled connection that dies without a word: the command, which never started, is retried once on a fresh connection', async () => {
    const p = pool({ openTimeoutMs: 500 });
    const h = bed.host('etcd2');
    const file = `${bed.dir}/hosts/etcd2/pool-ran`;
    await p.exec(h.ssh, bed.sshIdentity, `: > ${file}`);
    // Freeze the session's sshd: the TCP connection stays up, nothing answers on it.
    const listener = readRecorded(bed.dir).filter((r) => r.mark === bed.host('etcd2').sshdConfig).at(-1)!;
    const frozen = childPids(listener.pid);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const r = await p.exec(h.ssh, bed.sshIdentity, `echo ran >> ${file}; echo ok`);
      assert.equal(r.stdout, 'ok\n');
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
    await sleep(200);
    assert.equal(readFileSync(file, 'utf8'), 'ran\n', 'the command ran exactly once');
    const s = p.stats();
    assert.equal(s.retried, 1, JSON.stringify(s));
    assert.equal(s.connections, 2);
  });

  it('commands beyond the channel cap wait for a free channel, and all succeed on one connection', async () => {
    const p = pool({ maxChannels: 8 });
    const h = bed.host('etcd1');
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, p.state().channels)), 5);
    try {
      const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => p.exec(h.ssh, bed.sshIdentity, `sleep 0.3; echo ${i}`)));
      assert.deepEqual(
        outs.map((o) => o.stdout),
        Array.from({ length: 20 }, (_, i) => `${i}\n`),
      );
    } finally {
      clearInterval(sampler);
    }
    const s = p.stats();
    assert.equal(s.connections, 1, JSON.stringify(s));
    assert.equal(s.execs, 20);
    assert.equal(most, 8, 'at most 8 channels at once, and the cap was reached');
    assert.ok(s.queued >= 12, JSON.stringify(s));
  });

  it('the connection cap: an idle connection is closed to make room, a busy one makes the next host wait; raising the cap lets it in at once', async () => {
    assert.equal(new SshPool().maxConnections, 256, 'the default fits 50 five-host clusters at once');
    const p = pool({ maxConnections: 1 });
    const [a, b] = [bed.host('etcd1'), bed.host('etcd2')];
    await p.exec(a.ssh, bed.sshIdentity, 'true');
    assert.equal((await p.exec(b.ssh, bed.sshIdentity, 'echo b')).stdout, 'b\n');
    assert.equal(p.stats().evicted, 1, "etcd1's idle connection made room for etcd2's");
    assert.equal(p.state().connections, 1);

    // etcd2's connection busy for 1.5 s: etcd1's command waits for room ...
    const started = Date.now();
    const busy = p.exec(b.ssh, bed.sshIdentity, 'sleep 1.5; echo slept');
    await sleep(200);
    const waiting = p.exec(a.ssh, bed.sshIdentity, 'echo a').then((r) => ({ r, ms: Date.now() - started }));
    await sleep(300);
    assert.equal(p.stats().queued, 1, 'the second host waits for room');
    assert.equal(p.state().connections, 1);
    // ... until the cap is raised, which lets it in without waiting for the busy one
    p.setMaxConnections(2);
    const { r, ms } = await waiting;
    assert.equal(r.stdout, 'a\n');
    assert.ok(ms < 1_400, `etcd1's command ran when the cap was raised (${ms} ms), not when etcd2's was done`);
    assert.equal((await busy).stdout, 'slept\n');
    assert.equal(p.state().connections, 2);
    // lowering it closes idle connections down to the cap
    p.setMaxConnections(1);
    assert.equal(p.state().connections, 1);
    assert.throws(() => p.setMaxConnections(0), /maxConnections must be a whole number ≥ 1, not 0/);
  });

  it('a channel sshd refuses (beyond its MaxSessions) is retried on a fresh connection; nothing runs twice', async () => {
    const p = pool({ maxChannels: 60 }); // above the bed's MaxSessions 50: sshd refuses the rest
    const h = bed.host('etcd1');
    const file = `${bed.dir}/hosts/etcd1/pool-count`;
    await p.exec(h.ssh, bed.sshIdentity, `: > ${file}`);
    const outs = await Promise.all(Array.from({ length: 55 }, (_, i) => p.exec(h.ssh, bed.sshIdentity, `echo ${i} >> ${file}; sleep 0.5; echo ${i}`)));
    assert.ok(outs.every((o, i) => o.code === 0 && o.stdout === `${i}\n`));
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 55, 'each command ran once');
    const s = p.stats();
    assert.ok(s.retried >= 1, JSON.stringify(s));
    assert.ok(s.connections >= 2, JSON.stringify(s));
  });

  it('a command that times out takes its connection out of the pool; the next one gets a new connection', async () => {
    const p = pool();
    const h = bed.host('etcd2');
    await assert.rejects(p.exec(h.ssh, bed.sshIdentity, 'sleep 5', { timeoutMs: 500 }), (e: unknown) => e instanceof SshError && e.kind === 'timeout' && /command did not finish within 500 ms: sleep 5/.test(e.message));
    assert.equal((await p.exec(h.ssh, bed.sshIdentity, 'echo fine')).stdout, 'fine\n');
    assert.equal(p.stats().connections, 2);
  });

  it('an idle connection is closed after idleMs (on both ends)', async () => {
    await Promise.all([...pools.map((x) => x.closeAll()), closeSshPool()]); // the earlier cases' connections, and Bed.up's
    assert.equal(await sessionsSettle('etcd3', 0), 0);
    const p = pool({ idleMs: 300 });
    const h = bed.host('etcd3');
    await p.exec(h.ssh, bed.sshIdentity, 'true');
    assert.equal(p.state().connections, 1);
    assert.equal(sessions('etcd3'), 1);
    await sleep(800);
    for (const deadline = Date.now() + 2_000; p.state().closing > 0 && Date.now() < deadline; ) await sleep(20);
    assert.deepEqual(p.state(), { connections: 0, channels: 0, closing: 0 });
    assert.equal(p.stats().expired, 1);
    assert.equal(await sessionsSettle('etcd3', 0), 0, 'sshd closed its side too');
    await p.exec(h.ssh, bed.sshIdentity, 'true');
    assert.equal(p.stats().connections, 2);
  });

  it('closeAll closes every connection and leaves no handle open', async () => {
    const handles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const hosts = ['etcd1', 'etcd2', 'etcd3'];
    const noSessions = async () => Promise.all(hosts.map((n) => sessionsSettle(n, 0)));
    await Promise.all([...pools.map((x) => x.closeAll()), closeSshPool()]); // the earlier cases' connections, and Bed.up's
    const base = await noSessions();
    assert.deepEqual(base, [0, 0, 0]);
    const baseHandles = handles();
    const p = pool();
    await Promise.all(hosts.map((n) => p.exec(bed.host(n).ssh, bed.sshIdentity, 'true')));
    assert.equal(p.state().connections, 3);
    assert.deepEqual(hosts.map(sessions), base.map((b) => b + 1));
    assert.equal(handles(), baseHandles, 'idle connections hold no active handle (their sockets are unref-ed)');
    await p.closeAll();
    assert.deepEqual(p.state(), { connections: 0, channels: 0, closing: 0 });
    assert.equal(handles(), baseHandles);
    assert.deepEqual(await noSessions(), [0, 0, 0], 'sshd closed its side of each');
  });

  it('idle pooled connections do not keep a process alive', async () => {
    // A process that runs a command through the default pool and never closes it exits at once, not after idleMs.
    const script = [
      "const { sshExec } = require('./activities/ssh');",
      "const fs = require('node:fs');",
      'const t = JSON.parse(process.env.TARGET);',
      'sshExec(t, { privateKey: fs.readFileSync(process.env.KEY) }, "echo hi").then((r) => console.log(r.stdout.trim()));',
    ].join('\n');
    const t = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: join(__dirname, '..'),
      env: { ...process.env, TARGET: JSON.stringify(bed.host('etcd1').ssh), KEY: bed.secretFiles.sshKey },
      timeout: 15_000,
    });
    assert.equal(stdout.trim(), 'hi');
    assert.ok(Date.now() - t < 10_000, `the process took ${Date.now() - t} ms to exit`);
  });
});
