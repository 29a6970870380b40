/**
 * A cluster spec from a Kubespray inventory, as Kubespray itself would resolve it.
 *
 * The inventory is read by Ansible's own parser, `ansible-inventory --list` (ansible-core; every
 * Kubespray user has it): the INI form with `[etcd:children]`, vars sections and inline host
 * vars, the YAML form (`all.hosts` + `children.etcd.hosts`), and the `group_vars/` and
 * `host_vars/` next to the inventory, exactly as a playbook run sees them. (No npm INI parser
 * reads Ansible's dialect: host lines carry several `key=value` pairs, and `ini` would take
 * "node1 ansible_host" for a key. A hand-written parser would also miss group_vars.)
 *
 * Kubespray's rules, applied to the hosts of the `etcd` group in Ansible's order:
 * - member name: `etcd_member_name`, else `etcd<position in the etcd group, from 1>`;
 * - address (certificate SANs, peer and client URLs on 2380/2379): `access_ip`, else `ip`, else
 *   `ansible_host` (Kubespray's last resort is the gathered default address, which only a
 *   playbook run knows: set `ip` when `ansible_host` is not the address etcd uses);
 * - SSH: `ansible_host` (else the inventory hostname), `ansible_port` (22), `ansible_user`
 *   (else the local user, as Ansible does); the host key from known_hosts, never trusted on
 *   first use; `become: sudo` when `ansible_become` is true, or when it is not set and the user is
 *   not root (Kubespray is run with `--become`); a host of the `bastion` group is every etcd
 *   host's jump host (`ssh.via`), as Kubespray's ssh-bastion.conf makes it, its key pinned the same way;
 * - certificates `member-<inventory hostname>.pem` in `etcd_cert_dir` (/etc/ssl/etcd/ssl), the
 *   CA (ca.pem, ca-key.pem) there on the first etcd host; env file /etc/etcd.env; data dir
 *   `etcd_data_dir` (/var/lib/etcd); binary `bin_dir`/etcd (/usr/local/bin); token
 *   `etcd_cluster_token` (k8s_etcd); the systemd unit `etcd`. Only `etcd_deployment_type: host`
 *   (Kubespray's default) is driven: with `kubeadm`, kubeadm's static pods run etcd.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { type ClusterSpec, type ClusterSpecInput, SpecError, parseClusterSpec } from './cluster';
import { hostKeysFor, knownHostsName } from './knownHosts';

/** `ansible-inventory --list` output: groups with hosts and children, and every host's merged vars. */
export interface AnsibleInventoryList {
  _meta?: { hostvars?: Record<string, Record<string, unknown>> };
  [group: string]: { hosts?: string[]; children?: string[]; vars?: Record<string, unknown> } | undefined | AnsibleInventoryList['_meta'];
}

export interface InventoryOptions {
  /** known_hosts to pin host keys from; default ~/.ssh/known_hosts. */
  knownHosts?: string;
  /** The cluster's name (the operations' workflow id derives from it); default: the inventory's directory name (inventory/<name>/hosts.yaml). */
  clusterName?: string;
  /** The SSH user when a host sets no ansible_user; default: the local user (Ansible's default). */
  defaultUser?: string;
  /** The ansible-inventory executable; default `ansible-inventory` on PATH. */
  ansibleInventory?: string;
  /**
   * A partial cluster spec laid over what the inventory implies (`name`, `token`, `layout`,
   * `service`, `ca`; each object merged field by field): for a unit named other than `etcd`, an
   * env file elsewhere, or a test bed. Members always come from the inventory.
   */
  overlay?: Record<string, unknown>;
}

/** The top-level fields an overlay may set. */
const OVERLAY_FIELDS = ['name', 'token', 'layout', 'service', 'ca'] as const;

/** One etcd host of the inventory, as mapped (for messages and for `scale-out --inventory`). */
export interface InventoryHost {
  /** The inventory hostname (node1). */
  host: string;
  /** The etcd member name (etcd1). */
  member: string;
  /** 1-based line where the inventory file names the host first (0: not found, e.g. from host_vars). */
  line: number;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : typeof v === 'number' ? String(v) : undefined);

