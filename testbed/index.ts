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
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { atomicWriteScript, keyAndCsrScript, makeCaScript, memberSans, signCsrScript } from '../activities/certs';
import { type EtcdCredentials, type ClusterObservation, observeCluster } from '../activities/etcd';
import { memberEnv, renderEnvFile } from '../activities/envfile';
import { type SshIdentity, type SshTarget, sshRun } from '../activities/ssh';
import { type ClusterSpec, type Member, expand, memberPaths, parseClusterSpec } from '../spec/cluster';
import { type EtcdBinaries, resolveEtcd } from './etcdVersions';
import { type Recorded, bash, childPids, cmdline, isOurs, portFree, readRecorded, sleep, spawnRecorded, startTicks, stopProcesses, waitForListener, waitForPort } from './procs';

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
  /**
   * How the worker logs in. `root` (the default): as the user running the bed (root in CI), with
   * no sudo. `sudo`: as the unprivileged user `etcd-steward` with `become: sudo` (sudoers: the one
   * line the README gives), and every host's sshd refuses root logins (PermitRootLogin no). The
   * bed makes the users (BED_USERS) and the sudoers file the first time; it must run as root.
   */
  access?: 'root' | 'sudo';
  /**
   * A bastion at `<net>.254` (its own sshd, login `etcd-steward-jump`, forwarding only to the
   * hosts' sshd) that is the only way to the hosts: a firewall rule (iptables, owner match) refuses
   * SSH connections to the hosts from every user but the bastion's, and the spec says `ssh.via`.
   * Needs root and iptables.
   */
  bastion?: boolean;
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

/** The users a bed with `access: 'sudo'` or `bastion` logs in as (made once, kept: users are the machine's). */
export const BED_USERS = {
  /** The worker's SSH user on the hosts: sudo without a password for exactly what etcd-steward runs. */
  sudo: 'etcd-steward',
  /** A user whose sudoers entry asks for a password (what preflight must catch). */
  sudoWithPassword: 'etcd-steward-pw',
  /** The bastion's login: no shell, forwarding to the hosts' sshd only. */
  jump: 'etcd-steward-jump',
} as const;

