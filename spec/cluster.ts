/**
 * The cluster spec: how an etcd cluster is described once, validated with clear errors.
 *
 * Shared by the client (validates input), the workflows (types only: `import type`) and the
 * activities. It holds no secrets: SSH identities and etcd client certificates are worker
 * configuration (see worker/config.ts). Host keys are public and are pinned here.
 *
 * Paths and service commands are templates: `{name}` is replaced with the member's name, so
 * the Kubespray layout (`member-{name}.pem`) and test beds that keep each host under its own
 * directory are described the same way.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const memberName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit');

const hostOrIp = z
  .string()
  .min(1)
  .refine((s) => isIP(s) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(s), {
    message: 'must be an IP address or a DNS name',
  });

const httpsUrl = z
  .string()
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'https:' || u.protocol === 'http:') && u.port !== '' && (u.pathname === '/' || u.pathname === '');
    } catch {
      return false;
    }
  }, 'must be a URL like https://192.0.2.1:2380 (scheme, host and port, no path)');

/**
 * A pinned SSH host key: either an OpenSSH public key line (`ssh-ed25519 AAAA...`, as in
 * known_hosts or /etc/ssh/ssh_host_ed25519_key.pub) or its fingerprint (`SHA256:...`, as
 * printed by `ssh-keygen -lf`).
 */
export const hostKeyPin = z
  .string()
  .trim()
  .refine(
    (s) => /^SHA256:[A-Za-z0-9+/]{43}=?$/.test(s) || /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$/.test(s),
    'must be an OpenSSH public key ("ssh-ed25519 AAAA...") or a fingerprint ("SHA256:..."); get it with `ssh-keyscan -t ed25519 HOST` or `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host',
  );

const sshUser = z.string().regex(/^[^\s@:]+$/, 'must be a login name (no spaces, "@" or ":")');

/** A bastion on the way to a host (OpenSSH's ProxyJump), pinned like any host. */
export const jumpHostSchema = z.strictObject({
  host: hostOrIp,
  port: z.number().int().min(1).max(65535).default(22),
  /** Default: the user the host itself is logged into as. */
  user: sshUser.optional(),
  hostKey: hostKeyPin,
});

/**
 * How commands reach a host: `become: sudo` runs them as root through `sudo -n` for an SSH user
 * that is not root (the sudoers entry it needs: activities/ssh-pool.ts sudoersLine); `via` lists
 * the jump hosts, outermost first.
 */
const accessFields = {
  user: sshUser.optional(),
  become: z.enum(['none', 'sudo']).optional(),
  via: z.array(jumpHostSchema).max(4, 'at most 4 jump hosts').optional(),
};

export const sshEndpointSchema = z.strictObject({
  /** Where to reach the host's sshd; defaults to the member's address. */
  host: hostOrIp.optional(),
  port: z.number().int().min(1).max(65535).default(22),
  /** Default: the cluster's `ssh.user`, else root. */
  ...accessFields,
  hostKey: hostKeyPin,
});

/** The cluster-wide defaults of every member's `ssh` (a member's own setting wins; `via: []` means direct). */
export const sshDefaultsSchema = z.strictObject(accessFields);
export type SshDefaults = z.output<typeof sshDefaultsSchema>;

export const memberSchema = z.strictObject({
  name: memberName,
  /** The member's own address: its certificate's SANs and its default URLs use it. */
  address: hostOrIp,
  peerURLs: z.array(httpsUrl).min(1).optional(),
  clientURLs: z.array(httpsUrl).min(1).optional(),
  ssh: sshEndpointSchema,
  /**
   * The name in the member's certificate file names (`member-<certName>.pem`,
   * `member-<certName>-key.pem`): Kubespray names them after the inventory hostname (node1),
   * not the etcd member name (etcd1). Default: the member's name.
   */
  certName: memberName.optional(),
});

export const layoutSchema = z.strictObject({
  envFile: z.string().startsWith('/').default('/etc/etcd.env'),
  certDir: z.string().startsWith('/').default('/etc/ssl/etcd/ssl'),
  dataDir: z.string().startsWith('/').default('/var/lib/etcd'),
  etcdBinary: z.string().startsWith('/').default('/usr/local/bin/etcd'),
});

