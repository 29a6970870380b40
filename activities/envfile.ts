/**
 * The member's environment file (Kubespray's /etc/etcd.env): `ETCD_*` variables that etcd reads
 * at start. Rendering is pure; writing it to a host is an activity.
 *
 * ETCD_INITIAL_CLUSTER and ETCD_INITIAL_CLUSTER_STATE are read only when a member bootstraps an
 * empty data dir, so rewriting them on a running member is harmless and needs no restart.
 */
import { type ClusterSpec, type Member, memberPaths } from '../spec/cluster';
import { shq } from './ssh';

/** `name=peerURL,...` for ETCD_INITIAL_CLUSTER, in the given order. */
export function initialClusterValue(members: Pick<Member, 'name' | 'peerURLs'>[]): string {
  return members.flatMap((m) => m.peerURLs.map((u) => `${m.name}=${u}`)).join(',');
}

/** The ETCD_* variables of one member, Kubespray's set (TLS on peer and client URLs, client-cert auth on both). */
export function memberEnv(
  spec: Pick<ClusterSpec, 'layout' | 'token'>,
  member: Member,
  initialCluster: Pick<Member, 'name' | 'peerURLs'>[],
  state: 'new' | 'existing',
  extra: Record<string, string> = {},
): Record<string, string> {
  const p = memberPaths(spec, member);
  return {
    ETCD_DATA_DIR: p.dataDir,
    ETCD_NAME: member.name,
    ETCD_ADVERTISE_CLIENT_URLS: member.clientURLs.join(','),
    ETCD_INITIAL_ADVERTISE_PEER_URLS: member.peerURLs.join(','),
    ETCD_INITIAL_CLUSTER_STATE: state,
    ETCD_INITIAL_CLUSTER_TOKEN: spec.token,
    ETCD_INITIAL_CLUSTER: initialClusterValue(initialCluster),
    ETCD_LISTEN_CLIENT_URLS: member.clientURLs.join(','),
    ETCD_LISTEN_PEER_URLS: member.peerURLs.join(','),
    ETCD_METRICS: 'basic',
    ETCD_TRUSTED_CA_FILE: p.caCert,
    ETCD_CERT_FILE: p.cert,
    ETCD_KEY_FILE: p.key,
    ETCD_CLIENT_CERT_AUTH: 'true',
    ETCD_PEER_TRUSTED_CA_FILE: p.caCert,
    ETCD_PEER_CERT_FILE: p.cert,
    ETCD_PEER_KEY_FILE: p.key,
    ETCD_PEER_CLIENT_CERT_AUTH: 'true',
    ...extra,
  };
}

