/**
 * Preflight of an operation (scale-out, rolling restart): everything that can be known wrong
 * before anything changes. Bad input fails at once and for good (non-retryable), with every
 * problem named; an unreachable host is retryable (the workflow gives preflight a few attempts).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/errors';
import { type RollingRestartInput, type ScaleOutInput, parseRollingRestartInput, parseScaleOutInput } from '../spec/operations';
import { type ClusterSpec, SpecError, expand, findMember, memberPaths } from '../spec/cluster';
import { failureTolerance, quorum } from '../common/quorum';
import { type EtcdCredentials, type ListedMember, etcdClient, listMembers } from './etcd';
import { sshTarget } from './host';
import { MARK, noStdin } from './restart';
import { type SshIdentity, SshError, sshExec, shq } from './ssh';

export interface ScaleOutPlan {
  /** Voting members before and after. */
  from: number;
  to: number;
  batches: { member: string; address: string }[];
  warnings: string[];
  /** A learner left by an earlier attempt for one of the new members, which join will reuse. */
  adoptedLearners: string[];
}

export interface RollingRestartPlan {
  /** The members to restart, as requested (every member of the spec when none was named). */
  members: string[];
  warnings: string[];
  /** Members to restart that are not running now (the workflow restarts them first). */
  down: string[];
}