export const serviceSchema = z.strictObject({
  start: z.string().min(1).default('systemctl start etcd'),
  stop: z.string().min(1).default('systemctl stop etcd'),
  restart: z.string().min(1).default('systemctl restart etcd'),
  /** Exit status 0 when the service runs. */
  isActive: z.string().min(1).default('systemctl is-active --quiet etcd'),
  /**
   * Prints the pid of etcd's main process, or `0` (or nothing) when it does not run. A restart
   * is verified by the pid changing, and the new process's environment (/proc/<pid>/environ)
   * shows whether an env-file change took effect.
   */
  mainPid: z.string().min(1).default('systemctl show --property MainPID --value etcd'),
  /** Prints the last lines of etcd's log; shown when a start fails. */
  logs: z.string().min(1).default('journalctl --unit etcd --lines 20 --no-pager'),
});

export const clusterSpecSchema = z
  .strictObject({
    /** The cluster's name; the workflow id of its operations is derived from it (one at a time). */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, ".", "_" or "-"'),
    /** ETCD_INITIAL_CLUSTER_TOKEN; Kubespray's default. */
    token: z.string().min(1).default('k8s_etcd'),
    /** Defaults for every member's ssh (user, become, via): a fleet behind one bastion says it once. */
    ssh: sshDefaultsSchema.optional(),
    members: z.array(memberSchema).min(1, 'must list at least one member'),
    layout: layoutSchema.default(layoutSchema.parse({})),
    service: serviceSchema.default(serviceSchema.parse({})),
    /** Where the CA lives: ca.pem and ca-key.pem in `dir` on member `host` (Kubespray: the first etcd host). */
    ca: z
      .strictObject({
        host: memberName.optional(),
        dir: z.string().startsWith('/').optional(),
      })
      .default({}),
  })
  .superRefine((spec, ctx) => checkUnique(spec.members, ctx, ['members']))
  .superRefine((spec, ctx) => {
    if (spec.ca.host !== undefined && !spec.members.some((m) => m.name === spec.ca.host)) {
      ctx.addIssue({ code: 'custom', path: ['ca', 'host'], message: `names no member of the cluster ("${spec.ca.host}"); it must be one of: ${spec.members.map((m) => m.name).join(', ')}` });
    }
  });

export type MemberInput = z.input<typeof memberSchema>;
export type ClusterSpecInput = z.input<typeof clusterSpecSchema>;
export type Layout = z.output<typeof layoutSchema>;
export type ServiceCommands = z.output<typeof serviceSchema>;

/** A member with every default filled in. */
export interface Member {
  name: string;
  address: string;
  peerURLs: string[];
  clientURLs: string[];
  ssh: MemberSsh;
  /** Set when the certificate files are named after something else than the member's name (see memberSchema). */
  certName?: string;
}

/** A member's SSH access with the cluster's defaults applied; `become` and `via` are left out when not used. */
export interface MemberSsh {
  host: string;
  port: number;
  user: string;
  hostKey: string;
  /** `sudo`: commands run as root through `sudo -n`; absent or `none`: as `user`. */
  become?: 'none' | 'sudo';
  /** Jump hosts, outermost first; absent or empty: direct. */
  via?: { host: string; port: number; user: string; hostKey: string }[];
}

/** A validated cluster spec with every default filled in: what workflows and activities receive. */
export interface ClusterSpec {
  name: string;
  token: string;
  /** The cluster-wide ssh defaults as given (already applied to `members`; kept for members added later). */
  ssh?: SshDefaults;
  members: Member[];
  layout: Layout;
  service: ServiceCommands;
  ca: { host: string; dir: string };
}

function checkUnique(members: { name: string; address: string; peerURLs?: string[] | undefined; clientURLs?: string[] | undefined }[], ctx: z.RefinementCtx, path: (string | number)[]): void {
  const seen = new Map<string, number>();
  members.forEach((m, i) => {
    const keys = [`name ${m.name}`, ...(m.peerURLs ?? defaultPeerURLs(m.address)).map((u) => `peer URL ${u}`), ...(m.clientURLs ?? defaultClientURLs(m.address)).map((u) => `client URL ${u}`)];
    for (const k of keys) {
      const j = seen.get(k);
      if (j !== undefined) {
        ctx.addIssue({ code: 'custom', path: [...path, i], message: `${k} is also used by ${path.join('.')}[${j}]; every member needs its own` });
      } else {
        seen.set(k, i);
      }
    }
  });
}

function urlHost(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}
export function defaultPeerURLs(address: string): string[] {
  return [`https://${urlHost(address)}:2380`];
}
export function defaultClientURLs(address: string): string[] {
  return [`https://${urlHost(address)}:2379`];
}

