// Every activity run twice in a row against the real bed ends in the same state as run once
// (what happens when a worker dies after doing the work but before reporting it). Twice over:
// logged in as root, and as an unprivileged user with sudo through a bastion (the files written
// must then have the same modes and owners as when root wrote them).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities, type Activities } from '../activities';
import { memberPaths, type Member } from '../spec/cluster';
import { parseScaleInInput, parseScaleOutInput } from '../spec/operations';
import { Bed } from '../testbed';
import { activityRunner } from '../testbed/run-activity';
import { waitFor } from './helpers';

/** Mode, owner and group of every file the activities wrote, by path under the bed, per access. */
const written: Record<string, Record<string, string>> = {};

for (const access of ['root', 'sudo'] as const) {
  describe(`activities are idempotent (each run twice on the real bed, ${access === 'root' ? 'as root' : 'as etcd-steward with sudo through a bastion'})`, () => {
    let bed: Bed;
    let acts: Activities;
    let voters: Member[];
    const env = new MockActivityEnvironment();
    /** Runs an activity as a worker would, waiting out BENIGN states as the retry policy does. */
    const run = activityRunner(() => acts, env);

    /** Everything an activity may change: members, env files, certificates, keys, data dirs, processes. */
    async function snapshot() {
      const o = await bed.observe();
      const files: Record<string, string | null> = {};
      for (const h of bed.hosts) {
        const p = memberPaths(bed.spec, h.name);
        for (const f of [p.envFile, p.cert, p.key, p.caCert]) {
          if (!existsSync(f)) {
            files[f] = null;
            continue;
          }
          const st = statSync(f);
          const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
          files[f] = `${createHash('sha256').update(readFileSync(f)).digest('hex')} ${meta}`;
          (written[access] ??= {})[relative(bed.dir, f)] = meta;
        }
        files[`${p.dataDir} (entries)`] = existsSync(p.dataDir) ? String(readdirSync(p.dataDir).length) : null;
      }
      return { members: o.members.map((m) => `${m.id} ${m.name} ${m.isLearner ? 'learner' : 'voter'} ${m.peerURLs.join(',')}`).sort(), files, pids: bed.etcdProcesses() };
    }

    /**
     * Runs an activity once, snapshots, runs it again, and requires the same state. Returns both
     * results. `settled`, if given, is awaited after each run before the snapshot: what etcd does on
     * its own after the activity returned (a started member publishing its name) is not the retry's doing.
     */
    async function twice<K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>) {
      return twiceSettled(name, async () => undefined, ...args);
    }
    async function twiceSettled<K extends keyof Activities>(name: K, settled: () => Promise<unknown>, ...args: Parameters<Activities[K]>) {
      const first = await run(name, ...args);
      await settled();
      const once = await snapshot();
      const second = await run(name, ...args);
      await settled();
      const again = await snapshot();
      assert.deepEqual(again, once, `${String(name)} run twice left a different state than once`);
      return [first, second] as const;
    }

    before(async () => {
      bed = await Bed.up({ hosts: 5, members: 3, ...(access === 'sudo' ? { access, bastion: true } : {}) });
      acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
      voters = [...bed.spec.members];
    });
    after(async () => {
      await bed?.down();
    });
    const member = (n: string) => Bed.memberInput(bed.host(n));
    const spec = () => ({ ...bed.spec, members: [...voters] });
    const ref = (n: string) => ({ endpoints: voters.flatMap((m) => m.clientURLs), member: member(n) });

    it('observeCluster and preflightScaleOut only read', async () => {
      await twice('observeCluster', { endpoints: bed.endpoints });
      const [a, b] = await twice('preflightScaleOut', parseScaleOutInput({ spec: bed.spec, add: [member('etcd4')] }));
      assert.deepEqual(a, b);
    });

    it('the scale-out steps for etcd4: cert, join, config-sync, start, catch-up, promote', async () => {
      const [c1, c2] = await twice('issueCert', { spec: spec(), member: member('etcd4') });
      assert.equal(c1.issued, true);
      assert.equal(c2.issued, false, 'a valid certificate is kept');
      assert.equal(c2.fingerprint, c1.fingerprint);

      const [j1, j2] = await twice('addLearner', ref('etcd4'));
      assert.equal(j1.existed, false);
      assert.equal(j2.existed, true);
      assert.equal(j2.id, j1.id);

      const target = [...voters, member('etcd4')];
      const [s1, s2] = await twice('syncConfig', { spec: spec(), members: target, joining: 'etcd4' });
      assert.deepEqual(s1.changed.sort(), ['etcd1', 'etcd2', 'etcd3', 'etcd4']);
      assert.deepEqual(s2.changed, []);

      // A started learner publishes its name to the member list a moment after it listens.
      const published = () => waitFor('etcd4 to publish its name', async () => (await bed.observe()).members.some((m) => m.name === 'etcd4'), 30_000);
      await twiceSettled('startMember', published, { spec: spec(), member: member('etcd4') });
      assert.notEqual(bed.etcdPid('etcd4'), null);

      const [u1, u2] = await twice('awaitCatchUp', { ...ref('etcd4'), maxLag: 100 });
      assert.equal(u2.id, u1.id);

      const [p1, p2] = await twice('promoteLearner', ref('etcd4'));
      assert.equal(p1.alreadyVoter, false);
      assert.equal(p2.alreadyVoter, true);
      voters.push(member('etcd4'));
      assert.equal((await bed.waitHealthy(30_000)).voters, 4);
    });

    it('the compensation steps for etcd5: remove the learner, retire the host, restore env files, stop', async () => {
      await run('issueCert', { spec: spec(), member: member('etcd5') });
      await run('addLearner', ref('etcd5'));
      await run('syncConfig', { spec: spec(), members: [...voters, member('etcd5')], joining: 'etcd5' });
      await run('startMember', { spec: spec(), member: member('etcd5') });

      await twice('stopMember', { spec: spec(), member: member('etcd5') });
      assert.equal(bed.etcdPid('etcd5'), null);
      const [r1, r2] = await twice('removeLearner', ref('etcd5'));
      assert.equal(r1.removed, true);
      assert.equal(r2.removed, false);
      await twice('retireHost', { spec: spec(), member: member('etcd5') });
      const p = memberPaths(bed.spec, 'etcd5');
      assert.equal(existsSync(p.envFile), false);
      assert.ok(!existsSync(p.dataDir) || readdirSync(p.dataDir).length === 0);
      const [s1, s2] = await twice('syncConfig', { spec: spec(), members: voters });
      assert.deepEqual(s1.changed.sort(), ['etcd1', 'etcd2', 'etcd3', 'etcd4']);
      assert.deepEqual(s2.changed, []);
      const o = await bed.waitHealthy(30_000);
      assert.equal(o.voters, 4);
      assert.equal(o.learners, 0);
    });

    it('compensation never removes a voting member', async () => {
      await assert.rejects(run('removeLearner', ref('etcd4')), /is a voting member; compensation removes learners only/);
      assert.equal((await bed.observe()).voters, 4);
    });

    it('the scale-in steps for etcd4: preflight only reads; remove, retire (keep), config-sync', async () => {
      const staying = voters.filter((m) => m.name !== 'etcd4');
      const [a, b] = await twice('preflightScaleIn', parseScaleInInput({ spec: spec(), remove: ['etcd4'] }));
      assert.deepEqual(a, b);
      assert.equal(a.to, 3);
      const o = await bed.observe();
      if (o.statuses.find((x) => x.id === o.leaderId)?.name === 'etcd4') await run('moveLeader', { endpoints: staying.flatMap((m) => m.clientURLs), to: staying[0]! });
      const [r1, r2] = await twice('removeMember', { endpoints: staying.flatMap((m) => m.clientURLs), member: member('etcd4') });
      assert.equal(r1.removed, true);
      assert.equal(r2.removed, false, 'the second run finds etcd4 gone');
      const stamp = '20261126T120000Z';
      const [t1, t2] = await twice('retireMember', { spec: spec(), member: member('etcd4'), retire: 'keep', stamp });
      assert.deepEqual(t1, t2);
      const p = memberPaths(bed.spec, 'etcd4');
      assert.equal(bed.etcdPid('etcd4'), null);
      assert.equal(existsSync(p.dataDir), false);
      assert.ok(readdirSync(`${p.dataDir}.removed-${stamp}`).length > 0, 'the data dir was moved aside whole');
      assert.equal(readdirSync(dirname(p.dataDir)).filter((f) => f.includes('.removed-')).length, 1, 'one moved-aside data dir, not two');
      assert.equal(existsSync(p.envFile), false);
      assert.ok(existsSync(`${p.envFile}.removed-${stamp}`));
      voters = staying;
      const [s1, s2] = await twice('syncConfig', { spec: spec(), members: voters });
      assert.deepEqual(s1.changed.sort(), ['etcd1', 'etcd2', 'etcd3']);
      assert.deepEqual(s2.changed, []);
      const h = await bed.waitHealthy(30_000);
      assert.equal(h.voters, 3);
    });
  });
}

it('files written under sudo have the modes and owners root gives them', () => {
  assert.ok(written.root && written.sudo, 'both runs recorded their files');
  assert.ok(Object.keys(written.sudo).length >= 15, `only ${Object.keys(written.sudo).length} files seen`);
  assert.deepEqual(written.sudo, written.root);
});
