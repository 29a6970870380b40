/**
 * Activities on member hosts, over SSH: certificates, the env file, the service, the data dir.
 * Each one checks the state first and changes only what differs, so running it twice ends in
 * the same state as running it once.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import { type ClusterSpec, type Member, expand, findMember, memberPaths } from '../spec/cluster';
import type { RetirePolicy } from '../spec/operations';
import { atomicWriteScript, certSections, memberCertStateScript, memberSans, signOrKeepScript } from './certs';
import { memberEnv, parseEnvFile, parseSetEnvVarOutput, renderEnvFile, initialClusterValue, setEnvVarScript } from './envfile';
import { type ExecResult, type SshIdentity, type SshTarget, SshError, sshExec, sshRun, shq } from './ssh';

export function sshTarget(m: Member): SshTarget {
  return { name: m.name, host: m.ssh.host, port: m.ssh.port, user: m.ssh.user, hostKey: m.ssh.hostKey, ...(m.ssh.become === 'sudo' ? { become: 'sudo' as const } : {}), ...(m.ssh.via?.length ? { via: m.ssh.via } : {}) };
}

/** SSH errors that no retry can fix become non-retryable activity failures; the rest stay retryable. */
export function classifySsh<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    if (e instanceof SshError && (e.kind === 'host-key-mismatch' || e.kind === 'auth' || e.kind === 'sudo')) {
      throw ApplicationFailure.nonRetryable(e.message, e.kind === 'auth' ? FailureType.SshAuth : e.kind === 'sudo' ? FailureType.SshSudo : FailureType.SshHostKeyMismatch);
    }
    throw e;
  });
}

/** The SAN line as `openssl x509 -ext subjectAltName` prints it, without spaces. */
function opensslSanLine(sans: string[]): string {
  return sans.map((s) => (s.startsWith('IP:') ? `IPAddress:${s.slice(3)}` : s)).join(',');
}

/** Prints "valid" when cert exists, matches key, is signed by ca, names exactly `sans` and is not about to expire; else the reason. */
export function checkCertScript(cert: string, key: string, ca: string, sans: string[]): string {
  const [c, k, a] = [shq(cert), shq(key), shq(ca)];
  return [
    'set -u',
    `[ -s ${c} ] && [ -s ${k} ] || { echo missing; exit 0; }`,
    `[ "$(openssl x509 -noout -pubkey -in ${c} 2>/dev/null | sha256sum)" = "$(openssl pkey -pubout -in ${k} 2>/dev/null | sha256sum)" ] || { echo key-mismatch; exit 0; }`,
    `openssl verify -CAfile ${a} ${c} >/dev/null 2>&1 || { echo not-signed-by-ca; exit 0; }`,
    `[ "$(openssl x509 -noout -ext subjectAltName -in ${c} 2>/dev/null | tail -n +2 | tr -d ' \\n')" = ${shq(opensslSanLine(sans))} ] || { echo san-mismatch; exit 0; }`,
    `openssl x509 -checkend 86400 -noout -in ${c} >/dev/null 2>&1 || { echo expiring; exit 0; }`,
    'echo valid',
  ].join('\n');
}

/**
 * Writes each given file atomically (a temp file in its directory, then rename), mode 0644,
 * then prints checkCertScript's verdict on the certificate: the last step of issueCert.
 */
export function installCertScript(o: { cert: string; key: string; caCert: string; sans: string[]; files: { path: string; text: string }[] }): string {
  return [
    'set -u',
    'put() {',
    '  local tmp',
    '  mkdir -p "$(dirname "$1")" || return 1',
    '  tmp=$(mktemp "$1.XXXXXX") || return 1',
    '  if printf \'%s\' "$2" > "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$1"; then return 0; fi',
    '  rm -f "$tmp"; return 1',
    '}',
    ...o.files.map((f) => `put ${shq(f.path)} ${shq(f.text)} || { echo ${shq(`cannot write ${f.path}`)} >&2; exit 1; }`),
    checkCertScript(o.cert, o.key, o.caCert, o.sans),
  ].join('\n');
}


/** Marks the line a host script prints once the service command it ran succeeded. */
const STEP_MARK = '@@etcd-steward-step@@';