/**
 * A member's ssh with the cluster's defaults applied (its own settings win). `become` and `via`
 * are left out when neither the member nor the cluster sets them, and written out (`none`, `[]`
 * included) when the cluster has a default: a normalized spec must parse to itself, and a member
 * that opted out of the cluster's bastion must not be put behind it again.
 */
export function memberSsh(ssh: z.output<typeof sshEndpointSchema>, address: string, defaults: SshDefaults = {}): MemberSsh {
  const user = ssh.user ?? defaults.user ?? 'root';
  const become = ssh.become ?? defaults.become;
  const via = ssh.via ?? defaults.via;
  const explicit = { become: defaults.become !== undefined, via: defaults.via !== undefined };
  return {
    host: ssh.host ?? address,
    port: ssh.port,
    user,
    hostKey: ssh.hostKey,
    ...(become === 'sudo' || (become !== undefined && explicit.become) ? { become } : {}),
    ...((via !== undefined && via.length) || (via !== undefined && explicit.via) ? { via: via.map((j) => ({ host: j.host, port: j.port, user: j.user ?? user, hostKey: j.hostKey })) } : {}),
  };
}

export function normalizeMember(m: z.output<typeof memberSchema>, defaults?: SshDefaults): Member {
  return {
    name: m.name,
    address: m.address,
    peerURLs: m.peerURLs ?? defaultPeerURLs(m.address),
    clientURLs: m.clientURLs ?? defaultClientURLs(m.address),
    ssh: memberSsh(m.ssh, m.address, defaults),
    ...(m.certName !== undefined && m.certName !== m.name ? { certName: m.certName } : {}),
  };
}

/** Raised for input that does not validate; `issues` are "path: message" lines. */
export class SpecError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`${source} is not valid:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'SpecError';
  }
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
    return `${path || '(top level)'}: ${issue.message}`;
  });
}

/** Validates a parsed cluster spec and fills in defaults. Throws SpecError naming each bad field. */
export function parseClusterSpec(input: unknown, source = 'cluster spec'): ClusterSpec {
  const result = clusterSpecSchema.safeParse(input);
  if (!result.success) throw new SpecError(source, formatIssues(result.error));
  const s = result.data;
  const members = s.members.map((m) => normalizeMember(m, s.ssh));
  const caHost = s.ca.host ?? members[0]!.name;
  return { name: s.name, token: s.token, ...(s.ssh ? { ssh: s.ssh } : {}), members, layout: s.layout, service: s.service, ca: { host: caHost, dir: s.ca.dir ?? s.layout.certDir } };
}

/** Reads a cluster spec from a JSON or YAML file. */
export function loadClusterSpec(file: string): ClusterSpec {
  return parseClusterSpec(readDocument(file), file);
}

/** A JSON (`.json`) or YAML file's content; SpecError naming the file when it cannot be read or parsed. */
export function readDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SpecError(file, [`cannot be read: ${(e as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new SpecError(file, [`is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`]);
  }
  return doc;
}

/** Replaces `{name}` in a layout path or service command template. */
export function expand(template: string, name: string): string {
  return template.replaceAll('{name}', name);
}

/**
 * The files of one member under the spec's layout. Given a member (not only its name), its
 * certificate files follow its `certName`; given a name, the member is looked up in the spec
 * when the spec lists members.
 */
export function memberPaths(spec: Pick<ClusterSpec, 'layout'> & { members?: Pick<Member, 'name' | 'certName'>[] }, member: string | Pick<Member, 'name' | 'certName'>) {
  const name = typeof member === 'string' ? member : member.name;
  const certName = (typeof member === 'string' ? spec.members?.find((m) => m.name === member)?.certName : member.certName) ?? name;
  const certDir = expand(spec.layout.certDir, name);
  return {
    envFile: expand(spec.layout.envFile, name),
    certDir,
    caCert: `${certDir}/ca.pem`,
    cert: `${certDir}/member-${certName}.pem`,
    key: `${certDir}/member-${certName}-key.pem`,
    dataDir: expand(spec.layout.dataDir, name),
    etcdBinary: expand(spec.layout.etcdBinary, name),
  };
}

export function findMember(spec: ClusterSpec, name: string): Member {
  const m = spec.members.find((x) => x.name === name);
  if (!m) throw new Error(`no member named "${name}" in cluster ${spec.name}`);
  return m;
}
