// The etcd version matrix (npm run test:versions): every operation on each etcd version, one bed
// per version, with the invariant checks made from outside the workflow: I1 (one learner at most,
// none voting before it was a learner), I2 (no member restarted that should not be: pids), I3 (a
// rolling restart takes at most one member down: each member's Status every ~100 ms), I5 (every
// member's env file lists exactly the members). The versions: $STEWARD_TEST_ETCD_VERSIONS
// (comma-separated; default 3.5,3.6,3.7), each built once into the cache (testbed/etcdVersions.ts).
// The full fault matrix runs on the default version (npm run test:faults).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEnvFile } from '../../activities/envfile';
import { type ClusterSpec, expand, memberPaths } from '../../spec/cluster';
import { Bed } from '../../testbed';
import { ETCD_RELEASES, resolveEtcd } from '../../testbed/etcdVersions';
import { LivenessSampler } from '../../testbed/liveness';
import { MembershipSampler, startStack, type Stack } from '../helpers';

const VERSIONS = (process.env.STEWARD_TEST_ETCD_VERSIONS ?? '3.5,3.6,3.7').split(',').map((v) => v.trim()).filter(Boolean);

for (const version of VERSIONS) {
  describe(`etcd ${version}: every operation`, () => {
    let stack: Stack;
    let bed: Bed;
    const expected = ETCD_RELEASES[version] ?? version;
    /** The cluster as it stands (the operations below change it in turn). */
    let members: string[] = ['etcd1', 'etcd2', 'etcd3'];
    /** Where the CA lives (moved, as the scale-in's warning says to, when its host is removed). */
    let caHost = 'etcd1';
    const spec = (): ClusterSpec => ({ ...bed.spec, ca: { ...bed.spec.ca, host: caHost }, members: bed.hosts.filter((h) => members.includes(h.name)).map((h) => Bed.memberInput(h)) });
    const urls = (names: string[]) => spec().members.filter((m) => names.includes(m.name)).flatMap((m) => m.clientURLs);

    before(async () => {
      const built = Date.now();
      await resolveEtcd(version, (l) => console.log(`  ${l}`)); // builds it once, outside the first test's time
      if (Date.now() - built > 1_000) console.log(`  etcd ${version} ready after ${((Date.now() - built) / 1000).toFixed(1)} s`);
      stack = await startStack();
      bed = await Bed.up({ hosts: 6, members: 3, etcdVersion: version });
      await stack.startWorker(bed);
    });
    after(async () => {
      await stack?.stop();
      await bed?.down();
    });

    /** I5: every member's ETCD_INITIAL_CLUSTER lists exactly `names`; the cluster is healthy with them as voters, on the version asked for. */
    async function checkEnd(names: string[]) {
      const o = await bed.observe();
      assert.deepEqual(o.problems, [], 'the cluster is not healthy');
      assert.deepEqual(o.members.filter((m) => !m.isLearner).map((m) => m.name).sort(), [...names].sort());
      assert.equal(o.learners, 0);
      for (const s of o.statuses) assert.equal(s.version, expected, `${s.name} reports etcd ${s.version}`);
      for (const n of names) {
        const v = parseEnvFile(readFileSync(memberPaths(bed.spec, n).envFile, 'utf8')).ETCD_INITIAL_CLUSTER ?? '';
        assert.deepEqual(v.split(',').map((x) => x.split('=')[0]).sort(), [...names].sort(), `${n}'s ETCD_INITIAL_CLUSTER (I5)`);
      }
    }

    /** Runs `f` with the member list sampled through `through` and checks I1 and I2 for `keep`. */
    async function withInvariants<T>(keep: string[], through: string[], f: () => Promise<T>): Promise<T> {
      const pids = Object.fromEntries(keep.map((n) => [n, bed.etcdPid(n)]));
      for (const n of keep) assert.ok(pids[n] !== null, `${n} has no pid before: nothing to compare`);
      const sampler = new MembershipSampler(urls(through), bed.etcdCredentials);
      const initial = spec().members.map((m) => m.peerURLs.join(','));
      let r: T;
      try {
        r = await f();
      } finally {
        await sampler.stop();
      }
      assert.ok(sampler.samples.length >= 10, `only ${sampler.samples.length} member-list samples (${sampler.failures} failed: ${sampler.lastError})`);
      assert.ok(sampler.maxLearners() <= 1, `${sampler.maxLearners()} learners at once (I1)`);
      assert.deepEqual(sampler.addedAsVoters(initial), [], 'a member voted without being a learner first (I1)');
      for (const n of keep) assert.equal(bed.etcdPid(n), pids[n], `${n} was restarted (I2)`);
      return r;
    }

    it(`the bed runs etcd ${expected}`, async () => {
      await checkEnd(members);
    });

    it('scaleOut 3 → 5: learners one at a time, no existing member restarted, env files list the five', async () => {
      const r = await withInvariants(members, members, async () => {
        const op = await stack.steward.startScaleOut({ spec: spec(), add: ['etcd4', 'etcd5'].map((n) => Bed.memberInput(bed.host(n))) });
        return op.result();
      });
      assert.equal(r.outcome, 'completed');
      members = ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5'];
      await checkEnd(members);
    });

    it('rollingRestart of the five: one member down at most (I3), every pid changed, the leader last', async () => {
      const pids = Object.fromEntries(members.map((n) => [n, bed.etcdPid(n)]));
      const live = new LivenessSampler(spec().members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })), bed.etcdCredentials, (n) => bed.etcdPid(n));
      let r;
      try {
        const op = await stack.steward.startRollingRestart({ spec: spec(), reason: `version matrix ${version}` });
        r = await op.result();
      } finally {
        await live.stop();
      }
      assert.equal(r.outcome, 'completed');
      const worst = live.maxDownAtOnce();
      assert.ok(worst.count >= 1, 'no member was ever seen down: the restarts were not observed');
      assert.ok(worst.count <= 1, `${worst.count} members down at once (I3): ${worst.members.join(', ')}`);
      for (const n of members) assert.notEqual(bed.etcdPid(n), pids[n], `${n}'s pid did not change`);
      assert.equal(r.leaderMoves.length, 1);
      await checkEnd(members);
    });

    it('scaleIn 5 → 3 removing the leader and etcd5: leadership moved first, no member that stays restarted', async () => {
      const o = await bed.observe();
      const leader = o.statuses.find((s) => s.id === o.leaderId)!.name;
      const remove = [...new Set([leader, 'etcd5'])].slice(0, 2);
      if (remove.length < 2) remove.push('etcd4');
      const staying = members.filter((n) => !remove.includes(n));
      const r = await withInvariants(staying, staying, async () => {
        const op = await stack.steward.startScaleIn({ spec: spec(), remove });
        return op.result();
      });
      assert.equal(r.outcome, 'completed');
      assert.deepEqual(r.leaderMoves.map((m) => m.from), [leader]);
      members = staying;
      await checkEnd(members);
      if (remove.includes(caHost)) {
        // what the scale-in's warning tells the operator: copy the CA to a member that stays, and say so in the spec
        assert.ok(r.warnings.some((w) => w.includes(`the CA lives on ${caHost}`)), r.warnings.join('\n'));
        const [from, to] = [expand(bed.spec.ca.dir, caHost), expand(bed.spec.ca.dir, staying[0]!)];
        mkdirSync(to, { recursive: true });
        for (const f of ['ca.pem', 'ca-key.pem']) copyFileSync(join(from, f), join(to, f));
        caHost = staying[0]!;
      }
    });

    it('replaceMember of a healthy member: added first, no other member restarted', async () => {
      const old = members.find((n) => n !== caHost)!; // the CA stays where it is
      const staying = members.filter((n) => n !== old);
      const r = await withInvariants(staying, staying, async () => {
        const op = await stack.steward.startReplaceMember({ spec: spec(), replace: old, with: Bed.memberInput(bed.host('etcd6')) });
        return op.result();
      });
      assert.equal(r.outcome, 'completed');
      assert.equal(r.strategy, 'add-first');
      members = [...staying, 'etcd6'];
      await checkEnd(members);
    });
  });
}