/** The bastion in front of a bed's hosts. */
export interface BedBastion {
  address: string;
  port: number;
  user: string;
  hostKey: string;
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
    /** The bastion, when the bed has one (BedOptions.bastion). */
    readonly bastion?: BedBastion,
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
    const access = opts.access ?? 'root';
    if ((access === 'sudo' || opts.bastion) && process.getuid?.() !== 0) throw new Error('a bed with access "sudo" or a bastion makes users, a sudoers file and a firewall rule: run it as root');
    if (access === 'sudo' || opts.bastion) await ensureBedUsers();
    const user = access === 'sudo' ? BED_USERS.sudo : userInfo().username;

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
      // Non-root: the key as the README advises it for the worker's user (restrict: no pty, no forwarding; commands only).
      const sshdConfig = await writeSshd(
        root,
        address,
        sshPort,
        name,
        workerPub,
        access === 'sudo' ? ['PermitRootLogin no', `AllowUsers ${BED_USERS.sudo} ${BED_USERS.sudoWithPassword}`] : ['PermitRootLogin prohibit-password', `AllowUsers ${user}`],
        access === 'sudo' ? 'restrict' : '',
      );
      spawnRecorded(dir, `sshd of ${name}`, '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig], join(root, 'log', 'sshd.log'), sshdConfig);
      const hostKey = readFileSync(join(sshdDir, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
      hosts.push({ name, address, root, hostKey, sshdConfig, ssh: { name, host: address, port: sshPort, user, hostKey, ...(access === 'sudo' ? { become: 'sudo' as const } : {}) } });
    }
    await Promise.all(hosts.map((h) => waitForPort(h.address, sshPort, 15_000, `sshd of ${h.name}`, join(h.root, 'log', 'sshd.log'))));
    log(`${nHosts} hosts up (sshd on ${hosts.map((h) => `${h.address}:${sshPort}`).join(', ')})`);
    let bastion: BedBastion | undefined;
    if (opts.bastion) {
      const address = `${net}.254`;
      const root = join(dir, 'hosts', 'bastion');
      mkdirSync(join(root, 'log'), { recursive: true });
      mkdirSync(join(root, 'sshd'), { recursive: true, mode: 0o700 });
      if (!(await portFree(address, sshPort))) throw new Error(`${address}:${sshPort} (the bastion) is already in use: another bed running?`);
      const sshdConfig = await writeSshd(root, address, sshPort, 'bastion', workerPub, [
        'PermitRootLogin no',
        `AllowUsers ${BED_USERS.jump}`,
        // A jump host: tunnels to the hosts' sshd and nothing else (no shell, no other destination).
        'AllowTcpForwarding local',
        `PermitOpen ${hosts.map((h) => `${h.address}:${sshPort}`).join(' ')}`,
        'PermitTTY no',
        'X11Forwarding no',
        'ForceCommand /bin/false',
        // its logins are logged (the first LogLevel wins): tests count them
        'LogLevel INFO',
      ], `restrict,port-forwarding,${hosts.map((h) => `permitopen="${h.address}:${sshPort}"`).join(',')}`);
      spawnRecorded(dir, 'sshd of bastion', '/usr/sbin/sshd', ['-D', '-e', '-f', sshdConfig], join(root, 'log', 'sshd.log'), sshdConfig);
      await waitForPort(address, sshPort, 15_000, 'sshd of the bastion', join(root, 'log', 'sshd.log'));
      const hostKey = readFileSync(join(root, 'sshd', 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
      bastion = { address, port: sshPort, user: BED_USERS.jump, hostKey, sshdConfig };
      // The bastion is the only way in: SSH to the hosts from any user but the bastion's is refused.
      await blockDirectSsh(dir, hosts.map((h) => `${h.address}:${sshPort}`));
      const via = [{ host: address, port: sshPort, user: BED_USERS.jump, hostKey }];
      for (const h of hosts) h.ssh = { ...h.ssh, via };
      log(`bastion ${address}:${sshPort} up: the hosts' sshd take connections from it only`);
    }

    // The layout: Kubespray's, each path under the host's own tree.
    const hostRoot = join(dir, 'hosts', '{name}');
    const spec = parseClusterSpec({
      name: opts.name ?? 'bed',
      // Non-root access and the bastion are said once for the cluster, as a fleet would (members added later get them too).
      ...(access === 'sudo' || bastion
        ? {
            ssh: {
              user,
              ...(access === 'sudo' ? { become: 'sudo' as const } : {}),
              ...(bastion ? { via: [{ host: bastion.address, port: bastion.port, user: bastion.user, hostKey: bastion.hostKey }] } : {}),
            },
          }
        : {}),
      members: hosts.slice(0, nMembers).map((h) => {
        const m = Bed.memberInput(h);
        return access === 'sudo' || bastion ? { ...m, ssh: { host: m.ssh.host, port: m.ssh.port, hostKey: m.ssh.hostKey } } : m;
      }),
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
      bastion,
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

  /** The spec entry for host `h` (a member, or a host that can become one), its SSH access in full. */
  static memberInput(h: BedHost): Member {
    return {
      name: h.name,
      address: h.address,
      peerURLs: [`https://${h.address}:2380`],
      clientURLs: [`https://${h.address}:2379`],
      ssh: { host: h.ssh.host, port: h.ssh.port, user: h.ssh.user, hostKey: h.hostKey, ...(h.ssh.become ? { become: h.ssh.become } : {}), ...(h.ssh.via ? { via: h.ssh.via } : {}) },
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
    await (this.bastion ? waitForListener : waitForPort)(h.address, h.ssh.port, 15_000, `sshd of ${name}`, join(h.root, 'log', 'sshd.log'));
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
    await unblockDirectSsh(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A host's sshd configuration (and its host key), written under `<root>/sshd`. authorized_keys
 * lives in `<root>/sshd-keys`, readable by the login user: sshd reads it as that user.
 */
async function writeSshd(root: string, address: string, port: number, name: string, workerPub: string, access: string[], keyOptions = ''): Promise<string> {
  const sshdDir = join(root, 'sshd');
  const keysDir = join(root, 'sshd-keys');
  mkdirSync(sshdDir, { recursive: true, mode: 0o700 });
  mkdirSync(keysDir, { recursive: true, mode: 0o755 });
  chmodSync(keysDir, 0o755);
  await bash(`ssh-keygen -q -t ed25519 -N '' -C ${name} -f '${sshdDir}/ssh_host_ed25519_key'`);
  writeFileSync(join(keysDir, 'authorized_keys'), `${keyOptions ? `${keyOptions} ` : ''}${workerPub}`, { mode: 0o644 });
  const config = join(sshdDir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress ${address}:${port}`,
      `HostKey ${sshdDir}/ssh_host_ed25519_key`,
      `PidFile ${sshdDir}/sshd.pid`,
      `AuthorizedKeysFile ${keysDir}/authorized_keys`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      ...access,
      'MaxStartups 100:30:200',
      'MaxSessions 50',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  await bash(`/usr/sbin/sshd -t -f '${config}'`);
  return config;
}

/**
 * The bed's users (BED_USERS), made when missing: `etcd-steward` with the sudoers line the README
 * gives (NOPASSWD, /bin/bash only), `etcd-steward-pw` with the same entry but a password asked,
 * `etcd-steward-jump` with no shell. Logins are by key only (the password field is `*`: no
 * password, not locked, as sshd refuses locked accounts).
 */
async function ensureBedUsers(): Promise<void> {
  const { sudoersLine } = await import('../activities/ssh-pool');
  for (const [u, shell] of [
    [BED_USERS.sudo, '/bin/bash'],
    [BED_USERS.sudoWithPassword, '/bin/bash'],
    [BED_USERS.jump, '/usr/sbin/nologin'],
  ] as const) {
    await bash(`id -u ${u} >/dev/null 2>&1 || useradd --create-home --shell ${shell} ${u}; usermod -p '*' ${u}`);
  }
  const sudoers = [
    '# etcd-steward test bed (testbed/index.ts): the worker user, and one whose sudo asks for a password',
    sudoersLine(BED_USERS.sudo),
    `${BED_USERS.sudoWithPassword} ALL=(root) /bin/bash`,
    '',
  ].join('\n');
  const file = '/etc/sudoers.d/etcd-steward-bed';
  if (!existsSync(file) || readFileSync(file, 'utf8') !== sudoers) {
    mkdirSync('/etc/sudoers.d', { recursive: true });
    writeFileSync(`${file}.new`, sudoers, { mode: 0o440 });
    await bash(`visudo -cq -f '${file}.new' && mv '${file}.new' '${file}'`);
  }
}

/** The firewall rules' comment for a bed's directory. */
function firewallMark(dir: string): string {
  return `etcd-steward-bed-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
}

/** Refuses SSH to `endpoints` (address:port) from every user but the bastion's (iptables owner match on loopback output). */
async function blockDirectSsh(dir: string, endpoints: string[]): Promise<void> {
  if (!existsSync('/usr/sbin/iptables')) throw new Error('a bed with a bastion needs iptables to make the bastion the only way in: apt-get install iptables');
  const mark = firewallMark(dir);
  const uid = (await bash(`id -u ${BED_USERS.jump}`)).trim();
  for (const e of endpoints) {
    const [address, port] = e.split(':');
    await bash(`iptables -w -A OUTPUT -o lo -d ${address}/32 -p tcp --dport ${port} -m owner ! --uid-owner ${uid} -m comment --comment ${mark} -j REJECT --reject-with tcp-reset`);
  }
}

/** Removes the rules blockDirectSsh added for a bed in `dir` (also those a killed run left). */
async function unblockDirectSsh(dir: string): Promise<void> {
  if (!existsSync('/usr/sbin/iptables') || process.getuid?.() !== 0) return;
  const mark = firewallMark(dir);
  const rules = (await bash('iptables -w -S OUTPUT').catch(() => '')).split('\n').filter((l) => l.includes(mark) && l.startsWith('-A '));
  for (const r of rules) await bash(`iptables -w ${r.replace(/^-A /, '-D ')}`);
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
