/**
 * Activities on member hosts, over SSH: certificates, the env file, the service, the data dir.
 * Each one checks the state first and changes only what differs, so running it twice ends in
 * the same state as running it once.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import { type ClusterSpec, type Member, expand, findMember, memberPaths } from '../spec/cluster';
import { atomicWriteScript, keyAndCsrScript, memberSans, signCsrScript } from './certs';
import { memberEnv, parseEnvFile, renderEnvFile, initialClusterValue, setEnvVar } from './envfile';
import { type SshIdentity, type SshTarget, SshError, sshExec, sshRun, shq } from './ssh';

export function sshTarget(m: Member): SshTarget {
  return { name: m.name, host: m.ssh.host, port: m.ssh.port, user: m.ssh.user, hostKey: m.ssh.hostKey };
}

/** SSH errors that no retry can fix become non-retryable activity failures; the rest stay retryable. */
export function classifySsh<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    if (e instanceof SshError && (e.kind === 'host-key-mismatch' || e.kind === 'auth')) throw ApplicationFailure.nonRetryable(e.message, e.kind === 'auth' ? FailureType.SshAuth : FailureType.SshHostKeyMismatch);
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
      const p = memberPaths(spec, member.name);
      const caMember = findMember(spec, spec.ca.host);
      const caDir = expand(spec.ca.dir, caMember.name);
      const sans = memberSans(member);
      const caPem = await run(caMember, `cat ${shq(`${caDir}/ca.pem`)}`);
      const haveCa = await sshExec(sshTarget(member), ssh, `cat ${shq(p.caCert)} 2>/dev/null`);
      if (haveCa.stdout !== caPem) await run(member, atomicWriteScript(p.caCert, '0644'), caPem);
      let issued = false;
      const state = (await run(member, checkCertScript(p.cert, p.key, p.caCert, sans))).trim();
      if (state !== 'valid') {
        const csr = await run(member, keyAndCsrScript(p.key, `etcd-${member.name}`));
        const cert = await run(caMember, signCsrScript(caDir, sans), csr);
        await run(member, atomicWriteScript(p.cert, '0644'), cert);
        const after = (await run(member, checkCertScript(p.cert, p.key, p.caCert, sans))).trim();
        if (after !== 'valid') throw new Error(`${member.name}: the certificate just issued does not check out (${after})`);
        issued = true;
      }
      const pem = await run(member, `cat ${shq(p.cert)}`);
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
      const changed: string[] = [];
      const existing = members.filter((m) => m.name !== joining);
      const texts = new Map<string, string>();
      for (const m of existing) {
        const file = memberPaths(spec, m.name).envFile;
        const r = await classifySsh(sshExec(sshTarget(m), ssh, `cat ${shq(file)}`));
        if (r.code !== 0) throw ApplicationFailure.nonRetryable(`${m.name}: ${file} cannot be read (${r.stderr.trim()}); every existing member needs its env file`, FailureType.MissingEnvFile);
        texts.set(m.name, r.stdout);
      }
      for (const m of existing) {
        const text = texts.get(m.name)!;
        const next = setEnvVar(text, 'ETCD_INITIAL_CLUSTER', value);
        if (next !== text) {
          await run(m, atomicWriteScript(memberPaths(spec, m.name).envFile, '0640'), next);
          changed.push(m.name);
        }
      }
      if (joining !== undefined) {
        const m = members.find((x) => x.name === joining);
        if (!m) throw ApplicationFailure.nonRetryable(`joining member ${joining} is not in the target membership`, FailureType.InvalidInput);
        const template = existing[0];
        if (!template) throw ApplicationFailure.nonRetryable('there is no existing member to take settings from', FailureType.InvalidInput);
        const carried = carriedSettings(parseEnvFile(texts.get(template.name)!), template, m);
        const text = renderEnvFile(memberEnv(spec, m, members, 'existing', carried));
        const file = memberPaths(spec, m.name).envFile;
        const cur = await sshExec(sshTarget(m), ssh, `cat ${shq(file)} 2>/dev/null`);
        if (cur.stdout !== text) {
          await run(m, atomicWriteScript(file, '0640'), text);
          changed.push(m.name);
        }
      }
      return { changed };
    },

    /** The member's service command `start` (a no-op when running), then `isActive` must hold. */
    async startMember({ spec, member }: MemberRef): Promise<void> {
      const r = await classifySsh(sshExec(sshTarget(member), ssh, expand(spec.service.start, member.name)));
      if (r.code !== 0) throw new Error(`${member.name}: \`${expand(spec.service.start, member.name)}\` failed: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-6).join(' | ')}`);
      const a = await sshExec(sshTarget(member), ssh, expand(spec.service.isActive, member.name));
      if (a.code !== 0) throw new Error(`${member.name}: the etcd service is not active right after start`);
    },

    /** The member's service command `stop` (a no-op when stopped). */
    async stopMember({ spec, member }: MemberRef): Promise<void> {
      await run(member, expand(spec.service.stop, member.name));
    },

    /**
     * Leaves a host that is not (or no longer) a member clean for a later attempt: service
     * stopped, data dir emptied, env file removed. Certificate and key are kept (still valid).
     */
    async retireHost({ spec, member }: MemberRef): Promise<void> {
      const p = memberPaths(spec, member.name);
      if (p.dataDir.split('/').filter(Boolean).length < 2) throw ApplicationFailure.nonRetryable(`refusing to empty data dir "${p.dataDir}": it is too close to /`, FailureType.InvalidInput);
      await run(member, expand(spec.service.stop, member.name));
      await run(member, `set -e; if [ -d ${shq(p.dataDir)} ]; then find ${shq(p.dataDir)} -mindepth 1 -delete; fi; rm -f ${shq(p.envFile)}`);
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
