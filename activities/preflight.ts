/**
 * Preflight of an operation (scale-out, rolling restart): everything that can be known wrong
 * before anything changes. Bad input fails at once and for good (non-retryable), with every
 * problem named; an unreachable host is retryable (the workflow gives preflight a few attempts).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import {
  type ReplaceMemberInput,
  type RollingRestartInput,
  type ScaleInInput,
  type ScaleOutInput,
  parseReplaceMemberInput,
  parseRollingRestartInput,
  parseScaleInInput,
  parseScaleOutInput,
  replacesInPlace,
} from '../spec/operations';
import { type ReplaceOrder, decideReplace } from '../common/replacePlan';
import { projectRemoval, projectRemovalOrder } from '../common/scaleInPlan';
import { type ClusterSpec, type Member, SpecError, expand, findMember, memberPaths } from '../spec/cluster';
import { failureTolerance, quorum } from '../common/quorum';
import { type ClusterObservation, type EtcdCredentials, type ListedMember, observeCluster } from './etcd';
import { checkBinaryChange, minorOf, mixedVersionsWarning, oldestVersionProblem } from '../common/versions';
import { sshTarget } from './host';
import type { HostAccess } from '../common/access';
import { MARK, noStdin, section } from './restart';
import { type SshIdentity, SshError, sshExec, shq } from './ssh';

/** The access of each member whose preflight checks ran (once per member). */
function accessReport(runs: [Member, PromiseSettledResult<unknown>][]): HostAccess[] {
  const out = new Map<string, HostAccess>();
  for (const [m, r] of runs) {
    if (r.status !== 'fulfilled' || out.has(m.name)) continue;
    out.set(m.name, { member: m.name, user: m.ssh.user, via: (m.ssh.via ?? []).map((j) => `${j.host}:${j.port}`), sudo: m.ssh.become === 'sudo' });
  }
  return [...out.values()];
}

const zip = <A, B>(a: A[], b: B[]): [A, B][] => a.map((x, i) => [x, b[i]!]);

export interface ScaleOutPlan {
  /** How each host was reached (user, bastion, sudo). */
  access?: HostAccess[];
  /** Voting members before and after. */
  from: number;
  to: number;
  batches: { member: string; address: string }[];
  warnings: string[];
  /** A learner left by an earlier attempt for one of the new members, which join will reuse. */
  adoptedLearners: string[];
}

export interface RollingRestartPlan {
  /** How each host was reached (user, bastion, sudo). */
  access?: HostAccess[];
  /** The members to restart, as requested (every member of the spec when none was named). */
  members: string[];
  warnings: string[];
  /** Members to restart that are not running now (the workflow restarts them first). */
  down: string[];
  /** With a binary change: the version each member's new binary reports, which it must report once restarted. */
  binaries?: Record<string, string>;
}

export interface ScaleInPlan {
  /** How each host was reached (user, bastion, sudo). */
  access?: HostAccess[];
  /** Voting members before and after. */
  from: number;
  to: number;
  /** The expected order of the removals, from live health (the workflow decides each again at its gate). */
  order: string[];
  /** Members to remove that do not answer now (removed first; their hosts cleaned if reachable). */
  down: string[];
  warnings: string[];
}

export interface ReplacePlan {
  /** How each host was reached (user, bastion, sudo). */
  access?: HostAccess[];
  strategy: ReplaceOrder;
  /** Why that order, for people. */
  why: string;
  /** The lowest etcd version the members report. */
  version: string;
  /** The old member does not answer now. */
  oldDown: boolean;
  /** A learner left for the new member by an earlier attempt, which join will reuse. */
  adoptedLearner: boolean;
  warnings: string[];
}

/**
 * The member list and each member's status (its version among them), asked of the spec's members;
 * a cluster that does not answer at all is retryable.
 */
async function readLive(creds: EtcdCredentials, spec: ClusterSpec, withVersions = false): Promise<ClusterObservation> {
  const o = await observeCluster(creds, { endpoints: spec.members.flatMap((m) => m.clientURLs), timeoutMs: 5_000, withVersions });
  if (o.members.length === 0) throw new Error(`cannot read the member list from ${spec.members.map((m) => m.name).join(', ')}: ${o.problems.join('; ')}`);
  return o;
}