/** The last lines of what a command printed (stderr first), without the scripts' own marker lines. */
function tail(r: ExecResult, lines: number, sep = '\n'): string {
  const strip = (t: string) => t.split('\n').filter((l) => !l.startsWith(STEP_MARK)).join('\n').trim();
  return (strip(r.stderr) || strip(r.stdout)).split('\n').slice(-lines).join(sep);
}

export interface CertResult {
  member: string;
  cert: string;
  sans: string[];
  /** SHA-256 of the certificate (public). */
  fingerprint: string;
  /** false when a valid certificate for this key and these SANs was already there. */
  issued: boolean;
}

export interface MemberRef {
  spec: ClusterSpec;
  member: Member;
}

export function hostActivities(ssh: SshIdentity) {
  const run = (m: Member, cmd: string, stdin?: string) => classifySsh(sshRun(sshTarget(m), ssh, cmd, stdin === undefined ? {} : { stdin }));

  return {
    /**
     * Key + CSR made on the member host (the key never leaves it), signed on the CA host (the
     * CA key never leaves it), certificate and ca.pem copied to the member. Only the new member's
     * files are touched. A valid certificate already in place is kept.
     */
    async issueCert({ spec, member }: MemberRef): Promise<CertResult> {
      const p = memberPaths(spec, member);
      const caMember = findMember(spec, spec.ca.host);
      const caDir = expand(spec.ca.dir, caMember.name);
      const sans = memberSans(member);

      // 1. On the member: the key (made if missing), a CSR for it, and the certificate and CA certificate in place.
      const mine = certSections(await run(member, memberCertStateScript({ key: p.key, cert: p.cert, caCert: p.caCert, commonName: `etcd-${member.name}`, sans })));
      const state = [...mine.keys()].find((k) => k.startsWith('state '))?.slice('state '.length);
      const csr = mine.get('csr');
      if (!state || csr === undefined || !mine.has('end')) throw new Error(`${member.name}: unexpected output from the certificate check`);
      const current = state === 'candidate' ? mine.get('cert')! : null;

      // 2. On the CA host: the CA certificate, and whether the CA signed the certificate in place; if not, a new one.
      const ca = certSections(await run(caMember, signOrKeepScript(caDir, sans, current), csr));
      const caPem = ca.get('ca');
      const issuedPem = ca.get('issued');
      if (caPem === undefined || !ca.has('end') || (issuedPem === undefined && !ca.has('kept'))) throw new Error(`${caMember.name}: unexpected output from the signing step`);
      const issued = issuedPem !== undefined;
      const pem = issuedPem ?? current!;

      // 3. On the member, only when something differs: the certificate and ca.pem written, then checked.
      const files = [...(mine.get('ca') === caPem ? [] : [{ path: p.caCert, text: caPem }]), ...(issued ? [{ path: p.cert, text: pem }] : [])];
      if (files.length > 0) {
        const after = (await run(member, installCertScript({ cert: p.cert, key: p.key, caCert: p.caCert, sans, files }))).trim();
        if (after !== 'valid') throw new Error(`${member.name}: the certificate ${issued ? 'just issued' : 'in place'} does not check out (${after})`);
      }
      const fingerprint = createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
      return { member: member.name, cert: p.cert, sans, fingerprint, issued };
    },

    /**
     * Makes every member's env file tell the truth about `members` (the membership in order):
     * existing members get ETCD_INITIAL_CLUSTER rewritten in place (nothing else changes, and
     * nothing is restarted: etcd reads it only when bootstrapping); `joining`, if given, gets a
     * whole env file (state "existing") rendered from an existing member's, so the cluster's own
     * settings (heartbeat, snapshot count, ...) carry over. Returns the members whose file changed.
     */
    async syncConfig({ spec, members, joining }: { spec: ClusterSpec; members: Member[]; joining?: string }): Promise<{ changed: string[] }> {
      const value = initialClusterValue(members);
      const existing = members.filter((m) => m.name !== joining);
      const joiner = joining === undefined ? undefined : members.find((x) => x.name === joining);
      if (joining !== undefined && !joiner) throw ApplicationFailure.nonRetryable(`joining member ${joining} is not in the target membership`, FailureType.InvalidInput);
      if (joiner && !existing[0]) throw ApplicationFailure.nonRetryable('there is no existing member to take settings from', FailureType.InvalidInput);

      // One round trip per existing member, all at once: ETCD_INITIAL_CLUSTER set in place if it differs.
      const file = (m: Member) => memberPaths(spec, m).envFile;
      const updates = existing.map(async (m) => {
        const r = await classifySsh(sshExec(sshTarget(m), ssh, setEnvVarScript(file(m), 'ETCD_INITIAL_CLUSTER', value, '0640')));
        if (r.code === 2) throw ApplicationFailure.nonRetryable(`${m.name}: ${file(m)} cannot be read (${r.stderr.trim()}); every existing member needs its env file`, FailureType.MissingEnvFile);
        if (r.code !== 0) throw new Error(`${m.name}: updating ${file(m)} failed (exit ${r.code ?? r.signal}): ${tail(r, 5)}`);
        return parseSetEnvVarOutput(r.stdout);
      });
      // The joining member's whole file, rendered from the first existing member's as it was, written only if it differs.
      const joinerWrite = joiner
        ? updates[0]!.then(async ({ before }) => {
            const template = existing[0]!;
            const text = renderEnvFile(memberEnv(spec, joiner, members, 'existing', carriedSettings(parseEnvFile(before), template, joiner)));
            const out = await run(joiner, atomicWriteScript(file(joiner), '0640', { onlyIfChanged: true }), text);
            return out.trim() === 'changed';
          })
        : Promise.resolve(false);
      const [done, joined] = await Promise.allSettled([Promise.all(updates), joinerWrite]);
      if (done.status === 'rejected') throw done.reason;
      if (joined.status === 'rejected') throw joined.reason;
      const changed = existing.filter((_, i) => done.value[i]!.changed).map((m) => m.name);
      if (joined.value) changed.push(joiner!.name);
      return { changed };
    },

    /** The member's service command `start` (a no-op when running), then `isActive` must hold: one round trip. */
    async startMember({ spec, member }: MemberRef): Promise<void> {
      const start = expand(spec.service.start, member.name);
      const script = [`{ ${start}`, '} || exit $?', `echo ${STEP_MARK} started`, `{ ${expand(spec.service.isActive, member.name)}`, `} >/dev/null 2>&1 || { echo ${STEP_MARK} not-active; exit 3; }`].join('\n');
      const r = await classifySsh(sshExec(sshTarget(member), ssh, script));
      if (r.code === 0) return;
      if (!r.stdout.includes(`${STEP_MARK} started`)) throw new Error(`${member.name}: \`${start}\` failed: ${tail(r, 6, ' | ')}`);
      throw new Error(`${member.name}: the etcd service is not active right after start`);
    },

    /** The member's service command `stop` (a no-op when stopped). */
    async stopMember({ spec, member }: MemberRef): Promise<void> {
      await run(member, expand(spec.service.stop, member.name));
    },

    /**
     * After a member was removed (scale-in): its service stopped, its env file moved aside (so
     * the service cannot start it again), and its data dir moved aside as
     * `<dataDir>.removed-<stamp>` (`keep`) or emptied and deleted (`wipe`). `stamp` comes from the
     * workflow, so a retry finds its own earlier work and does nothing more. A data dir that is
     * a mount point cannot be moved: the error says so and `wipe` is the way to empty it.
     */
    async retireMember({ spec, member, retire, stamp }: MemberRef & { retire: RetirePolicy; stamp: string }): Promise<{ dataDir: string; envFile: string | null }> {
      const p = memberPaths(spec, member);
      if (p.dataDir.split('/').filter(Boolean).length < 2) throw ApplicationFailure.nonRetryable(`refusing to retire data dir "${p.dataDir}": it is too close to /`, FailureType.InvalidInput);
      if (!/^[0-9A-Za-z-]+$/.test(stamp)) throw ApplicationFailure.nonRetryable(`bad stamp "${stamp}"`, FailureType.InvalidInput);
      const stop = expand(spec.service.stop, member.name);
      const [d, aside, env, envAside] = [shq(p.dataDir), shq(`${p.dataDir}.removed-${stamp}`), shq(p.envFile), shq(`${p.envFile}.removed-${stamp}`)];
      const script = [
        `{ ${stop}`,
        '} || exit $?',
        `echo ${STEP_MARK} stopped`,
        'set -e',
        retire === 'keep'
          ? `if [ -e ${aside} ]; then echo ${STEP_MARK} data ${aside}; elif [ -d ${d} ]; then mv -T -- ${d} ${aside}; echo ${STEP_MARK} data ${aside}; else echo ${STEP_MARK} data none; fi`
          : `if [ -d ${d} ]; then find ${d} -mindepth 1 -delete; rmdir ${d} 2>/dev/null || true; fi; echo ${STEP_MARK} data wiped`,
        `if [ -e ${env} ]; then mv -f -- ${env} ${envAside}; fi`,
        `if [ -e ${envAside} ]; then echo ${STEP_MARK} env ${envAside}; else echo ${STEP_MARK} env none; fi`,
      ].join('\n');
      const r = await classifySsh(sshExec(sshTarget(member), ssh, script));
      if (r.code !== 0) {
        if (!r.stdout.includes(`${STEP_MARK} stopped`)) throw new Error(`${member.name}: \`${stop}\` exited ${r.code ?? r.signal}: ${tail(r, 5)}`);
        throw new Error(`${member.name}: ${retire === 'keep' ? `moving ${p.dataDir} aside` : `wiping ${p.dataDir}`} or moving ${p.envFile} aside failed (exit ${r.code ?? r.signal}): ${tail(r, 5)}`);
      }
      const field = (k: string) => r.stdout.split('\n').find((l) => l.startsWith(`${STEP_MARK} ${k} `))?.slice(`${STEP_MARK} ${k} `.length).trim() ?? 'none';
      const data = field('data');
      const envMoved = field('env');
      return {
        dataDir: data === 'wiped' ? `${p.dataDir} wiped` : data === 'none' ? `${p.dataDir} was not there` : `${p.dataDir} moved to ${data}`,
        envFile: envMoved === 'none' ? null : envMoved,
      };
    },

    /**
     * Leaves a host that is not (or no longer) a member clean for a later attempt: service
     * stopped, data dir emptied, env file removed. Certificate and key are kept (still valid).
     */
    async retireHost({ spec, member }: MemberRef): Promise<void> {
      const p = memberPaths(spec, member);
      if (p.dataDir.split('/').filter(Boolean).length < 2) throw ApplicationFailure.nonRetryable(`refusing to empty data dir "${p.dataDir}": it is too close to /`, FailureType.InvalidInput);
      const stop = expand(spec.service.stop, member.name);
      const script = [
        `{ ${stop}`,
        '} || exit $?',
        `echo ${STEP_MARK} stopped`,
        `set -e; if [ -d ${shq(p.dataDir)} ]; then find ${shq(p.dataDir)} -mindepth 1 -delete; fi; rm -f ${shq(p.envFile)}`,
      ].join('\n');
      const r = await classifySsh(sshExec(sshTarget(member), ssh, script));
      if (r.code === 0) return;
      if (!r.stdout.includes(`${STEP_MARK} stopped`)) throw new Error(`${member.name}: \`${stop}\` exited ${r.code ?? r.signal}: ${tail(r, 5)}`);
      throw new Error(`${member.name}: emptying ${p.dataDir} and removing ${p.envFile} failed (exit ${r.code ?? r.signal}): ${tail(r, 5)}`);
    },
  };
}