/** The member list as the cluster reports it, asked of the spec's members; unreachable is retryable. */
async function readLiveMembers(creds: EtcdCredentials, spec: ClusterSpec): Promise<ListedMember[]> {
  const c = etcdClient(spec.members.flatMap((m) => m.clientURLs), creds, { timeoutMs: 10_000 });
  try {
    return await listMembers(c);
  } catch (e) {
    throw new Error(`cannot read the member list from ${spec.members.map((m) => m.name).join(', ')}: ${(e as Error).message}`);
  } finally {
    c.close();
  }
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

/** SSH errors no retry fixes (wrong host key, login refused) become problems; the rest (unreachable) are rethrown, retryable. */
function recordHostProblem(problems: string[], e: unknown, who: string): void {
  if (e instanceof SshError && (e.kind === 'host-key-mismatch' || e.kind === 'auth')) problems.push(`${who}: ${e.message}`);
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

      // The live membership must be the spec's, with no stray learner (one left for a member to add is adopted).
      const live = await readLiveMembers(creds, spec);
      const problems = membershipProblems(spec, live, (l) => {
        const forAdd = add.findIndex((m) => m.peerURLs.some((u) => l.peerURLs.includes(u)));
        if (forAdd < 0) return undefined;
        if (l.isLearner && (l.name === '' || l.name === add[forAdd]!.name)) {
          adopted.push(add[forAdd]!.name);
          return null;
        }
        return `add[${forAdd}] (${add[forAdd]!.name}): peer URL ${l.peerURLs.join(',')} is already a ${l.isLearner ? 'learner' : 'voting member'} of the cluster${l.name ? ` named "${l.name}"` : ''}`;
      });
      add.forEach((m, i) => {
        const byName = live.find((x) => x.name === m.name);
        if (byName && !byName.peerURLs.some((u) => m.peerURLs.includes(u))) problems.push(`add[${i}].name: "${m.name}" is already the name of live member ${byName.id}`);
      });

      // Hosts: reachable with their pinned keys; files where the layout says.
      const hostProblem = (e: unknown, who: string) => recordHostProblem(problems, e, who);
      for (const m of spec.members) {
        const p = memberPaths(spec, m.name);
        try {
          const r = await sshExec(sshTarget(m), ssh, `test -r ${shq(p.envFile)} || echo "missing ${p.envFile}"`);
          if (r.stdout.trim()) problems.push(`${m.name}: ${r.stdout.trim()} (every existing member needs its env file)`);
        } catch (e) {
          hostProblem(e, `spec member ${m.name}`);
        }
      }
      const caDir = expand(spec.ca.dir, spec.ca.host);
      const caHost = spec.members.find((m) => m.name === spec.ca.host)!;
      try {
        const r = await sshExec(sshTarget(caHost), ssh, `for f in ca.pem ca-key.pem; do test -r ${shq(caDir)}/$f || echo "$f"; done`);
        if (r.stdout.trim()) problems.push(`ca: ${caHost.name} has no readable ${r.stdout.trim().split('\n').join(', ')} in ${caDir}`);
      } catch (e) {
        hostProblem(e, `CA host ${caHost.name}`);
      }
      for (const [i, m] of add.entries()) {
        const p = memberPaths(spec, m.name);
        const isActive = expand(spec.service.isActive, m.name);
        const script = [
          `test -x ${shq(p.etcdBinary)} || echo "no etcd binary at ${p.etcdBinary}"`,
          `command -v openssl >/dev/null || echo "no openssl"`,
          adopted.includes(m.name) ? ':' : `if [ -d ${shq(p.dataDir)} ] && [ -n "$(ls -A ${shq(p.dataDir)} 2>/dev/null)" ]; then echo "data dir ${p.dataDir} is not empty (a new member must start empty)"; fi`,
          adopted.includes(m.name) ? ':' : `if ${isActive} >/dev/null 2>&1; then echo "its etcd service is already running"; fi`,
        ].join('\n');
        try {
          const r = await sshExec(sshTarget(m), ssh, script);
          for (const line of r.stdout.trim().split('\n').filter(Boolean)) problems.push(`add[${i}] (${m.name}): ${line}`);
        } catch (e) {
          hostProblem(e, `add[${i}] (${m.name})`);
        }
      }
      if (problems.length) throw ApplicationFailure.nonRetryable(`scale-out refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);

      const from = spec.members.length;
      const to = from + add.length;
      const warnings: string[] = [];
      if (to % 2 === 0) warnings.push(`the target size ${to} is even: it tolerates ${to - quorum(to)} failure(s), as ${to - 1} members would, with a larger quorum (${quorum(to)})`);
      return { from, to, batches: add.map((m) => ({ member: m.name, address: m.address })), warnings, adoptedLearners: adopted };
    },

    /**
     * Preflight of a rolling restart: the live membership is exactly the spec's (voters only, no
     * pending learner), and every member to restart is reachable with its pinned key, has its env
     * file, and its `mainPid` template runs. Members already down are named: the workflow
     * restarts them first.
     */
    async preflightRollingRestart(raw: RollingRestartInput): Promise<RollingRestartPlan> {
      const { spec, members } = invalidInput(() => parseRollingRestartInput(raw));
      const live = await readLiveMembers(creds, spec);
      const problems = membershipProblems(spec, live);
      const down: string[] = [];
      for (const name of members) {
        const m = findMember(spec, name);
        const envFile = memberPaths(spec, name).envFile;
        const mainPid = expand(spec.service.mainPid, name);
        const script = [`test -r ${shq(envFile)} || echo "${MARK} no-env-file"`, `out=$(${noStdin(mainPid)} 2>&1); rc=$?`, `echo "${MARK} mainPid $rc"`, `printf '%s\n' "$out" | tail -n 3`].join('\n');
        let out: string;
        try {
          out = (await sshExec(sshTarget(m), ssh, script)).stdout;
        } catch (e) {
          recordHostProblem(problems, e, name);
          continue;
        }
        if (out.includes(`${MARK} no-env-file`)) problems.push(`${name}: its env file ${envFile} is missing or cannot be read (a member to restart needs it)`);
        const at = out.indexOf(`${MARK} mainPid `);
        const rest = at < 0 ? '' : out.slice(at + MARK.length + ' mainPid '.length);
        const rc = rest.split('\n')[0]!.trim();
        const printed = rest.split('\n').slice(1).join('\n').trim();
        if (rc !== '0') problems.push(`${name}: service.mainPid \`${mainPid}\` failed (exit ${rc || '?'})${printed ? `: ${printed.split('\n').join(' | ')}` : ''}`);
        else if (!/^(\d+)?$/.test(printed)) problems.push(`${name}: service.mainPid \`${mainPid}\` printed "${printed.slice(0, 80)}", not a pid (0 or nothing when etcd does not run)`);
        else if (printed === '' || printed === '0') down.push(name);
      }
      if (problems.length) throw ApplicationFailure.nonRetryable(`rolling restart refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, FailureType.InvalidInput);

      const warnings: string[] = [];
      const n = spec.members.length;
      if (n % 2 === 0) warnings.push(`the cluster has ${n} voting members, an even number: it tolerates ${failureTolerance(n)} member(s) down, as ${n - 1} members would; no batch takes more than that down`);
      for (const name of down) warnings.push(`${name} is not running now: it will be restarted first (it counts as down already, so no other member is stopped alongside it)`);
      if (down.length > failureTolerance(n)) warnings.push(`${down.length} of ${n} members are down, more than the ${failureTolerance(n)} the cluster tolerates: quorum is lost until they are back`);
      return { members, warnings, down };
    },
  };
}