/**
 * Where the live membership differs from the spec: every spec member must be a live voting
 * member with its peer URL and name. A live member the spec does not list is a problem, unless
 * `unlisted` accepts it (returns null) or describes it itself (returns the problem).
 */
export function membershipProblems(spec: ClusterSpec, live: ListedMember[], unlisted: (l: ListedMember) => string | null | undefined = () => undefined): string[] {
  const problems: string[] = [];
  spec.members.forEach((m, i) => {
    const l = live.find((x) => x.peerURLs.some((u) => m.peerURLs.includes(u)));
    if (!l) problems.push(`spec.members[${i}] (${m.name}): no live member has peer URL ${m.peerURLs.join(',')}; the spec does not match the cluster: correct the spec from \`etcdctl member list\` first`);
    else if (l.name !== '' && l.name !== m.name) problems.push(`spec.members[${i}]: the live member with peer URL ${m.peerURLs.join(',')} is named "${l.name}", not "${m.name}": correct the name in the spec`);
    else if (l.isLearner) problems.push(`spec.members[${i}] (${m.name}) is a learner in the cluster, not a voting member: finish its scale-out (promote it) or remove it first`);
  });
  for (const l of live) {
    if (spec.members.some((m) => m.peerURLs.some((u) => l.peerURLs.includes(u)))) continue;
    const own = unlisted(l);
    if (own === null) continue;
    const who = `"${l.name || '(not started)'}" (id ${l.id}, peer URL ${l.peerURLs.join(',')})`;
    problems.push(
      own ??
        (l.isLearner
          ? `the cluster has a pending learner ${who} that the spec does not list: finish the scale-out that added it, or remove it (etcdctl member remove ${l.id}), first`
          : `the cluster has a member ${who} that the spec does not list: add it to the spec first`),
    );
  }
  return problems;
}

/**
 * The checks of a new member's host, one script: etcd binary and openssl there; and, marked
 * (`<MARK> new ...`, they only matter for a member not adopted as a learner already), an empty
 * data dir and no etcd service running.
 */
function newMemberScript(spec: ClusterSpec, m: Member): string {
  const p = memberPaths(spec, m);
  const isActive = expand(spec.service.isActive, m.name);
  return [
    `test -x ${shq(p.etcdBinary)} || echo "no etcd binary at ${p.etcdBinary}"`,
    `command -v openssl >/dev/null || echo "no openssl"`,
    `if [ -d ${shq(p.dataDir)} ] && [ -n "$(ls -A ${shq(p.dataDir)} 2>/dev/null)" ]; then echo "${MARK} new data dir ${p.dataDir} is not empty (a new member must start empty)"; fi`,
    `if ${noStdin(isActive)} >/dev/null 2>&1; then echo "${MARK} new its etcd service is already running"; fi`,
  ].join('\n');
}

/** What newMemberScript printed, as problems (`who` names the member in them). */
function newMemberProblems(stdout: string, who: string, adopted: boolean): string[] {
  const out: string[] = [];
  for (const line of stdout.trim().split('\n').filter(Boolean)) {
    if (!line.startsWith(`${MARK} new `)) out.push(`${who}: ${line}`);
    else if (!adopted) out.push(`${who}: ${line.slice(`${MARK} new `.length)}`);
  }
  return out;
}

/** The check of the CA host: ca.pem and ca-key.pem readable in the CA dir; prints `<MARK> ca <file>` for each missing one. */
function caFilesScript(caDir: string): string {
  return `for f in ca.pem ca-key.pem; do test -r ${shq(caDir)}/$f || echo "${MARK} ca $f"; done`;
}

/** SSH errors no retry fixes (wrong host key, login refused) become problems; the rest (unreachable) are rethrown, retryable. */
function recordHostProblem(problems: string[], e: unknown, who: string): void {
  if (e instanceof SshError && (e.kind === 'host-key-mismatch' || e.kind === 'auth' || e.kind === 'sudo')) problems.push(`${who}: ${e.message}`);
  else throw e;
}

function invalidInput<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof SpecError) throw ApplicationFailure.nonRetryable(e.message, FailureType.InvalidInput);
    throw e;
  }
}

