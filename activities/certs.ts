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

/** The extensions of a member certificate: server and client use, exactly these SANs. */
function memberCertExtensions(sans: string[]): string {
  for (const s of sans) if (!/^(IP|DNS):[A-Za-z0-9.:_-]+$/.test(s)) throw new Error(`subjectAltName entry "${s}" is not valid`);
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth, clientAuth',
    `subjectAltName = ${sans.join(', ')}`,
  ].join('\n');
}

/** Script lines that sign "$work/req.csr" into "$work/cert.pem" (a work dir and umask set up by the caller). */
function signLines(caDir: string, sans: string[], days: number): string[] {
  const d = shq(caDir);
  return [
    `printf '%s\\n' ${shq(memberCertExtensions(sans))} > "$work/ext.cnf"`,
    `openssl x509 -req -in "$work/req.csr" -CA ${d}/ca.pem -CAkey ${d}/ca-key.pem -set_serial "0x$(openssl rand -hex 16)" -days ${days} -sha256 -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }`,
  ];
}

/**
 * On the CA host: sign the CSR read from stdin for server and client use with exactly the
 * given SANs (whatever the CSR asks for is ignored), print the certificate on stdout.
 */
export function signCsrScript(caDir: string, sans: string[], days = 3650): string {
  return ['set -eu', 'umask 077', 'work=$(mktemp -d)', 'trap \'rm -rf "$work"\' EXIT', 'cat > "$work/req.csr"', ...signLines(caDir, sans, days), 'cat "$work/cert.pem"'].join('\n');
}

/** Marks the section lines of the certificate scripts' output. */
export const CERT_MARK = '@@etcd-steward-cert@@';

/** Shell lines defining `mark NAME`: a line `CERT_MARK NAME` after a line break of its own, so a section's text is kept byte for byte. */
const markLines = [`M=${shq(CERT_MARK)}`, 'mark() { printf \'\\n%s %s\\n\' "$M" "$1"; }'];

/** The sections of a certificate script's output: the text after each `mark NAME`, byte for byte, by NAME. */
export function certSections(out: string): Map<string, string> {
  const m = new Map<string, string>();
  const parts = out.split(`\n${CERT_MARK} `);
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n');
    const head = nl < 0 ? part : part.slice(0, nl);
    m.set(head, nl < 0 ? '' : part.slice(nl + 1));
  }
  return m;
}

/**
 * On the member host, one round trip: make the private key if there is none (kept if present),
 * say how the certificate in place stands with it (`state`: missing, key-mismatch, san-mismatch,
 * expiring, or candidate: right key, right SANs, not expiring, whether the CA signed it is for
 * the CA host to tell), and print a CSR for the key, the certificate in place and the CA
 * certificate in place (each section empty when there is none).
 */
export function memberCertStateScript(o: { key: string; cert: string; caCert: string; commonName: string; sans: string[] }): string {
  const [k, c, a] = [shq(o.key), shq(o.cert), shq(o.caCert)];
  const sanLine = o.sans.map((s) => (s.startsWith('IP:') ? `IPAddress:${s.slice(3)}` : s)).join(',');
  return [
    'set -u',
    'umask 077',
    ...markLines,
    `mkdir -p "$(dirname ${k})" || exit 1`,
    `if [ ! -s ${k} ]; then`,
    `  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${k}.tmp.$$ 2>/dev/null && mv -f ${k}.tmp.$$ ${k} || { rm -f ${k}.tmp.$$; echo "cannot make the key ${o.key}" >&2; exit 1; }`,
    'fi',
    `if [ ! -s ${c} ]; then state=missing`,
    `elif [ "$(openssl x509 -noout -pubkey -in ${c} 2>/dev/null | sha256sum)" != "$(openssl pkey -pubout -in ${k} 2>/dev/null | sha256sum)" ]; then state=key-mismatch`,
    `elif [ "$(openssl x509 -noout -ext subjectAltName -in ${c} 2>/dev/null | tail -n +2 | tr -d ' \\n')" != ${shq(sanLine)} ]; then state=san-mismatch`,
    `elif ! openssl x509 -checkend 86400 -noout -in ${c} >/dev/null 2>&1; then state=expiring`,
    'else state=candidate',
    'fi',
    'mark "state $state"',
    'mark csr',
    `openssl req -new -key ${k} -subj ${shq(`/CN=${o.commonName}`)} || exit 1`,
    'mark cert',
    `[ "$state" = missing ] || cat ${c} || exit 1`,
    'mark ca',
    `cat ${a} 2>/dev/null`,
    'mark end',
  ].join('\n');
}

/**
 * On the CA host, one round trip: print the CA certificate; when `current` (the member's
 * certificate in place, PEM) is given and the CA signed it, print `kept`; otherwise sign the CSR
 * read from stdin (as signCsrScript) and print the new certificate.
 */
export function signOrKeepScript(caDir: string, sans: string[], current: string | null, days = 3650): string {
  const d = shq(caDir);
  return [
    'set -eu',
    'umask 077',
    ...markLines,
    'work=$(mktemp -d)',
    'trap \'rm -rf "$work"\' EXIT',
    'cat > "$work/req.csr"',
    'mark ca',
    `cat ${d}/ca.pem`,
    ...(current === null
      ? []
      : [`printf '%s' ${shq(current)} > "$work/current.pem"`, `if openssl verify -CAfile ${d}/ca.pem "$work/current.pem" >/dev/null 2>&1; then mark kept; mark end; exit 0; fi`]),
    ...signLines(caDir, sans, days),
    'mark issued',
    'cat "$work/cert.pem"',
    'mark end',
  ].join('\n');
}

/**
 * Writes stdin to `file` atomically (temp file in the same directory, then rename). With
 * `onlyIfChanged`, a file whose content is already that is left alone, and the script prints
 * `changed` or `unchanged`.
 */
export function atomicWriteScript(file: string, mode = '0644', opts: { onlyIfChanged?: boolean } = {}): string {
  const f = shq(file);
  return [
    'set -eu',
    `mkdir -p "$(dirname ${f})"`,
    `tmp=$(mktemp ${shq(`${file}.XXXXXX`)})`,
    'trap \'rm -f "$tmp"\' EXIT',
    'cat > "$tmp"',
    ...(opts.onlyIfChanged ? [`if [ -f ${f} ] && [ "$(sha256sum < "$tmp")" = "$(sha256sum < ${f})" ]; then echo unchanged; exit 0; fi`] : []),
    `chmod ${mode} "$tmp"`,
    `mv -f "$tmp" ${f}`,
    'trap - EXIT',
    ...(opts.onlyIfChanged ? ['echo changed'] : []),
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
