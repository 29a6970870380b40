/**
 * The test bed: real etcd, real sshd, real TLS, on loopback addresses of this machine.
 *
 * Host i (1-based) is `etcd<i>` at 127.10.0.<i> (the prefix is `net`): its own sshd on a
 * fixed port of its own address, with its own host key and authorized_keys, and its own
 * directory tree standing in for /etc, /etc/ssl/etcd/ssl and /var/lib/etcd. The first M hosts
 * run a TLS etcd cluster laid out Kubespray-style (etcd.env, member-<host>.pem), started with
 * the host's service commands over SSH; the CA (ca.pem, ca-key.pem) lives on host 1, as
 * Kubespray keeps it on the first etcd host. The worker's secrets (SSH identity, etcd client
 * certificate) live in `worker/`.
 *
 * Several beds can share one worker identity (`secretsFrom`: one worker serving many clusters):
 * the SSH key pair, the etcd CA and the worker's client certificate are made once in a directory
 * of their own (`Bed.sharedSecrets`); each bed then authorizes that key, puts that CA (ca.pem,
 * ca-key.pem) on its host 1 as before, and signs its own members' certificates with it.
 *
 * Processes are recorded by pid: `down()` stops exactly those; `up()` first cleans a bed of
 * the same directory left behind by a killed run.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { atomicWriteScript, keyAndCsrScript, makeCaScript, memberSans, signCsrScript } from '../activities/certs';
import { type EtcdCredentials, type ClusterObservation, observeCluster } from '../activities/etcd';
import { memberEnv, renderEnvFile } from '../activities/envfile';
import { type SshIdentity, type SshTarget, sshRun } from '../activities/ssh';
import { type ClusterSpec, type Member, expand, memberPaths, parseClusterSpec } from '../spec/cluster';
import { type EtcdBinaries, resolveEtcd } from './etcdVersions';
import { type Recorded, bash, childPids, cmdline, isOurs, portFree, readRecorded, sleep, spawnRecorded, startTicks, stopProcesses, waitForPort } from './procs';

export interface BedOptions {
  /** Number of hosts (each with sshd); default 3. */
  hosts?: number;
  /** Number of hosts that run the initial etcd cluster; default 3 (at most `hosts`). */
  members?: number;
  /** Root directory of the bed; default $TMPDIR/etcd-steward-bed. */
  dir?: string;
  /** First three octets of the hosts' addresses; must be in 127.0.0.0/8. Default 127.10.0. */
  net?: string;
  /** sshd port on every host's own address; default 2222. */
  sshPort?: number;
  /**
   * The etcd the hosts run (testbed/etcdVersions.ts): 3.4 (Debian's, the default), 3.5, 3.6, 3.7,
   * a full version, or a directory holding etcd and etcdctl. Default: $ETCD_VERSION. Each host gets
   * it as `<host root>/usr/local/bin/etcd` (a link, as Kubespray installs it in /usr/local/bin).
   */
  etcdVersion?: string;
  /** Extra ETCD_* variables for every member (e.g. heartbeat tuning). */
  etcdEnv?: Record<string, string>;
  /** The cluster's name in its spec (and so its operations' workflow id); default "bed". */
  name?: string;
  /**
   * A directory holding a worker identity several beds share (see `Bed.sharedSecrets`, which
   * makes it there the first time): this bed authorizes its SSH key and uses its CA and client
   * certificate instead of making its own. Kept outside the bed's directory; `down()` leaves it.
   * Default: the bed makes its own in `<dir>/worker`.
   */
  secretsFrom?: string;
  log?: (line: string) => void;
}

export interface BedHost {
  name: string;
  address: string;
  /** This host's directory tree. */
  root: string;
  ssh: SshTarget;
  /** The host key as an OpenSSH public key line (what a spec pins). */
  hostKey: string;
  /** This host's sshd_config (its sshd is recognised by it on the command line). */
  sshdConfig: string;
}

const SUPERVISOR = resolve(__dirname, 'etcd-service.sh');