export function preflightActivities(ssh: SshIdentity, creds: EtcdCredentials) {
  return {
    async preflightScaleOut(raw: ScaleOutInput): Promise<ScaleOutPlan> {
      const input = invalidInput(() => parseScaleOutInput(raw));
      const { spec, add } = input;
      const adopted: string[] = [];

      // The live membership and every host's checks (one script per host), all at once.
      const caDir = expand(spec.ca.dir, spec.ca.host);
      const caHost = spec.members.find((m) => m.name === spec.ca.host)!;
      const memberScript = (m: (typeof spec.members)[number]) => {
        const p = memberPaths(spec, m);
        const lines = [`test -r ${shq(p.envFile)} || echo "missing ${p.envFile}"`];
        if (m.name === caHost.name) lines.push(caFilesScript(caDir));
        return lines.join('\n');
      };
      const [liveR, specR, addR] = await Promise.all([
        Promise.allSettled([readLive(creds, spec)]),
        Promise.allSettled(spec.members.map((m) => sshExec(sshTarget(m), ssh, memberScript(m)))),
        Promise.allSettled(add.map((m) => sshExec(sshTarget(m), ssh, newMemberScript(spec, m)))),
      ]);
      if (liveR[0]!.status === 'rejected') throw liveR[0]!.reason;
      const observed = liveR[0]!.value;
      const live = observed.members;

      // The live membership must be the spec's, with no stray learner (one left for a member to add is adopted).
      const problems = membershipProblems(spec, live, (l) => {
        const forAdd = add.findIndex((m) => m.peerURLs.some((u) => l.peerURLs.includes(u)));
        if (forAdd < 0) return undefined;
        if (l.isLearner && (l.name === '' || l.name === add[forAdd]!.name)) {
          adopted.push(add[forAdd]!.name);
          return null;
        }
        return `add[${forAdd}] (${add[forAdd]!.name}): peer URL ${l.peerURLs.join(',')} is already a ${l.isLearner ? 'learner' : 'voting member'} of the cluster${l.name ? ` named "${l.name}"` : ''}`;
      });
      const tooOld = oldestVersionProblem(observed);
      if (tooOld) problems.push(tooOld);
      add.forEach((m, i) => {
        const byName = live.find((x) => x.name === m.name);
        if (byName && !byName.peerURLs.some((u) => m.peerURLs.includes(u))) problems.push(`add[${i}].name: "${m.name}" is already the name of live member ${byName.id}`);
      });

      // Hosts: reachable with their pinned keys; files where the layout says.
      const hostProblem = (e: unknown, who: string) => recordHostProblem(problems, e, who);
      const lines = (r: { stdout: string }) => r.stdout.trim().split('\n').filter(Boolean);
      let caMissing: string[] = [];
      spec.members.forEach((m, i) => {
        const r = specR[i]!;
        if (r.status === 'rejected') return hostProblem(r.reason, `spec member ${m.name}`);
        const own = lines(r.value).filter((l) => !l.startsWith(`${MARK} ca `));
        if (own.length) problems.push(`${m.name}: ${own.join('\n')} (every existing member needs its env file)`);
        if (m.name === caHost.name) caMissing = lines(r.value).filter((l) => l.startsWith(`${MARK} ca `)).map((l) => l.slice(`${MARK} ca `.length));
      });
      const caR = specR[spec.members.indexOf(caHost)]!;
      if (caR.status === 'rejected') hostProblem(caR.reason, `CA host ${caHost.name}`);
      else if (caMissing.length) problems.push(`ca: ${caHost.name} has no readable ${caMissing.join(', ')} in ${caDir}`);
      add.forEach((m, i) => {
        const r = addR[i]!;
        if (r.status === 'rejected') return hostProblem(r.reason, `add[${i}] (${m.name})`);
        problems.push(...newMemberProblems(r.value.stdout, `add[${i}] (${m.name})`, adopted.includes(m.name)));
      });
      if (problems.length) throw ApplicationFailure.nonRetryable(`scale-out refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);

      const from = spec.members.length;
      const to = from + add.length;
      const warnings: string[] = [];
      if (to % 2 === 0) warnings.push(`the target size ${to} is even: it tolerates ${to - quorum(to)} failure(s), as ${to - 1} members would, with a larger quorum (${quorum(to)})`);
      const mixedOut = mixedVersionsWarning(observed);
      if (mixedOut) warnings.push(mixedOut);
      const access = accessReport([...zip(spec.members, specR), ...zip(add, addR)]);
      return { from, to, batches: add.map((m) => ({ member: m.name, address: m.address })), warnings, adoptedLearners: adopted, access };
    },

    /**
     * Preflight of a scale-in: the live membership is exactly the spec's (voters only, no
     * pending learner); removing the members asked for keeps a healthy quorum of the members that
     * stay, from live health (the projection in common/scaleInPlan.ts); every member that stays
     * is reachable with its pinned key and has its env file (config-sync rewrites it). The hosts
     * of the members to remove are not required: a dead host is the common case.
     */
    async preflightScaleIn(raw: ScaleInInput): Promise<ScaleInPlan> {
      const { spec, remove } = invalidInput(() => parseScaleInInput(raw));
      const staying = spec.members.filter((m) => !remove.includes(m.name));
      const envCheck = (m: (typeof spec.members)[number]) => {
        const envFile = memberPaths(spec, m).envFile;
        return `test -r ${shq(envFile)} || echo ${shq(`${MARK} its env file ${envFile} is missing or cannot be read (config-sync rewrites ETCD_INITIAL_CLUSTER there)`)}`;
      };
      const [o, hostR] = await Promise.all([readLive(creds, spec), Promise.allSettled(staying.map((m) => sshExec(sshTarget(m), ssh, envCheck(m))))]);
      const problems = membershipProblems(spec, o.members);
      const tooOld = oldestVersionProblem(o);
      if (tooOld) problems.push(tooOld);
      if (problems.length === 0) {
        const p = projectRemoval(o, remove);
        if (p.problem) problems.push(p.problem);
      }
      staying.forEach((m, i) => {
        const r = hostR[i]!;
        if (r.status === 'rejected') return recordHostProblem(problems, r.reason, m.name);
        const own = r.value.stdout.split('\n').filter((l) => l.startsWith(`${MARK} `)).map((l) => l.slice(MARK.length + 1));
        if (own.length) problems.push(`${m.name}: ${own.join('; ')}`);
      });
      if (problems.length) throw ApplicationFailure.nonRetryable(`scale-in refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);

      const from = spec.members.length;
      const to = from - remove.length;
      const down = o.statuses.filter((s) => !s.isLearner && !s.ok && remove.includes(s.name)).map((s) => s.name);
      const warnings: string[] = [];
      if (to % 2 === 0) warnings.push(`the target size ${to} is even: it tolerates ${failureTolerance(to)} failure(s), as ${to - 1} member(s) would, with a larger quorum (${quorum(to)})`);
      for (const n of down) warnings.push(`${n} does not answer now: it is removed through the other members first; its host is cleaned if it can be reached`);
      const mixedIn = mixedVersionsWarning(o);
      if (mixedIn) warnings.push(mixedIn);
      if (remove.includes(spec.ca.host)) {
        warnings.push(`the CA lives on ${spec.ca.host} (spec ca.host), which is being removed: copy ${expand(spec.ca.dir, spec.ca.host)}/ca.pem and ca-key.pem to a member that stays and set ca.host to it before the next scale-out`);
      }
      return { from, to, order: projectRemovalOrder(o, remove), down, warnings, access: accessReport(zip(staying, hostR)) };
    },

    /**
     * Preflight of a replacement: the live membership is the spec's (a learner left for the new
     * member by an earlier attempt is adopted); the order (remove or add first) decided from live
     * health and the etcd version, or the one asked for refused when it cannot work; with
     * remove-first, the staying members keep a healthy quorum; the new member's host is ready
     * (binary, openssl, empty data dir, no etcd running); the staying members have their env
     * files; the CA host can sign the new certificate. The old member's host is not required.
     */
    async preflightReplaceMember(raw: ReplaceMemberInput): Promise<ReplacePlan> {
      const { spec, replace, with: neu, policy } = invalidInput(() => parseReplaceMemberInput(raw));
      const old = findMember(spec, replace);
      const inPlace = replacesInPlace(old, neu);
      const staying = spec.members.filter((m) => m.name !== replace);
      const caHost = findMember(spec, spec.ca.host);
      const caDir = expand(spec.ca.dir, spec.ca.host);
      const stayingScript = (m: Member) => {
        const envFile = memberPaths(spec, m).envFile;
        return [`test -r ${shq(envFile)} || echo ${shq(`${MARK} env its env file ${envFile} is missing or cannot be read (config-sync rewrites it)`)}`, ...(m.name === caHost.name ? [caFilesScript(caDir)] : [])].join('\n');
      };
      const [o, stayR, caR, newR] = await Promise.all([
        readLive(creds, spec),
        Promise.allSettled(staying.map((m) => sshExec(sshTarget(m), ssh, stayingScript(m)))),
        // the CA on the member being replaced: it must still answer, to sign the new certificate before it goes
        Promise.allSettled(caHost.name === replace ? [sshExec(sshTarget(caHost), ssh, caFilesScript(caDir))] : []),
        Promise.allSettled([sshExec(sshTarget(neu), ssh, newMemberScript(spec, neu))]),
      ]);
      let adoptedLearner = false;
      const problems = membershipProblems(spec, o.members, (l) => {
        if (!neu.peerURLs.some((u) => l.peerURLs.includes(u))) return undefined;
        if (l.isLearner && (l.name === '' || l.name === neu.name)) {
          adoptedLearner = true;
          return null;
        }
        return `with (${neu.name}): peer URL ${l.peerURLs.join(',')} is already a ${l.isLearner ? 'learner' : 'voting member'} of the cluster${l.name ? ` named "${l.name}"` : ''}`;
      });
      const byName = o.members.find((x) => x.name === neu.name && !x.peerURLs.some((u) => neu.peerURLs.includes(u)) && x.name !== replace);
      if (byName) problems.push(`with.name: "${neu.name}" is already the name of live member ${byName.id}`);
      const tooOld = oldestVersionProblem(o);
      if (tooOld) problems.push(tooOld);

      const caMissing = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith(`${MARK} ca `)).map((l) => l.slice(`${MARK} ca `.length));
      staying.forEach((m, i) => {
        const r = stayR[i]!;
        if (r.status === 'rejected') return recordHostProblem(problems, r.reason, m.name);
        const own = r.value.stdout.split('\n').filter((l) => l.startsWith(`${MARK} env `)).map((l) => l.slice(`${MARK} env `.length));
        if (own.length) problems.push(`${m.name}: ${own.join('; ')}`);
        if (m.name === caHost.name && caMissing(r.value.stdout).length) problems.push(`ca: ${caHost.name} has no readable ${caMissing(r.value.stdout).join(', ')} in ${caDir}`);
      });
      if (caHost.name === replace) {
        const r = caR[0]!;
        if (r.status === 'rejected') {
          problems.push(`ca: the CA lives on ${replace} (spec ca.host), the member being replaced, and its host cannot sign ${neu.name}'s certificate (${(r.reason as Error).message}): copy ${caDir}/ca.pem and ca-key.pem to a member that stays and set ca.host to it`);
        } else if (caMissing(r.value.stdout).length) problems.push(`ca: ${caHost.name} has no readable ${caMissing(r.value.stdout).join(', ')} in ${caDir}`);
      }
      const nr = newR[0]!;
      if (nr.status === 'rejected') recordHostProblem(problems, nr.reason, `with (${neu.name})`);
      else problems.push(...newMemberProblems(nr.value.stdout, `with (${neu.name})`, adoptedLearner));

      const d = problems.length === 0 ? decideReplace(o, replace, neu.name, inPlace, policy.strategy) : null;
      if (d) problems.push(...d.problems);
      if (problems.length || !d) throw ApplicationFailure.nonRetryable(`replacement refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);
      const warnings = [...d.warnings];
      const mixedReplace = mixedVersionsWarning(o);
      if (mixedReplace) warnings.push(mixedReplace);
      if (caHost.name === replace) warnings.push(`the CA lives on ${replace} (spec ca.host), which is being replaced: copy ${caDir}/ca.pem and ca-key.pem to a member that stays and set ca.host to it before the next operation`);
      const oldDown = !o.statuses.find((x) => x.name === replace)?.ok;
      const access = accessReport([...zip(staying, stayR), ...zip(caHost.name === replace ? [caHost] : [], caR), [neu, newR[0]!]]);
      return { strategy: d.strategy, why: d.why, version: d.version, oldDown, adoptedLearner, warnings, access };
    },

    /**
     * Preflight of a rolling restart: the live membership is exactly the spec's (voters only, no
     * pending learner), and every member to restart is reachable with its pinned key, has its env
     * file, and its `mainPid` template runs. Members already down are named: the workflow
     * restarts them first.
     */
    async preflightRollingRestart(raw: RollingRestartInput): Promise<RollingRestartPlan> {
      const { spec, members, binary, change } = invalidInput(() => parseRollingRestartInput(raw));
      const scriptFor = (name: string) => {
        const envFile = memberPaths(spec, name).envFile;
        const mainPid = expand(spec.service.mainPid, name);
        return [
          `test -r ${shq(envFile)} || echo "${MARK} no-env-file"`,
          // a binary change: the new binary's version, and the env settings a newer etcd no longer reads
          ...(binary ? binaryCheckScript(expand(binary, name), envFile) : []),
          `out=$(${noStdin(mainPid)} 2>&1); rc=$?`,
          `echo "${MARK} mainPid $rc"`,
          `printf '%s\n' "$out" | tail -n 3`,
        ].join('\n');
      };
      // The live membership (with each member's cluster version for an upgrade) and every member's check (one script per host), all at once.
      const [liveR, hostR] = await Promise.all([
        Promise.allSettled([readLive(creds, spec, binary !== undefined)]),
        Promise.allSettled(members.map((name) => sshExec(sshTarget(findMember(spec, name)), ssh, scriptFor(name)))),
      ]);
      if (liveR[0]!.status === 'rejected') throw liveR[0]!.reason;
      const observed = liveR[0]!.value;
      const problems = membershipProblems(spec, observed.members);
      const tooOld = oldestVersionProblem(observed);
      if (tooOld) problems.push(tooOld);
      const down: string[] = [];
      const targets: { member: string; running: string; target: string }[] = [];
      const envV2: string[] = [];
      const envExperimental: Record<string, string[]> = {};
      members.forEach((name, i) => {
        const envFile = memberPaths(spec, name).envFile;
        const mainPid = expand(spec.service.mainPid, name);
        const r = hostR[i]!;
        if (r.status === 'rejected') return recordHostProblem(problems, r.reason, name);
        const out = r.value.stdout;
        if (out.includes(`${MARK} no-env-file`)) problems.push(`${name}: its env file ${envFile} is missing or cannot be read (a member to restart needs it)`);
        if (binary) {
          const src = expand(binary, name);
          const lines = out.split('\n');
          if (lines.includes(`${MARK} no-binary`)) problems.push(`${name}: no executable etcd binary at ${src} on its host: put the new binary there first`);
          else {
            const printed = section(lines, 'binary').join('\n');
            const v = /etcd Version: (\S+)/.exec(printed)?.[1];
            const running = observed.statuses.find((x) => x.name === name && x.ok)?.version ?? 'unknown';
            if (!v) problems.push(`${name}: \`${src} --version\` did not print "etcd Version: …" (${printed.trim().split('\n')[0]?.slice(0, 80) || 'nothing'}): is it an etcd server binary?`);
            else targets.push({ member: name, running, target: v });
          }
          const v2 = section(lines, 'enable-v2').find((l) => /^ETCD_ENABLE_V2=("|')?true/i.test(l));
          if (v2) envV2.push(name);
          for (const k of section(lines, 'experimental').filter((l) => l.startsWith('ETCD_EXPERIMENTAL_'))) (envExperimental[k] ??= []).push(name);
        }
        const at = out.indexOf(`${MARK} mainPid `);
        const rest = at < 0 ? '' : out.slice(at + MARK.length + ' mainPid '.length);
        const rc = rest.split('\n')[0]!.trim();
        const printed = rest.split('\n').slice(1).join('\n').trim();
        if (rc !== '0') problems.push(`${name}: service.mainPid \`${mainPid}\` failed (exit ${rc || '?'})${printed ? `: ${printed.split('\n').join(' | ')}` : ''}`);
        else if (!/^(\d+)?$/.test(printed)) problems.push(`${name}: service.mainPid \`${mainPid}\` printed "${printed.slice(0, 80)}", not a pid (0 or nothing when etcd does not run)`);
        else if (printed === '' || printed === '0') down.push(name);
      });
      const warnings: string[] = [];
      let binaries: Record<string, string> | undefined;
      if (binary && targets.length === members.length) {
        const clusterVersion = observed.statuses.find((x) => x.ok && x.clusterVersion && x.clusterVersion !== 'unknown')?.clusterVersion ?? 'unknown';
        const running = observed.statuses.filter((x) => x.ok && x.name).map((x) => ({ member: x.name, version: x.version ?? 'unknown' }));
        const c = checkBinaryChange({ clusterVersion, running, targets });
        problems.push(...c.problems);
        warnings.push(...c.warnings);
        binaries = Object.fromEntries(targets.map((t) => [t.member, t.target]));
        const toMinor = c.targetVersion ? minorOf(c.targetVersion)! : null;
        const unsets = (k: string) => change?.unset.includes(k) === true || Object.hasOwn(change?.set ?? {}, k);
        if (toMinor && compareMinor(toMinor, '3.6') >= 0 && envV2.length && !unsets('ETCD_ENABLE_V2')) {
          problems.push(
            `${envV2.join(', ')}: ETCD_ENABLE_V2=true in the env file, and etcd ${toMinor} has no v2 API: as etcd's 3.6 upgrade guide says, check \`etcdutl check v2store\` on a member's data, then upgrade with ETCD_ENABLE_V2 in change.unset (the same rolling restart removes it)`,
          );
        }
        if (toMinor && compareMinor(toMinor, '3.7') >= 0) {
          for (const [k, who] of Object.entries(envExperimental)) {
            if (!unsets(k)) warnings.push(`${who.join(', ')}: ${k} is in the env file, and etcd ${toMinor} reads no --experimental-* setting: set ${k.replace('ETCD_EXPERIMENTAL_', 'ETCD_')} instead (change.set) and unset ${k}, or the setting is lost`);
          }
        }
      }
      if (problems.length) throw ApplicationFailure.nonRetryable(`rolling restart refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);

      const mixedRestart = mixedVersionsWarning(observed);
      if (mixedRestart) warnings.push(mixedRestart);
      const n = spec.members.length;
      if (n % 2 === 0) warnings.push(`the cluster has ${n} voting members, an even number: it tolerates ${failureTolerance(n)} member(s) down, as ${n - 1} members would; no batch takes more than that down`);
      for (const name of down) warnings.push(`${name} is not running now: it will be restarted first (it counts as down already, so no other member is stopped alongside it)`);
      if (down.length > failureTolerance(n)) warnings.push(`${down.length} of ${n} members are down, more than the ${failureTolerance(n)} the cluster tolerates: quorum is lost until they are back`);
      const access = accessReport(zip(members.map((name) => findMember(spec, name)), hostR));
      return { members, warnings, down, ...(binaries ? { binaries } : {}), access };
    },
  };
}

/** 3.6 vs 3.7 as numbers. */
function compareMinor(a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  return x[0]! - y[0]! || x[1]! - y[1]!;
}

/** The host side of an upgrade's preflight: the new binary's `--version`, and the env settings newer etcd versions drop. */
function binaryCheckScript(source: string, envFile: string): string[] {
  const [src, env] = [shq(source), shq(envFile)];
  return [
    `if [ -f ${src} ] && [ -x ${src} ]; then echo "${MARK} binary"; ${src} --version 2>&1 </dev/null | head -n 5; else echo "${MARK} no-binary"; fi`,
    `echo "${MARK} enable-v2"; grep -E '^ETCD_ENABLE_V2=' ${env} 2>/dev/null || true`,
    `echo "${MARK} experimental"; grep -oE '^ETCD_EXPERIMENTAL_[A-Z0-9_]+' ${env} 2>/dev/null || true`,
  ];
}
