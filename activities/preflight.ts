/**
 * Preflight of a scale-out: everything that can be known wrong before anything changes.
 * Bad input fails at once and for good (non-retryable), with every problem named; an
 * unreachable host is retryable (the workflow gives preflight a few attempts).
 */
import { ApplicationFailure } from '@temporalio/common';
import { type ScaleOutInput, parseScaleOutInput } from '../spec/operations';
import { SpecError, expand, memberPaths } from '../spec/cluster';
import { quorum } from '../workflows/quorum';
import { type EtcdCredentials, etcdClient, listMembers } from './etcd';
import { sshTarget } from './host';
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

export function preflightActivities(ssh: SshIdentity, creds: EtcdCredentials) {
  return {
    async preflightScaleOut(raw: ScaleOutInput): Promise<ScaleOutPlan> {
      let input: ScaleOutInput;
      try {
        input = parseScaleOutInput(raw);
      } catch (e) {
        if (e instanceof SpecError) throw ApplicationFailure.nonRetryable(e.message, 'InvalidInput');
        throw e;
      }
      const { spec, add } = input;
      const problems: string[] = [];
      const adopted: string[] = [];

      // The live membership must be the spec's, with no stray learner.
      const c = etcdClient(spec.members.flatMap((m) => m.clientURLs), creds, { timeoutMs: 10_000 });
      let live;
      try {
        live = await listMembers(c);
      } catch (e) {
        throw new Error(`cannot read the member list from ${spec.members.map((m) => m.name).join(', ')}: ${(e as Error).message}`);
      } finally {
        c.close();
      }
      spec.members.forEach((m, i) => {
        const l = live.find((x) => x.peerURLs.some((u) => m.peerURLs.includes(u)));
        if (!l) problems.push(`spec.members[${i}] (${m.name}): no live member has peer URL ${m.peerURLs.join(',')}; the spec does not match the cluster`);
        else if (l.name !== '' && l.name !== m.name) problems.push(`spec.members[${i}]: the live member with peer URL ${m.peerURLs.join(',')} is named "${l.name}", not "${m.name}"`);
        else if (l.isLearner) problems.push(`spec.members[${i}] (${m.name}) is a learner in the cluster, not a voting member`);
      });
      for (const l of live) {
        const inSpec = spec.members.some((m) => m.peerURLs.some((u) => l.peerURLs.includes(u)));
        if (inSpec) continue;
        const forAdd = add.findIndex((m) => m.peerURLs.some((u) => l.peerURLs.includes(u)));
        if (forAdd >= 0 && l.isLearner && (l.name === '' || l.name === add[forAdd]!.name)) {
          adopted.push(add[forAdd]!.name);
          continue;
        }
        if (forAdd >= 0) problems.push(`add[${forAdd}] (${add[forAdd]!.name}): peer URL ${l.peerURLs.join(',')} is already a ${l.isLearner ? 'learner' : 'voting member'} of the cluster${l.name ? ` named "${l.name}"` : ''}`);
        else problems.push(`the cluster has a ${l.isLearner ? 'pending learner' : 'member'} "${l.name || '(not started)'}" (id ${l.id}, peer URL ${l.peerURLs.join(',')}) that the spec does not list: add it to the spec${l.isLearner ? ', or remove it (etcdctl member remove ' + l.id + ')' : ''} first`);
      }
      add.forEach((m, i) => {
        const byName = live.find((x) => x.name === m.name);
        if (byName && !byName.peerURLs.some((u) => m.peerURLs.includes(u))) problems.push(`add[${i}].name: "${m.name}" is already the name of live member ${byName.id}`);
      });

      // Hosts: reachable with their pinned keys; files where the layout says.
      const hostProblem = (e: unknown, who: string) => {
        if (e instanceof SshError && (e.kind === 'host-key-mismatch' || e.kind === 'auth')) problems.push(`${who}: ${e.message}`);
        else throw e; // unreachable or timed out: retryable
      };
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
      if (problems.length) throw ApplicationFailure.nonRetryable(`scale-out refused before any change:\n${problems.map((p) => `  - ${p}`).join('\n')}`, 'InvalidInput');

      const from = spec.members.length;
      const to = from + add.length;
      const warnings: string[] = [];
      if (to % 2 === 0) warnings.push(`the target size ${to} is even: it tolerates ${to - quorum(to)} failure(s), as ${to - 1} members would, with a larger quorum (${quorum(to)})`);
      return { from, to, batches: add.map((m) => ({ member: m.name, address: m.address })), warnings, adoptedLearners: adopted };
    },
  };
}