export class Bed {
  private constructor(
    readonly dir: string,
    readonly hosts: BedHost[],
    /** The spec of the running cluster (the first M hosts). */
    readonly spec: ClusterSpec,
    readonly sshIdentity: SshIdentity,
    readonly etcdCredentials: EtcdCredentials,
    /** Paths of the worker's secrets, for a worker started as its own process. */
    readonly secretFiles: { sshKey: string; etcdCa: string; etcdCert: string; etcdKey: string },
    private readonly log: (line: string) => void,
    /** The etcd binaries every host runs (linked as <host root>/usr/local/bin/etcd). */
    readonly etcd: EtcdBinaries,
  ) {}

  static async up(opts: BedOptions = {}): Promise<Bed> {
    const nHosts = opts.hosts ?? 3;
    const nMembers = opts.members ?? Math.min(3, nHosts);
    if (nMembers > nHosts || nMembers < 1) throw new Error(`members (${nMembers}) must be between 1 and hosts (${nHosts})`);
    if (nHosts > 250) throw new Error('at most 250 hosts');
    // STEWARD_BED_NET / STEWARD_BED_DIR let two suites run side by side on one machine.
    const net = opts.net ?? process.env.STEWARD_BED_NET ?? '127.10.0';
    if (!/^127\.\d{1,3}\.\d{1,3}$/.test(net)) throw new Error(`net "${net}" must be the first three octets of a 127.0.0.0/8 address, e.g. 127.10.0`);
    const dir = resolve(opts.dir ?? process.env.STEWARD_BED_DIR ?? join(tmpdir(), 'etcd-steward-bed'));
    const sshPort = opts.sshPort ?? 2222;
    const log = opts.log ?? (() => {});

    await Bed.cleanStale(dir);
    mkdirSync(dir, { recursive: true });
    const user = userInfo().username;

    // The worker's SSH identity (its own, or the shared one), and the supervisor every host's service commands call.
    const shared = opts.secretsFrom ? await Bed.sharedSecrets(opts.secretsFrom) : undefined;
    const workerDir = shared?.dir ?? join(dir, 'worker');
    const sshKey = join(workerDir, 'id_ed25519');
    if (!shared) {
      mkdirSync(workerDir, { recursive: true, mode: 0o700 });
      await bash(`ssh-keygen -q -t ed25519 -N '' -C etcd-steward-worker -f '${sshKey}'`);
    }
    const workerPub = readFileSync(`${sshKey}.pub`, 'utf8');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    const etcd = await resolveEtcd(opts.etcdVersion, log);
    const supervisor = join(dir, 'bin', 'etcd-service');
    copyFileSync(SUPERVISOR, supervisor);
    chmodSync(supervisor, 0o755);

    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

    const hosts: BedHost[] = [];
    for (let i = 1; i <= nHosts; i++) {
      const name = `etcd${i}`;
      const address = `${net}.${i}`;
      const root = join(dir, 'hosts', name);
      const sshdDir = join(root, 'sshd');
      for (const d of ['etc/ssl/etcd/ssl', 'var/lib', 'run', 'log', 'usr/local/bin']) mkdirSync(join(root, d), { recursive: true });
      for (const b of ['etcd', 'etcdctl'] as const) {
        rmSync(join(root, 'usr/local/bin', b), { force: true });
        symlinkSync(etcd[b], join(root, 'usr/local/bin', b));
      }
      mkdirSync(sshdDir, { recursive: true, mode: 0o700 });
      if (!(await portFree(address, sshPort))) throw new Error(`${address}:${sshPort} is already in use: another bed running? Stop it (npm run bed -- down) or choose another net/sshPort.`);
      await bash(`ssh-keygen -q -t ed25519 -N '' -C ${name} -f '${sshdDir}/ssh_host_ed25519_key'`);
      writeFileSync(join(sshdDir, 'authorized_keys'), workerPub, { mode: 0o600 });
      writeFileSync(
        join(sshdDir, 'sshd_config'),
        [
          `ListenAddress ${address}:${sshPort}`,
          `HostKey ${sshdDir}/ssh_host_ed25519_key`,
          `PidFile ${sshdDir}/sshd.pid`,
          `AuthorizedKeysFile ${sshdDir}/authorized_keys`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'PermitRootLogin prohibit-password',
          `AllowUsers ${user}`,
          'MaxStartups 100:30:200',
          'MaxSessions 50',
          'LogLevel ERROR',
          '',
        ].join('\n'),
      );
      await bash(`/usr/sbin/sshd -t -f '${sshdDir}/sshd_config'`);
      spawnRecorded(dir, `sshd of ${name}`, '/usr/sbin/sshd', ['-D', '-e', '-f', join(sshdDir, 'sshd_config')], join(root, 'log', 'sshd.log'), join(sshdDir, 'sshd_config'));
      const hostKey = readFileSync(join(sshdDir, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
      hosts.push({ name, address, root, hostKey, sshdConfig: join(sshdDir, 'sshd_config'), ssh: { name, host: address, port: sshPort, user, hostKey } });
    }
    await Promise.all(hosts.map((h) => waitForPort(h.address, sshPort, 15_000, `sshd of ${h.name}`, join(h.root, 'log', 'sshd.log'))));
    log(`${nHosts} hosts up (sshd on ${hosts.map((h) => `${h.address}:${sshPort}`).join(', ')})`);

    // The layout: Kubespray's, each path under the host's own tree.
    const hostRoot = join(dir, 'hosts', '{name}');
    const spec = parseClusterSpec({
      name: opts.name ?? 'bed',
      members: hosts.slice(0, nMembers).map((h) => Bed.memberInput(h)),
      layout: {
        envFile: `${hostRoot}/etc/etcd.env`,
        certDir: `${hostRoot}/etc/ssl/etcd/ssl`,
        dataDir: `${hostRoot}/var/lib/etcd`,
        etcdBinary: `${hostRoot}/usr/local/bin/etcd`,
      },
      service: {
        start: `${supervisor} start ${hostRoot}`,
        stop: `${supervisor} stop ${hostRoot}`,
        restart: `${supervisor} restart ${hostRoot}`,
        isActive: `${supervisor} is-active ${hostRoot}`,
        mainPid: `${supervisor} pid ${hostRoot}`,
        logs: `${supervisor} logs ${hostRoot}`,
      },
      ca: { host: 'etcd1' },
    });

    // The CA on host 1 (made there, or the shared one copied there), then each initial member's key (made in its own tree) and certificate.
    const caDir = expand(spec.ca.dir, spec.ca.host);
    if (shared) {
      mkdirSync(caDir, { recursive: true });
      copyFileSync(shared.caCert, join(caDir, 'ca.pem'));
      copyFileSync(shared.caKey, join(caDir, 'ca-key.pem'));
      chmodSync(join(caDir, 'ca-key.pem'), 0o600);
    } else {
      await bash(makeCaScript(caDir));
    }
    for (const h of hosts) copyFileSync(join(caDir, 'ca.pem'), join(memberPaths(spec, h.name).caCert));
    const members = spec.members;
    for (const m of members) {
      const p = memberPaths(spec, m.name);
      const csr = await bash(keyAndCsrScript(p.key, `etcd-${m.name}`));
      const cert = await bash(signCsrScript(caDir, memberSans(m)), csr);
      await bash(atomicWriteScript(p.cert), cert);
    }
    // The worker's etcd client certificate (clientAuth), kept with its other secrets (the shared one was made with them).
    const etcdKey = join(workerDir, 'etcd-client-key.pem');
    const etcdCert = join(workerDir, 'etcd-client.pem');
    const etcdCa = join(workerDir, 'etcd-ca.pem');
    if (!shared) await makeClientCert(caDir, workerDir);

    const bed = new Bed(
      dir,
      hosts,
      spec,
      { privateKey: readFileSync(sshKey) },
      { caCert: readFileSync(etcdCa), cert: readFileSync(etcdCert), key: readFileSync(etcdKey) },
      { sshKey, etcdCa, etcdCert, etcdKey },
      log,
      etcd,
    );

    // Bootstrap: every initial member's etcd.env (state "new"), started by its service command over SSH.
    const extra = { ETCD_HEARTBEAT_INTERVAL: '100', ETCD_ELECTION_TIMEOUT: '1000', ETCD_SNAPSHOT_COUNT: '10000', ...opts.etcdEnv };
    for (const m of members) {
      writeFileSync(memberPaths(spec, m.name).envFile, renderEnvFile(memberEnv(spec, m, members, 'new', extra)));
    }
    await Promise.all(members.map((m) => sshRun(bed.host(m.name).ssh, bed.sshIdentity, expand(spec.service.start, m.name))));
    const health = await bed.waitHealthy(60_000);
    log(`etcd cluster up: ${health.voters} voting members, leader ${health.statuses.find((s) => s.id === health.leaderId)?.name}`);
    return bed;
  }

  /**
   * A worker identity for several beds, in `dir` (made there the first time, reused after): the
   * SSH key pair (id_ed25519), an etcd CA (ca.pem, ca-key.pem: each bed copies both to its host 1,
   * where Kubespray keeps them) and the worker's etcd client certificate signed by it
   * (etcd-client.pem, etcd-client-key.pem, etcd-ca.pem). Make it once before bringing beds up in
   * parallel: two first calls at once would both make it.
   */
  static async sharedSecrets(dir: string): Promise<{ dir: string; caCert: string; caKey: string }> {
    const d = resolve(dir);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const sshKey = join(d, 'id_ed25519');
    if (!existsSync(sshKey) || !existsSync(`${sshKey}.pub`)) {
      rmSync(sshKey, { force: true });
      rmSync(`${sshKey}.pub`, { force: true });
      await bash(`ssh-keygen -q -t ed25519 -N '' -C etcd-steward-worker -f '${sshKey}'`);
    }
    await bash(makeCaScript(d, 'etcd-steward shared test CA')); // makes nothing when ca-key.pem is there
    if (!['etcd-client.pem', 'etcd-client-key.pem', 'etcd-ca.pem'].every((f) => existsSync(join(d, f)))) await makeClientCert(d, d);
    return { dir: d, caCert: join(d, 'ca.pem'), caKey: join(d, 'ca-key.pem') };
  }

  /** The spec entry for host `h` (a member, or a host that can become one). */
  static memberInput(h: BedHost): Member {
    return {
      name: h.name,
      address: h.address,
      peerURLs: [`https://${h.address}:2380`],
      clientURLs: [`https://${h.address}:2379`],
      ssh: { host: h.ssh.host, port: h.ssh.port, user: h.ssh.user, hostKey: h.hostKey },
    };
  }

  host(name: string): BedHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name} in the bed`);
    return h;
  }

  /**
   * Stops a host's sshd as a host that goes away does: the listener (new connections are
   * refused) and its open sessions (the worker's pooled connections to it drop).
   */
  async stopSshd(name: string): Promise<void> {
    const h = this.host(name);
    await stopSshds(readRecorded(this.dir).filter((r) => r.mark === h.sshdConfig));
  }

  /** Starts a host's sshd again (same host key, same port). */
  async startSshd(name: string): Promise<void> {
    const h = this.host(name);
    spawnRecorded(this.dir, `sshd of ${name}`, '/usr/sbin/sshd', ['-D', '-e', '-f', h.sshdConfig], join(h.root, 'log', 'sshd.log'), h.sshdConfig);
    await waitForPort(h.address, h.ssh.port, 15_000, `sshd of ${name}`, join(h.root, 'log', 'sshd.log'));
  }

  /** Stops a member's etcd with its own service command (a member that is down before an operation). */
  async stopEtcd(name: string): Promise<void> {
    await bash(expand(this.spec.service.stop, name));
    if (this.etcdPid(name) !== null) throw new Error(`etcd of ${name} still runs after its stop command`);
  }

  /** Client URLs of the cluster's members, for the etcd client. */
  get endpoints(): string[] {
    return this.spec.members.flatMap((m) => m.clientURLs);
  }

  observe(): Promise<ClusterObservation> {
    return observeCluster(this.etcdCredentials, { endpoints: this.endpoints });
  }

  async waitHealthy(timeoutMs: number): Promise<ClusterObservation> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = await this.observe();
      if (o.healthy) return o;
      if (Date.now() > deadline) throw new Error(`etcd cluster not healthy within ${timeoutMs} ms: ${o.problems.join('; ')}\n${this.etcdLogTail()}`);
      await sleep(250);
    }
  }

  /** The pid of a host's etcd (from its supervisor pidfile), or null when it does not run. */
  etcdPid(name: string): number | null {
    let text: string;
    try {
      text = readFileSync(join(this.host(name).root, 'run', 'etcd.pid'), 'utf8'); // the supervisor may remove it at any moment
    } catch {
      return null;
    }
    const pid = Number(text.trim());
    return Number.isInteger(pid) && pid > 0 && isOurs(pid, '') && (cmdline(pid) ?? '').includes('etcd') ? pid : null;
  }

  /** pid and start time of each host's etcd: equal before and after means "not restarted". */
  etcdProcesses(): Record<string, { pid: number; startTicks: number } | null> {
    const out: Record<string, { pid: number; startTicks: number } | null> = {};
    for (const h of this.hosts) {
      const pid = this.etcdPid(h.name);
      out[h.name] = pid === null ? null : { pid, startTicks: startTicks(pid) ?? -1 };
    }
    return out;
  }

  etcdLogTail(lines = 8): string {
    return this.hosts
      .map((h) => join(h.root, 'log', 'etcd.log'))
      .filter((f) => existsSync(f))
      .map((f) => `--- ${f} ---\n${readFileSync(f, 'utf8').split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  }

  /** Every pid the bed started that still runs (sshd masters, etcd members). */
  livePids(): number[] {
    const recorded = readRecorded(this.dir).filter((r) => isOurs(r.pid, r.mark)).map((r) => r.pid);
    const etcd = this.hosts.map((h) => this.etcdPid(h.name)).filter((p): p is number => p !== null);
    return [...recorded, ...etcd];
  }

  /** Stops exactly the processes the bed started and removes its files. */
  async down(): Promise<void> {
    await Bed.cleanStale(this.dir);
    this.log('bed down');
  }

  /** Stops the processes a bed in `dir` recorded (its etcd members by their pidfiles), then removes the directory. */
  static async cleanStale(dir: string): Promise<void> {
    if (!existsSync(dir)) return;
    const procs = readRecorded(dir);
    const hostsDir = join(dir, 'hosts');
    if (existsSync(hostsDir)) {
      for (const name of (await bash(`ls -1 '${hostsDir}'`)).split('\n').filter(Boolean)) {
        const f = join(hostsDir, name, 'run', 'etcd.pid');
        if (!existsSync(f)) continue;
        const pid = Number(readFileSync(f, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0) procs.push({ pid, what: `etcd of ${name}`, mark: 'etcd' });
      }
    }
    // etcd members started by a supervisor carry no bed path on their command line; their pidfile
    // and the binary name identify them. Stop etcd first so the cluster does not log sshd noise.
    await stopProcesses(procs.filter((p) => p.what.startsWith('etcd')));
    await stopSshds(procs.filter((p) => p.what.startsWith('sshd of')));
    await stopProcesses(procs.filter((p) => !p.what.startsWith('etcd') && !p.what.startsWith('sshd of')));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The worker's etcd client certificate (clientAuth) signed by the CA in `caDir`, written to `workerDir` with a copy of ca.pem. */
async function makeClientCert(caDir: string, workerDir: string): Promise<void> {
  const csr = await bash(keyAndCsrScript(join(workerDir, 'etcd-client-key.pem'), 'etcd-steward'));
  writeFileSync(join(workerDir, 'etcd-client.pem'), await bash(signCsrScript(caDir, ['DNS:etcd-steward']), csr));
  copyFileSync(join(caDir, 'ca.pem'), join(workerDir, 'etcd-ca.pem'));
}

/** Stops sshd listeners and then the sessions they had forked (each one connection, e.g. the worker's pooled ones). */
async function stopSshds(listeners: Recorded[]): Promise<void> {
  const sessions = listeners.filter((r) => isOurs(r.pid, r.mark)).flatMap((r) => childPids(r.pid).map((pid) => ({ pid, what: `session of ${r.what}`, mark: 'sshd' })));
  await stopProcesses(listeners);
  await stopProcesses(sessions);
}