/** `KEY=value` lines. Values are written bare, as Kubespray and systemd's EnvironmentFile expect; none may hold a newline. */
export function renderEnvFile(vars: Record<string, string>, header = '# Managed by etcd-steward; ETCD_INITIAL_CLUSTER* are read only when the data dir is empty.'): string {
  const lines = [header];
  for (const [k, v] of Object.entries(vars)) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`environment variable name "${k}" is not valid`);
    if (/[\n\r]/.test(v)) throw new Error(`value of ${k} holds a line break`);
    lines.push(`${k}=${v}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses `KEY=value` lines (comments and blank lines ignored; optional surrounding quotes removed). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) v = v.slice(1, -1);
    out[m[1]!] = v;
  }
  return out;
}

/**
 * Sets one variable in an env file's text, keeping every other line as it is: the line
 * `KEY=...` is replaced (all of them, if repeated), or appended when missing.
 */
export function setEnvVar(text: string, key: string, value: string): string {
  if (/[\n\r]/.test(value)) throw new Error(`value of ${key} holds a line break`);
  const re = new RegExp(`^(\\s*(?:export\\s+)?)${key}=.*$`);
  let found = false;
  const lines = text.split('\n').map((line) => {
    const m = re.exec(line);
    if (!m) return line;
    found = true;
    return `${m[1]}${key}=${value}`;
  });
  if (found) return lines.join('\n');
  const body = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return `${body}${key}=${value}\n`;
}

/** Ends the output of setEnvVarScript: what it did to the file. */
export const ENV_SET_MARK = '@@etcd-steward-env@@';

/**
 * setEnvVar done on the host, in one round trip: prints the file as it was, then a line
 * `ENV_SET_MARK changed|unchanged`; the file is replaced atomically (temp file + rename, `mode`)
 * only when the text differs. Exits 2 (writing nothing) when the file cannot be read. Same
 * result as setEnvVar on the same text (GNU sed keeps a missing final newline, as it does).
 */
export function setEnvVarScript(file: string, key: string, value: string, mode = '0640'): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`environment variable name "${key}" is not valid`);
  if (/[\n\r]/.test(value)) throw new Error(`value of ${key} holds a line break`);
  const f = shq(file);
  const pattern = `^[[:space:]]*(export[[:space:]]+)?${key}=`;
  const replacement = `${key}=${value}`.replace(/[\\&|]/g, (c) => `\\${c}`);
  return [
    'set -eu',
    `[ -r ${f} ] || { echo ${shq(`${file} cannot be read`)} >&2; exit 2; }`,
    `tmp=$(mktemp ${shq(`${file}.XXXXXX`)})`,
    'trap \'rm -f "$tmp"\' EXIT',
    `if grep -Eq ${shq(pattern)} ${f}; then`,
    `  sed -E ${shq(`s|^([[:space:]]*(export[[:space:]]+)?)${key}=.*$|\\1${replacement}|`)} ${f} > "$tmp"`,
    'else',
    `  { cat ${f}; if [ -s ${f} ] && [ -n "$(tail -c1 ${f})" ]; then echo; fi; printf '%s\\n' ${shq(`${key}=${value}`)}; } > "$tmp"`,
    'fi',
    `cat ${f}`,
    `if cmp -s "$tmp" ${f}; then printf '\\n%s unchanged\\n' ${shq(ENV_SET_MARK)}; exit 0; fi`,
    `chmod ${mode} "$tmp"`,
    `mv -f "$tmp" ${f}`,
    'trap - EXIT',
    `printf '\\n%s changed\\n' ${shq(ENV_SET_MARK)}`,
  ].join('\n');
}

/** What setEnvVarScript printed: the file's text before, and whether it was rewritten. */
export function parseSetEnvVarOutput(out: string): { before: string; changed: boolean } {
  const at = out.lastIndexOf(`\n${ENV_SET_MARK} `);
  const verdict = at < 0 ? '' : out.slice(at + ENV_SET_MARK.length + 2).trim();
  if (verdict !== 'changed' && verdict !== 'unchanged') throw new Error(`unexpected output from the env file update: ${JSON.stringify(out.slice(-200))}`);
  return { before: out.slice(0, at), changed: verdict === 'changed' };
}

/** Removes every `KEY=...` line (with or without `export`) from an env file's text, keeping every other line as it is. */
export function unsetEnvVar(text: string, key: string): string {
  const re = new RegExp(`^\\s*(?:export\\s+)?${key}=`);
  const lines = text.split('\n');
  const kept = lines.filter((line) => !re.test(line));
  return kept.length === lines.length ? text : kept.join('\n');
}

/**
 * An env file's text with `set` variables set and `unset` variables removed, other lines
 * untouched; `changed` names the variables whose value (as parsed) differs. A variable that
 * already has its value is left as written (quotes and all).
 */
export function applyEnvChange(text: string, change: { set: Record<string, string>; unset: string[] }): { text: string; changed: string[] } {
  const cur = parseEnvFile(text);
  let next = text;
  const changed: string[] = [];
  for (const [k, v] of Object.entries(change.set)) {
    if (cur[k] === v) continue;
    next = setEnvVar(next, k, v);
    changed.push(k);
  }
  for (const k of change.unset) {
    if (!Object.hasOwn(cur, k)) continue;
    next = unsetEnvVar(next, k);
    changed.push(k);
  }
  return { text: next, changed };
}
