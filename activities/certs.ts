/**
 * Member certificates, made with openssl on the hosts themselves.
 *
 * The member's private key is generated on the member host and never leaves it; only the CSR
 * (public) travels to the CA host, where `ca-key.pem` stays; only the signed certificate
 * (public) travels back. A member's certificate names only that member's own addresses, so
 * adding a member never changes an existing member's certificate.
 *
 * These functions return shell scripts; the activities run them over SSH, the test bed runs
 * the same scripts locally to make its initial cluster.
 */
import { isIP } from 'node:net';
import type { Member } from '../spec/cluster';
import { shq } from './ssh';

/** subjectAltName entries for a member: its own address and URL hosts, plus loopback. */
export function memberSans(member: Pick<Member, 'address' | 'peerURLs' | 'clientURLs'>): string[] {
  const hosts = new Set<string>([member.address, ...[...member.peerURLs, ...member.clientURLs].map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ''))]);
  const sans = [...hosts].map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`));
  for (const s of ['IP:127.0.0.1', 'DNS:localhost']) if (!sans.includes(s)) sans.push(s);
  return sans;
}

/**
 * On the member host: make the private key if there is none (kept if present, so a rerun is a
 * no-op) and print a CSR for it on stdout.
 */
export function keyAndCsrScript(keyFile: string, commonName: string): string {
  const k = shq(keyFile);
  return [
    'set -eu',
    'umask 077',
    `mkdir -p "$(dirname ${k})"`,
    `if [ ! -s ${k} ]; then`,
    `  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${k}.tmp.$$ 2>/dev/null`,
    `  mv -f ${k}.tmp.$$ ${k}`,
    'fi',
    `openssl req -new -key ${k} -subj ${shq(`/CN=${commonName}`)}`,
  ].join('\n');
}

/**
 * On the CA host: sign the CSR read from stdin for server and client use with exactly the
 * given SANs (whatever the CSR asks for is ignored), print the certificate on stdout.
 */
export function signCsrScript(caDir: string, sans: string[], days = 3650): string {
  for (const s of sans) if (!/^(IP|DNS):[A-Za-z0-9.:_-]+$/.test(s)) throw new Error(`subjectAltName entry "${s}" is not valid`);
  const ext = [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth, clientAuth',
    `subjectAltName = ${sans.join(', ')}`,
  ].join('\n');
  const d = shq(caDir);
  return [
    'set -eu',
    'umask 077',
    'work=$(mktemp -d)',
    'trap \'rm -rf "$work"\' EXIT',
    'cat > "$work/req.csr"',
    `printf '%s\\n' ${shq(ext)} > "$work/ext.cnf"`,
    `openssl x509 -req -in "$work/req.csr" -CA ${d}/ca.pem -CAkey ${d}/ca-key.pem -set_serial "0x$(openssl rand -hex 16)" -days ${days} -sha256 -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }`,
    'cat "$work/cert.pem"',
  ].join('\n');
}

/** Writes stdin to `file` atomically (temp file in the same directory, then rename). */
export function atomicWriteScript(file: string, mode = '0644'): string {
  const f = shq(file);
  return [
    'set -eu',
    `mkdir -p "$(dirname ${f})"`,
    `tmp=$(mktemp ${shq(`${file}.XXXXXX`)})`,
    'trap \'rm -f "$tmp"\' EXIT',
    'cat > "$tmp"',
    `chmod ${mode} "$tmp"`,
    `mv -f "$tmp" ${f}`,
    'trap - EXIT',
  ].join('\n');
}

/** A self-signed CA (for test beds; a real cluster brings its own). */
export function makeCaScript(caDir: string, commonName = 'etcd-steward test CA', days = 3650): string {
  const d = shq(caDir);
  return [
    'set -eu',
    'umask 077',
    `mkdir -p ${d}`,
    `if [ ! -s ${d}/ca-key.pem ]; then`,
    `  openssl req -x509 -newkey rsa:2048 -nodes -keyout ${d}/ca-key.pem -out ${d}/ca.pem -days ${days} -sha256 -subj ${shq(`/CN=${commonName}`)} -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null`,
    `  chmod 0644 ${d}/ca.pem`,
    'fi',
  ].join('\n');
}
