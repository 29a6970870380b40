// Rolling upgrade (npm run test:versions): a rolling restart with a binary change, on real etcd
// builds. 3.5 → 3.6 under write load, one member at a time; and the upgrades etcd does not
// support refused before anything changes: a skipped minor (3.4 → 3.6, 3.5 → 3.7) and a 3.5
// older than the 3.6 upgrade guide's minimum (3.5.21 → 3.6). Every claim is observed from outside
// the workflow: pids from the bed's pidfiles, each member's Status every ~100 ms (I3), the
// versions the members report, GET /version's cluster version, the writes the load saw.
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { before, describe, it } from 'node:test';
import { readVersions } from '../../activities/etcd';
import { expand } from '../../spec/cluster';
import { Bed } from '../../testbed';
import { ETCD_RELEASES, resolveEtcd } from '../../testbed/etcdVersions';
import { LivenessSampler } from '../../testbed/liveness';
import { WriteLoad } from '../../testbed/load';
import { causeChain, recordHistory, stackAndBeds, waitFor } from '../helpers';

/** The 3.5 patch release older than the 3.6 upgrade guide's minimum that the refusal is shown on. */
const OLD_35 = '3.5.21';

describe('rolling upgrade: a rolling restart onto new etcd binaries', () => {
  const suite = stackAndBeds();
  const freshBed = (version: string) => suite.freshBed({ hosts: 3, members: 3, etcdVersion: version });
  const bins: Record<string, { etcd: string }> = {};

  before(async () => {
    for (const v of ['3.4', '3.5', '3.6', '3.7', OLD_35]) {
      const t0 = Date.now();
      bins[v] = await resolveEtcd(v, (l) => console.log(`  ${l}`)); // built once into the cache
      if (Date.now() - t0 > 1_000) console.log(`  etcd ${v} ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  });

  /** Puts `version`'s etcd on every host at <host root>/opt/etcd-v<full>/etcd, where an operator stages a download; returns that path's template. */
  function stage(b: Bed, version: string): string {
    const full = ETCD_RELEASES[version] ?? version;
    const template = b.spec.layout.etcdBinary.replace(/\/usr\/local\/bin\/etcd$/, `/opt/etcd-v${full}/etcd`);
    assert.notEqual(template, b.spec.layout.etcdBinary, 'the bed layout changed: cannot place the staged binary');
    for (const h of b.hosts) {
      const p = expand(template, h.name);
      mkdirSync(dirname(p), { recursive: true });
      symlinkSync(bins[version]!.etcd, p);
    }
    return template;
  }

  /** Starts an upgrade that must be refused before any change; checks the message and that no member was restarted. */
  async function refused(b: Bed, binary: string, message: RegExp) {
    const pids = b.spec.members.map((m) => b.etcdPid(m.name));
    assert.ok(pids.every((p) => p !== null), 'a member has no pid before: nothing to compare');
    const op = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: upgrade', binary });
    await assert.rejects(op.result(), (e: unknown) => {
      const chain = causeChain(e);
      assert.match(chain, /rolling restart refused before any change/);
      assert.match(chain, message);
      return true;
    });
    assert.deepEqual(b.spec.members.map((m) => b.etcdPid(m.name)), pids, 'a refused upgrade restarted a member');
    assert.deepEqual((await b.observe()).problems, []);
  }

  it(`3.5 → 3.6 under write load: one member at a time, each restarted onto ${ETCD_RELEASES['3.6']}, 0 failed writes, the cluster version 3.6 at the end`, async () => {
    const b = await freshBed('3.5');
    const to37 = stage(b, '3.7');
    await refused(b, to37, /the cluster runs etcd 3\.5 and the new binaries are 3\.7\.\d+: that skips 3\.6/);

    const binary = stage(b, '3.6');
    // a first member that does not start on the new binary (a setting 3.6 rejects): it runs its old binary and settings again, the upgrade stops there
    const before = Object.fromEntries(b.spec.members.map((m) => [m.name, b.etcdPid(m.name)]));
    const bad = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: upgrade that fails', binary, change: { set: { ETCD_MAX_LEARNERS: 'many' } } });
    await assert.rejects(bad.result(), (e: unknown) => /etcd exited right after start/.test(causeChain(e)) && /Started again on the previous binary with the previous values: etcd\d/.test(causeChain(e)));
    await recordHistory(bad.handle, 'rollingRestart-upgrade-fails-put-back', suite.stack.temporal.address);
    const back = await b.observe();
    assert.deepEqual(back.problems, []);
    assert.deepEqual(back.statuses.map((s) => s.version), back.statuses.map(() => ETCD_RELEASES['3.5']), 'a member still runs the new binary');
    const changed = b.spec.members.filter((m) => b.etcdPid(m.name) !== before[m.name]).map((m) => m.name);
    assert.equal(changed.length, 1, `members restarted by the failed upgrade: ${changed.join(', ')}`);
    assert.ok(readFileSync(expand(b.spec.layout.etcdBinary, changed[0]!)).equals(readFileSync(bins['3.5']!.etcd)), `${changed[0]} has not its 3.5 binary back`);

    const pids = Object.fromEntries(b.spec.members.map((m) => [m.name, b.etcdPid(m.name)]));
    const live = new LivenessSampler(b.spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })), b.etcdCredentials, (n) => b.etcdPid(n));
    const load = new WriteLoad({ endpoints: b.endpoints, credentials: b.etcdCredentials, rate: 100, maxDurationMs: 5 * 60_000 });
    load.start();
    let r;
    let report;
    try {
      await new Promise((res) => setTimeout(res, 500)); // writes from before anything changes
      const op = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: upgrade to 3.6', binary });
      r = await op.result();
      await recordHistory(op.handle, 'rollingRestart-upgrade-3.5-to-3.6', suite.stack.temporal.address);
      await new Promise((res) => setTimeout(res, 500)); // and from after
    } finally {
      report = await load.stop();
      await live.stop();
    }
    assert.equal(r.outcome, 'completed');
    // the writers: none failed (a write past its 5 s deadline counts as failed), and there were writes to count
    assert.ok(report.ok >= 100, `only ${report.ok} writes succeeded: the load did not run`);
    assert.equal(report.failed, 0, `${report.failed} writes failed: ${report.errors.join('; ')}`);
    // I3: one member down at most, and the restarts were seen
    const worst = live.maxDownAtOnce();
    assert.ok(worst.count >= 1, 'no member was ever seen down: the restarts were not observed');
    assert.ok(worst.count <= 1, `${worst.count} members down at once (I3): ${worst.members.join(', ')}`);
    // every member: a new process, reporting the new version; the old binary kept for an undo
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    for (const m of b.spec.members) {
      assert.notEqual(b.etcdPid(m.name), pids[m.name], `${m.name}'s pid did not change`);
      assert.equal(o.statuses.find((s) => s.name === m.name)?.version, ETCD_RELEASES['3.6'], `${m.name}'s version`);
      const installed = expand(b.spec.layout.etcdBinary, m.name);
      assert.ok(readFileSync(installed).equals(readFileSync(bins['3.6']!.etcd)), `${installed} is not the 3.6 binary`);
      assert.ok(readFileSync(`${installed}.steward-previous`).equals(readFileSync(bins['3.5']!.etcd)), `${installed}.steward-previous is not the 3.5 binary it replaced`);
    }
    assert.deepEqual(r.restarted.map((x) => x.version), r.restarted.map(() => ETCD_RELEASES['3.6']));
    // the cluster version moves to 3.6 once every member runs it (etcd decides that on its own, shortly after)
    await waitFor('cluster version 3.6.0', async () => (await readVersions(b.etcdCredentials, b.spec.members[0]!.clientURLs[0]!)).cluster === '3.6.0', 30_000, 500);
  });

  it('refuses 3.4 → 3.6 (a skipped minor) before any change', async () => {
    const b = await freshBed('3.4');
    await refused(b, stage(b, '3.6'), /the cluster runs etcd 3\.4 and the new binaries are 3\.6\.\d+: that skips 3\.5; etcd upgrades one minor version at a time/);
  });

  it(`refuses ${OLD_35} → 3.6 before any change: the 3.6 upgrade guide wants every 3.5 member at 3.5.32 or later`, async () => {
    const b = await freshBed(OLD_35);
    await refused(b, stage(b, '3.6'), new RegExp(`etcd1 runs ${OLD_35.replaceAll('.', '\\.')}, etcd2 runs .*: etcd's 3\\.6 upgrade guide \\(https://etcd\\.io/docs/v3\\.6/upgrades/upgrade_3_6/\\) requires every 3\\.5 member at 3\\.5\\.32 or later first`));
  });
});
