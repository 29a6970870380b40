/**
 * Host keys from an OpenSSH known_hosts file, to pin them in a cluster spec: plain and hashed
 * host names (`HashKnownHosts yes`, Debian's default: `|1|salt|HMAC-SHA1(salt, name)`), the
 * `[host]:port` form for ports other than 22, comma-separated names, `@revoked` lines (a revoked
 * key is never pinned) and `@cert-authority` lines (skipped: a pin is one host key, not a CA).
 * Nothing is ever trusted on first use: a host that is not in the file has no key here.
 */
import { createHmac } from 'node:crypto';

export interface KnownHostKey {
  /** The key as a pin: "ssh-ed25519 AAAA…". */
  key: string;
  type: string;
  /** 1-based line in the file. */
  line: number;
}

/** The preference when a host has several keys: what ssh2 (and OpenSSH) ask for first. */
const PREFERENCE = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/** How known_hosts names a host on `port`. */
export function knownHostsName(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  if (pattern.startsWith('!')) return false; // a negated pattern never selects a host
  if (/[*?]/.test(pattern)) {
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    return re.test(name);
  }
  return pattern === name;
}

/**
 * The keys known_hosts holds for `host` on `port`, best first (ed25519, then ECDSA, then RSA),
 * and whether a key of the host is revoked there. Pure: `text` is the file's content.
 */
export function hostKeysFor(text: string, host: string, port = 22): { keys: KnownHostKey[]; revoked: KnownHostKey[] } {
  const name = knownHostsName(host, port);
  const keys: KnownHostKey[] = [];
  const revoked: KnownHostKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    let fields = l.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) [marker, ...fields] = fields;
    const [names, type, blob] = fields;
    if (!names || !type || !blob) return;
    const patterns = names.split(',');
    if (patterns.some((p) => p.startsWith('!') && nameMatches(p.slice(1), name))) return;
    if (!patterns.some((p) => nameMatches(p, name))) return;
    const k = { key: `${type} ${blob}`, type, line: i + 1 };
    if (marker === '@revoked') revoked.push(k);
    else if (marker === undefined) keys.push(k);
  });
  const rank = (t: string) => (PREFERENCE.includes(t) ? PREFERENCE.indexOf(t) : PREFERENCE.length);
  const usable = keys
    .filter((k, i) => !revoked.some((r) => r.key === k.key) && keys.findIndex((x) => x.key === k.key) === i)
    .sort((a, b) => rank(a.type) - rank(b.type));
  return { keys: usable, revoked };
}