/** The hosts of `group` in Ansible's order: its own hosts, then its descendants' (breadth-first), each once. */
export function groupHosts(list: AnsibleInventoryList, group: string): string[] {
  const out: string[] = [];
  const seenGroups = new Set<string>();
  const queue = [group];
  while (queue.length) {
    const g = queue.shift()!;
    if (seenGroups.has(g)) continue;
    seenGroups.add(g);
    const entry = list[g] as { hosts?: string[]; children?: string[] } | undefined;
    for (const h of entry?.hosts ?? []) if (!out.includes(h)) out.push(h);
    queue.push(...(entry?.children ?? []));
  }
  return out;
}

/** The 1-based line where `text` names `host` first (an INI host line or a YAML key), 0 when it does not. */
export function lineOfHost(text: string, host: string): number {
  const re = new RegExp(`^\\s*(- )?${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|:|$)`);
  const i = text.split('\n').findIndex((l) => re.test(l) && !/^\s*[#;]/.test(l));
  return i + 1;
}

/**
 * Maps `ansible-inventory --list` output onto a cluster spec (pure: the file text is only for
 * line numbers in messages). Throws SpecError naming each problem with its host, line and fix.
 */
export function specFromInventory(
  list: AnsibleInventoryList,
  o: { file: string; text: string; knownHostsFile: string; knownHosts: string; clusterName: string; defaultUser: string; overlay?: Record<string, unknown> },
): { spec: ClusterSpec; hosts: InventoryHost[] } {
  const where = (host: string) => {
    const n = lineOfHost(o.text, host);
    return n ? `${o.file}:${n}` : o.file;
  };
  const problems: string[] = [];
  const etcdHosts = groupHosts(list, 'etcd');
  if (!list.etcd || etcdHosts.length === 0) {
    throw new SpecError(o.file, [
      list.etcd
        ? 'the etcd group has no hosts: list the etcd hosts under [etcd] (or [etcd:children] kube_control_plane), as Kubespray expects'
        : 'has no etcd group: Kubespray installs etcd on the hosts of the "etcd" group; add an [etcd] section listing them, or [etcd:children] with kube_control_plane (hosts.yaml: all.children.etcd.hosts)',
    ]);
  }
  const vars = (h: string) => list._meta?.hostvars?.[h] ?? {};
  const templated = (h: string, k: string) => {
    const v = vars(h)[k];
    if (typeof v === 'string' && v.includes('{{')) {
      problems.push(`${where(h)}: ${h}'s ${k} is a Jinja template ("${v}"), which only a playbook run renders: set it to its value for etcd-steward`);
      return true;
    }
    return false;
  };
  const hosts: InventoryHost[] = [];
  const members: ClusterSpecInput['members'] = [];
  const layoutOf = new Map<string, string>();
  // Kubespray's bastion: the first host of the `bastion` group, the jump host of every other host.
  const bastionHosts = groupHosts(list, 'bastion');
  let bastion: { host: string; port: number; user: string; hostKey: string } | undefined;
  if (bastionHosts.length) {
    const b = bastionHosts[0]!;
    const v = vars(b);
    const host = str(v.ansible_host) ?? str(v.ansible_ssh_host) ?? b;
    const port = Number(str(v.ansible_port) ?? str(v.ansible_ssh_port) ?? '22');
    const found = hostKeysFor(o.knownHosts, host, Number.isInteger(port) ? port : 22);
    if (found.keys.length === 0) {
      problems.push(`${where(b)}: no host key for the bastion ${knownHostsName(host, port)} (${b}) in ${o.knownHostsFile}: add it after checking it out of band; etcd-steward never trusts a key on first use`);
    }
    bastion = { host, port: Number.isInteger(port) ? port : 22, user: str(v.ansible_user) ?? str(v.ansible_ssh_user) ?? o.defaultUser, hostKey: found.keys[0]?.key ?? 'SHA256:missing' };
  }
  etcdHosts.forEach((h, i) => {
    const v = vars(h);
    for (const k of ['etcd_member_name', 'access_ip', 'ip', 'ansible_host', 'ansible_user', 'etcd_data_dir', 'etcd_cert_dir', 'bin_dir', 'etcd_cluster_token']) templated(h, k);
    const deployment = str(v.etcd_deployment_type);
    if (deployment && deployment !== 'host') {
      problems.push(`${where(h)}: ${h} has etcd_deployment_type=${deployment}; etcd-steward drives the systemd etcd Kubespray installs with etcd_deployment_type=host (with kubeadm, kubeadm's static pods run etcd)`);
    }
    const member = str(v.etcd_member_name) ?? `etcd${i + 1}`;
    const address = str(v.access_ip) ?? str(v.ip) ?? str(v.ansible_host);
    if (!address) {
      problems.push(`${where(h)}: ${h} has no address: set ip= (the address etcd listens on; access_ip= when others reach it by another) or ansible_host= on its line`);
      return;
    }
    const sshHost = str(v.ansible_host) ?? str(v.ansible_ssh_host) ?? h;
    const portText = str(v.ansible_port) ?? str(v.ansible_ssh_port) ?? '22';
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${where(h)}: ${h}'s ansible_port "${portText}" is not a port number`);
    const found = hostKeysFor(o.knownHosts, sshHost, port);
    if (found.keys.length === 0) {
      problems.push(
        `${where(h)}: no host key for ${knownHostsName(sshHost, port)} (${h}) in ${o.knownHostsFile}${found.revoked.length ? ` (its key on line ${found.revoked[0]!.line} is @revoked)` : ''}: ` +
          `add it after checking it out of band (e.g. \`ssh-keyscan -p ${port} -t ed25519 ${sshHost}\` compared with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on the host's console); etcd-steward never trusts a key on first use`,
      );
    }
    for (const [k, d] of [
      ['etcd_data_dir', '/var/lib/etcd'],
      ['etcd_cert_dir', '/etc/ssl/etcd/ssl'],
      ['bin_dir', '/usr/local/bin'],
      ['etcd_cluster_token', 'k8s_etcd'],
    ] as const) {
      const val = str(v[k]) ?? d;
      const prev = layoutOf.get(k);
      if (prev !== undefined && prev !== val) problems.push(`${where(h)}: ${h}'s ${k} is "${val}", another etcd host's is "${prev}": etcd-steward needs one layout for the cluster (set it in group_vars/etcd)`);
      if (prev === undefined) layoutOf.set(k, val);
    }
    hosts.push({ host: h, member, line: lineOfHost(o.text, h) });
    const user = str(v.ansible_user) ?? str(v.ansible_ssh_user) ?? o.defaultUser;
    const become = becomeOf(v, user, (why) => problems.push(`${where(h)}: ${h}'s ${why}`));
    members.push({
      name: member,
      address,
      certName: h,
      ssh: { host: sshHost, port: Number.isInteger(port) ? port : 22, user, hostKey: found.keys[0]?.key ?? 'SHA256:missing', become, ...(bastion ? { via: [bastion] } : {}) },
    });
  });
  const byName = new Map<string, string[]>();
  for (const x of hosts) byName.set(x.member, [...(byName.get(x.member) ?? []), x.host]);
  for (const [name, hs] of byName) {
    if (hs.length > 1) problems.push(`${hs.map(where).join(', ')}: ${hs.join(' and ')} are both etcd member "${name}": give each its own etcd_member_name (or none, for etcd<position>)`);
  }
  if (problems.length) throw new SpecError(o.file, problems);
  const certDir = layoutOf.get('etcd_cert_dir')!;
  const input: Record<string, unknown> = {
    name: o.clusterName,
    token: layoutOf.get('etcd_cluster_token')!,
    members,
    layout: { envFile: '/etc/etcd.env', certDir, dataDir: layoutOf.get('etcd_data_dir')!, etcdBinary: `${layoutOf.get('bin_dir')!.replace(/\/+$/, '')}/etcd` },
    service: {},
    ca: { host: members[0]!.name, dir: certDir },
  };
  const extra = Object.keys(o.overlay ?? {}).filter((k) => !(OVERLAY_FIELDS as readonly string[]).includes(k));
  if (extra.length) throw new SpecError('overlay', extra.map((k) => `${k}: an overlay sets only ${OVERLAY_FIELDS.join(', ')} (${k === 'members' ? 'the members come from the inventory' : 'not a field it may set'})`));
  for (const k of OVERLAY_FIELDS) {
    const v = o.overlay?.[k];
    if (v === undefined) continue;
    input[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(input[k] as object), ...v } : v;
  }
  return { spec: parseClusterSpec(input as ClusterSpecInput, `${o.file} (as a cluster spec${o.overlay ? ', with the overlay' : ''})`), hosts };
}

/**
 * `become` for a host's SSH user: `ansible_become` when set (its method must be sudo, to root);
 * else sudo for a user other than root, since Kubespray runs its playbooks with `--become`.
 */
function becomeOf(v: Record<string, unknown>, user: string, problem: (why: string) => void): 'none' | 'sudo' {
  const raw = v.ansible_become;
  const flag = typeof raw === 'boolean' ? raw : typeof raw === 'string' ? /^(true|yes|on|1)$/i.test(raw.trim()) : undefined;
  const become = flag ?? user !== 'root';
  if (!become) return 'none';
  const method = str(v.ansible_become_method) ?? 'sudo';
  if (method !== 'sudo') problem(`ansible_become_method is "${method}": etcd-steward becomes root with sudo only (sudo -n, see the README's sudoers line)`);
  const to = str(v.ansible_become_user) ?? 'root';
  if (to !== 'root') problem(`ansible_become_user is "${to}": etcd-steward's commands run as root (they write certificates and start etcd)`);
  return 'sudo';
}

/** The cluster name a Kubespray inventory implies: its directory's (inventory/prod-eu/hosts.yaml → prod-eu). */
export function clusterNameOf(file: string): string {
  const dir = basename(dirname(resolve(file)));
  return dir.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'kubespray';
}

/** Reads a Kubespray inventory (INI or YAML, with its group_vars) through `ansible-inventory` and maps it onto a cluster spec. */
export function loadInventory(file: string, opts: InventoryOptions = {}): { spec: ClusterSpec; hosts: InventoryHost[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SpecError(file, [`cannot be read: ${(e as Error).message}`]);
  }
  const exe = opts.ansibleInventory ?? 'ansible-inventory';
  let out: string;
  try {
    out = execFileSync(exe, ['-i', file, '--list'], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ANSIBLE_INVENTORY_UNPARSED_FAILED: 'True', ANSIBLE_NOCOLOR: '1' } });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new SpecError(file, [`reading a Kubespray inventory needs Ansible's ansible-inventory (${exe} is not on PATH): install ansible-core (apt install ansible-core, or pip install ansible-core, as for Kubespray)`]);
    const why = (err.stderr ?? err.message).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('[WARNING]')).slice(0, 4).join(' ');
    throw new SpecError(file, [`ansible-inventory cannot parse it: ${why || err.message}`]);
  }
  let list: AnsibleInventoryList;
  try {
    list = JSON.parse(out) as AnsibleInventoryList;
  } catch {
    throw new SpecError(file, ['ansible-inventory printed no JSON inventory']);
  }
  const knownHostsFile = opts.knownHosts ?? resolve(homedir(), '.ssh', 'known_hosts');
  let knownHosts: string;
  try {
    knownHosts = readFileSync(knownHostsFile, 'utf8');
  } catch (e) {
    throw new SpecError(file, [`the host keys are pinned from ${knownHostsFile}, which cannot be read (${(e as Error).message}): pass --known-hosts FILE`]);
  }
  let defaultUser = opts.defaultUser;
  if (!defaultUser) {
    try {
      defaultUser = userInfo().username;
    } catch {
      defaultUser = process.env.USER ?? 'root';
    }
  }
  return specFromInventory(list, { file, text, knownHostsFile, knownHosts, clusterName: opts.clusterName ?? clusterNameOf(file), defaultUser, ...(opts.overlay ? { overlay: opts.overlay } : {}) });
}
