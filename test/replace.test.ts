// Integration: replaceMember on real etcd, real sshd, real TLS, a real Temporal dev server. The
// member list is sampled every ~100 ms through the members that stay (I1: at most one learner; a
// new member is a learner before it votes; with add-first the voters never drop below the size
// at the start), pids come from the bed's pidfiles (I2), env files are read on the hosts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ReplaceMemberResult } from '../client';
import { parseEnvFile } from '../activities/envfile';
import { type ClusterSpec, memberPaths } from '../spec/cluster';
import type { ReplaceMemberPolicyInput } from '../spec/operations';
import { Bed } from '../testbed';
import { LivenessSampler } from '../testbed/liveness';
import { MembershipSampler, causeChain, recordHistory, specFor, stackAndBeds, waitFor } from './helpers';

describe('replaceMember', () => {
  const suite = stackAndBeds();
  const freshBed = (hosts: number) => suite.freshBed({ hosts, members: 3 });
  const initialCluster = (spec: ClusterSpec, name: string) =>
    (parseEnvFile(readFileSync(memberPaths(spec, name).envFile, 'utf8')).ETCD_INITIAL_CLUSTER ?? '')
      .split(',')
      .map((x) => x.split('=')[0]!)
      .sort();
  /** The spec of the cluster as it is now (its live members, in host order). */
  const liveSpec = async (b: Bed): Promise<ClusterSpec> => {
    return specFor(b, (await b.observe()).members.map((m) => m.name));
  };

  /** Replaces `old` by `neu` with samplers on; checks what every completed replacement must hold. */
  async function replaceAndCheck(b: Bed, spec: ClusterSpec, old: string, neu: string, policy: ReplaceMemberPolicyInput, record: string) {
    const staying = spec.members.map((m) => m.name).filter((n) => n !== old);
    const pidsBefore = Object.fromEntries(staying.map((n) => [n, b.etcdPid(n)]));
    for (const n of staying) assert.ok(pidsBefore[n] !== null, `${n} has no pid before: nothing to compare`);
    const stayingURLs = spec.members.filter((m) => staying.includes(m.name)).flatMap((m) => m.clientURLs);
    const membership = new MembershipSampler(stayingURLs, b.etcdCredentials);
    const live = new LivenessSampler(
      spec.members.filter((m) => staying.includes(m.name)).map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })),
      b.etcdCredentials,
      (n) => b.etcdPid(n),
    );
    let result: ReplaceMemberResult;
    try {
      await new Promise((r) => setTimeout(r, 300));
      const op = await suite.stack.steward.startReplaceMember({ spec, replace: old, with: Bed.memberInput(b.host(neu)), policy });
      result = await op.result();
      await recordHistory(op.handle, record, suite.stack.temporal.address);
    } finally {
      await membership.stop();
      await live.stop();
    }
    assert.equal(result.outcome, 'completed');
    const after = [...staying, neu].sort();
    assert.deepEqual([...result.members].sort(), after);
    assert.ok(result.removed && result.added);
    assert.ok(membership.samples.length >= 10, `only ${membership.samples.length} member-list samples (${membership.failures} failed: ${membership.lastError})`);
    assert.ok(membership.maxLearners() <= 1, `${membership.maxLearners()} learners at once (I1)`);
    const initialPeers = spec.members.map((m) => m.peerURLs.join(','));
    assert.deepEqual(membership.addedAsVoters(initialPeers), [], 'a member became a voter without being a learner first');
    assert.ok(membership.samples.some((s) => s.some((m) => m.isLearner && m.peerURLs.includes(Bed.memberInput(b.host(neu)).peerURLs[0]!))), `${neu} was never seen as a learner`);
    for (const n of staying) {
      assert.equal(b.etcdPid(n), pidsBefore[n], `${n} was restarted (I2)`);
      assert.deepEqual([...new Set(live.samples.filter((s) => s.member === n).map((s) => s.pid))], [pidsBefore[n]], `${n}'s pid changed during the replacement`);
    }
    for (const n of after) assert.deepEqual(initialCluster(spec, n), after, `${n}'s ETCD_INITIAL_CLUSTER`);
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    assert.deepEqual(o.members.map((m) => m.name).sort(), after);
    assert.equal(o.learners, 0);
    return { result, membership };
  }

  it('a dead member (etcd and sshd stopped) in a 3-member cluster: add-first is refused on etcd 3.4, auto removes it first, then the new member joins as a learner', async () => {
    const b = await freshBed(4);
    await b.stopEtcd('etcd2');
    await b.stopSshd('etcd2');
    try {
      await waitFor('etcd2 seen down', async () => (await b.observe()).statuses.some((s) => s.name === 'etcd2' && !s.ok));
      const before = (await b.observe()).members.map((m) => m.id).sort();
      const refused = await suite.stack.steward.startReplaceMember({ spec: b.spec, replace: 'etcd2', with: Bed.memberInput(b.host('etcd4')), policy: { strategy: 'add-first' } });
      await assert.rejects(refused.result(), (e: unknown) =>
        /replacement refused before any change:\n {2}- add-first cannot work while etcd2 does not answer: etcd 3\.4\.\d+ refuses any MemberAdd, learners included, while a voting member is unreachable.*Nothing was changed/s.test(causeChain(e)),
      );
      await recordHistory(refused.handle, 'replaceMember-refused-add-first', suite.stack.temporal.address);
      assert.deepEqual((await b.observe()).members.map((m) => m.id).sort(), before, 'the refused replacement changed the member list');

      const { result, membership } = await replaceAndCheck(b, b.spec, 'etcd2', 'etcd4', {}, 'replaceMember-dead-member-remove-first');
      assert.equal(result.strategy, 'remove-first');
      assert.match(result.why ?? '', /etcd2 does not answer: etcd 3\.4\.\d+ refuses any MemberAdd/);
      assert.equal(result.hosts[0]?.cleaned, false);
      assert.match(result.hosts[0]!.note, /its host could not be cleaned/);
      // observed: etcd2 left the member list before etcd4 appeared in it
      const etcd2Peer = b.spec.members.find((m) => m.name === 'etcd2')!.peerURLs[0]!;
      const etcd4Peer = Bed.memberInput(b.host('etcd4')).peerURLs[0]!;
      const gone = membership.samples.findIndex((s) => !s.some((m) => m.peerURLs.includes(etcd2Peer)));
      const joined = membership.samples.findIndex((s) => s.some((m) => m.peerURLs.includes(etcd4Peer)));
      assert.ok(gone >= 0 && joined >= 0 && gone <= joined, `etcd2 gone at sample ${gone}, etcd4 in at sample ${joined}`);
    } finally {
      await b.startSshd('etcd2');
    }
  });

  it('a healthy member, the leader: added first, so the cluster never has fewer than 3 voters; leadership moves before the old one leaves', async () => {
    const b = await freshBed(5);
    const o = await b.observe();
    const leader = o.statuses.find((s) => s.id === o.leaderId)!.name;
    const { result, membership } = await replaceAndCheck(b, b.spec, leader, 'etcd4', {}, 'replaceMember-healthy-add-first');
    assert.equal(result.strategy, 'add-first');
    assert.deepEqual(result.leaderMoves.map((m) => m.from), [leader]);
    assert.ok(result.hosts[0]?.cleaned, result.hosts[0]?.note);
    const fewest = Math.min(...membership.samples.map((s) => s.filter((m) => !m.isLearner).length));
    assert.equal(fewest, 3, `the voters dropped to ${fewest} during an add-first replacement`);
    assert.equal(Math.max(...membership.samples.map((s) => s.filter((m) => !m.isLearner).length)), 4, 'the new member was never a voter beside the old one');
  });

  it('an abort while the first half waits for approval changes nothing', async () => {
    const b = suite.bed!;
    const spec = await liveSpec(b);
    const pids = spec.members.map((m) => b.etcdPid(m.name));
    const victim = spec.members[0]!.name;
    const op = await suite.stack.steward.startReplaceMember({ spec, replace: victim, with: Bed.memberInput(b.host('etcd5')), policy: { approval: 'first-batch' } });
    await waitFor('approval of batch 1', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1 (add etcd5)')));
    const ab = await op.abort({ reason: 'test: not today', by: 'test' });
    assert.deepEqual(ab.willRollBack, []);
    const r = await op.result();
    await recordHistory(op.handle, 'replaceMember-abort-at-approval', suite.stack.temporal.address);
    assert.equal(r.outcome, 'aborted');
    assert.equal(r.removed, false);
    assert.equal(r.added, false);
    const o = await b.observe();
    assert.deepEqual(o.members.map((m) => m.name).sort(), spec.members.map((m) => m.name).sort());
    assert.deepEqual(o.problems, []);
    assert.deepEqual(spec.members.map((m) => b.etcdPid(m.name)), pids, 'a member was restarted');
  });
});
