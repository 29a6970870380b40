// Integration: scaleIn on real etcd, real sshd, real TLS, a real Temporal dev server. Every claim
// is checked from outside the workflow: the member list and each member's view of the leader
// sampled every ~100 ms, pids from the bed's pidfiles, env files and data dirs read on the hosts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { describe, it } from 'node:test';
import { type ScaleInResult, SpecError } from '../client';
import { parseEnvFile } from '../activities/envfile';
import { sshRun } from '../activities/ssh';
import { type ClusterSpec, memberPaths } from '../spec/cluster';
import { Bed } from '../testbed';
import { LivenessSampler } from '../testbed/liveness';
import { MembershipSampler, causeChain, recordHistory, specFor, stackAndBeds, waitFor } from './helpers';

describe('scaleIn', () => {
  const suite = stackAndBeds();
  const freshBed = (members: number) => suite.freshBed({ hosts: members, members });
  const leaderOf = async (b: Bed, spec: ClusterSpec) => {
    const o = await b.observe();
    const s = o.statuses.find((x) => x.id === o.leaderId);
    assert.ok(s && spec.members.some((m) => m.name === s.name), `no leader among ${spec.members.map((m) => m.name).join(', ')}: ${o.problems.join('; ')}`);
    return { name: s.name, id: s.id };
  };
  /** The member names ETCD_INITIAL_CLUSTER lists in a member's env file, as read on its host. */
  const initialCluster = (b: Bed, spec: ClusterSpec, name: string) =>
    (parseEnvFile(readFileSync(memberPaths(spec, name).envFile, 'utf8')).ETCD_INITIAL_CLUSTER ?? '')
      .split(',')
      .map((x) => x.split('=')[0]!)
      .sort();

  /** Runs a scale-in with samplers on, checks what every completed scale-in must hold, and returns the result and the samples. */
  async function scaleInAndCheck(b: Bed, spec: ClusterSpec, remove: string[], record?: string) {
    const staying = spec.members.map((m) => m.name).filter((n) => !remove.includes(n));
    const pidsBefore = Object.fromEntries(staying.map((n) => [n, b.etcdPid(n)]));
    for (const n of staying) assert.ok(pidsBefore[n] !== null, `${n} has no pid before the scale-in: nothing to compare`);
    const leaderBefore = await leaderOf(b, spec);
    const live = new LivenessSampler(
      spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })),
      b.etcdCredentials,
      (n) => b.etcdPid(n),
    );
    // the member list as the members that stay report it
    const membership = new MembershipSampler(
      spec.members.filter((m) => staying.includes(m.name)).flatMap((m) => m.clientURLs),
      b.etcdCredentials,
    );
    let result: ScaleInResult;
    try {
      await new Promise((r) => setTimeout(r, 300)); // samples from before anything changes
      const op = await suite.stack.steward.startScaleIn({ spec, remove });
      result = await op.result();
      if (record) await recordHistory(op.handle, record, suite.stack.temporal.address);
    } finally {
      await live.stop();
      await membership.stop();
    }
    assert.equal(result.outcome, 'completed');
    assert.deepEqual([...result.members].sort(), [...staying].sort());
    assert.deepEqual([...result.removed].sort(), [...remove].sort());
    assert.ok(membership.samples.length >= 10, `only ${membership.samples.length} member-list samples (${membership.failures} failed: ${membership.lastError})`);
    assert.equal(membership.maxLearners(), 0, 'a scale-in adds no learner');
    // I2: no member that stays was restarted (pidfiles, and every liveness sample's pid)
    for (const n of staying) {
      assert.equal(b.etcdPid(n), pidsBefore[n], `${n} was restarted`);
      const pids = new Set(live.samples.filter((s) => s.member === n).map((s) => s.pid));
      assert.deepEqual([...pids], [pidsBefore[n]], `${n}'s pid during the scale-in: ${[...pids].join(', ')}`);
    }
    // every staying member's env file lists exactly the staying members
    for (const n of staying) assert.deepEqual(initialCluster(b, spec, n), [...staying].sort(), `${n}'s ETCD_INITIAL_CLUSTER`);
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, staying.length);
    assert.deepEqual(o.members.map((m) => m.name).sort(), [...staying].sort());
    return { result, live, membership, leaderBefore, staying };
  }

  it('5 → 3 removing the leader and a follower: the follower first, leadership moved before the leader leaves; nothing that stays restarts', async () => {
    const b = await freshBed(5);
    const leader = await leaderOf(b, b.spec);
    const follower = b.spec.members.map((m) => m.name).filter((n) => n !== leader.name).at(-1)!;
    const { result, live, membership, staying } = await scaleInAndCheck(b, b.spec, [leader.name, follower], 'scaleIn-5-to-3-with-leader');

    assert.deepEqual(result.removed, [follower, leader.name], 'a follower before the leader');
    assert.deepEqual(result.leaderMoves.map((m) => m.from), [leader.name]);
    // observed: when did the leader leave the member list, and who led just before?
    const leaderPeer = b.spec.members.find((m) => m.name === leader.name)!.peerURLs[0]!;
    const goneAt = membership.times[membership.samples.findIndex((s) => !s.some((m) => m.peerURLs.includes(leaderPeer)))];
    assert.ok(goneAt !== undefined, 'the leader never left the member list');
    const seenBefore = live.samples.filter((s) => s.up && staying.includes(s.member) && s.at < goneAt);
    assert.ok(seenBefore.some((s) => s.leaderId === leader.id), `no sample saw ${leader.name} lead before its removal: leadership change not observed`);
    assert.notEqual(seenBefore.at(-1)?.leaderId, leader.id, `the members that stay still saw ${leader.name} as leader right before its MemberRemove`);
    // the removed members' hosts: etcd stopped, data dir and env file moved aside (retire: keep)
    for (const n of [leader.name, follower]) {
      assert.equal(b.etcdPid(n), null, `${n}'s etcd still runs`);
      const p = memberPaths(b.spec, n);
      assert.ok(!existsSync(p.dataDir), `${n}'s data dir ${p.dataDir} is still in place`);
      const aside = readdirSync(dirname(p.dataDir)).filter((f) => f.startsWith(`${basename(p.dataDir)}.removed-`));
      assert.equal(aside.length, 1, `${n}: moved-aside data dirs: ${aside.join(', ')}`);
      assert.ok(readdirSync(`${dirname(p.dataDir)}/${aside[0]}`).length > 0, `${n}'s moved-aside data dir is empty`);
      assert.ok(!existsSync(p.envFile), `${n}'s env file is still in place: its service could start it again`);
      const h = result.hosts.find((x) => x.member === n)!;
      assert.ok(h.cleaned, `${n}: ${h.note}`);
    }
  });

  it('removes a dead member (etcd and sshd stopped) through the others; says its host could not be cleaned', async () => {
    const b = suite.bed!;
    const three = specFor(b, (await b.observe()).members.map((m) => m.name));
    assert.equal(three.members.length, 3, 'the cluster the previous test left');
    const leader = await leaderOf(b, three);
    const dead = three.members.map((m) => m.name).find((n) => n !== leader.name)!;
    await b.stopEtcd(dead);
    await b.stopSshd(dead);
    try {
      await waitFor(`${dead} seen down`, async () => (await b.observe()).statuses.some((s) => s.name === dead && !s.ok));
      const { result } = await scaleInAndCheck(b, three, [dead], 'scaleIn-dead-member');
      const h = result.hosts.find((x) => x.member === dead)!;
      assert.equal(h.cleaned, false);
      assert.match(h.note, /its host could not be cleaned \(.*(cannot reach sshd|ECONNREFUSED|connect).*\): stop etcd there and move aside its data dir/);
      assert.ok(result.warnings.some((w) => w.includes(`${dead} does not answer now`)), result.warnings.join('\n'));
      assert.ok(result.warnings.some((w) => /the target size 2 is even/.test(w)), result.warnings.join('\n'));
      assert.deepEqual(result.leaderMoves, []);
    } finally {
      await b.startSshd(dead);
    }
  });

  it('refuses before any change: a removal that leaves no healthy quorum, the last member, an unknown member', async () => {
    const b = await freshBed(3);
    await b.stopEtcd('etcd3');
    await waitFor('etcd3 seen down', async () => (await b.observe()).statuses.some((s) => s.name === 'etcd3' && !s.ok));
    const before = (await b.observe()).members.map((m) => m.id).sort();

    const op = await suite.stack.steward.startScaleIn({ spec: b.spec, remove: ['etcd1', 'etcd2'] });
    await assert.rejects(op.result(), (e: unknown) =>
      /scale-in refused before any change:\n {2}- removing etcd1, etcd2 would leave 1 voting member\(s\) \(etcd3\) of which 0 answer\(s\) now \(down: etcd3\), below their quorum of 1.*Nothing was changed/s.test(causeChain(e)),
    );
    await recordHistory(op.handle, 'scaleIn-refused-quorum', suite.stack.temporal.address);
    await assert.rejects(suite.stack.steward.startScaleIn({ spec: b.spec, remove: ['etcd1', 'etcd2', 'etcd3'] }), (e: unknown) => e instanceof SpecError && /cannot remove its last member/.test(e.message));
    await assert.rejects(suite.stack.steward.startScaleIn({ spec: b.spec, remove: ['etcd7'] }), (e: unknown) => e instanceof SpecError && /remove\[0\]: "etcd7" is not a member of cluster bed/.test(e.message));
    assert.deepEqual((await b.observe()).members.map((m) => m.id).sort(), before, 'the member list changed');

    await sshRun(b.host('etcd3').ssh, b.sshIdentity, b.spec.service.start.replaceAll('{name}', 'etcd3'));
    await b.waitHealthy(30_000);
  });

  it('an abort while the first batch waits for approval removes nothing', async () => {
    const b = suite.bed!;
    const pids = b.spec.members.map((m) => b.etcdPid(m.name));
    const op = await suite.stack.steward.startScaleIn({ spec: b.spec, remove: ['etcd3'], policy: { approval: 'first-batch' } });
    await waitFor('approval of batch 1', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1 (etcd3)')));
    const ab = await op.abort({ reason: 'test: changed our mind', by: 'test' });
    assert.deepEqual(ab.willRollBack, [], 'nothing to roll back before a removal');
    const r = await op.result();
    await recordHistory(op.handle, 'scaleIn-abort-at-approval', suite.stack.temporal.address);
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(r.removed, []);
    assert.deepEqual(r.notRemoved, ['etcd3']);
    const o = await b.observe();
    assert.equal(o.voters, 3);
    assert.deepEqual(o.problems, []);
    assert.deepEqual(b.spec.members.map((m) => b.etcdPid(m.name)), pids, 'a member was restarted');
  });
});