/** Member-specific variables are rendered for the new member; the rest of the template member's settings carry over. */
const MEMBER_SPECIFIC = new Set([
  'ETCD_NAME',
  'ETCD_DATA_DIR',
  'ETCD_ADVERTISE_CLIENT_URLS',
  'ETCD_INITIAL_ADVERTISE_PEER_URLS',
  'ETCD_LISTEN_CLIENT_URLS',
  'ETCD_LISTEN_PEER_URLS',
  'ETCD_INITIAL_CLUSTER',
  'ETCD_INITIAL_CLUSTER_STATE',
  'ETCD_INITIAL_CLUSTER_TOKEN',
  'ETCD_CERT_FILE',
  'ETCD_KEY_FILE',
  'ETCD_PEER_CERT_FILE',
  'ETCD_PEER_KEY_FILE',
  'ETCD_TRUSTED_CA_FILE',
  'ETCD_PEER_TRUSTED_CA_FILE',
]);

export function carriedSettings(template: Record<string, string>, from: Pick<Member, 'address'>, to: Pick<Member, 'address'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(template)) {
    if (MEMBER_SPECIFIC.has(k)) continue;
    // other URL lists (e.g. ETCD_LISTEN_METRICS_URLS) name the template member's own address
    out[k] = k.endsWith('_URLS') ? v.split(from.address).join(to.address) : v;
  }
  return out;
}
