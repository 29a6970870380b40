// Integration: scaleOut on real etcd, real sshd, real TLS, a real Temporal dev server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Bed } from '../testbed';
import { memberPaths } from '../spec/cluster';
import { parseEnvFile } from '../activities/envfile';
import { MembershipSampler, decodedHistoryText, startStack, waitFor, type Stack } from './helpers';

const NEW = ['etcd4', 'etcd5'];

function envOf(bed: Bed, name: string): Record<string, string> {
  return parseEnvFile(readFileSync(memberPaths(bed.spec, name).envFile, 'utf8'));
}

describe('scaleOut', () => {
  let stack: Stack;
  let bed: Bed;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
    await bed?.down();
  });
  const freshBed = async () => {
    await bed?.down();
    bed = await Bed.up({ hosts: 5, members: 3 });
    await stack.startWorker(bed);
    return bed;
  };
  const newMembers = (b: Bed, names = NEW) => names.map((n) => Bed.memberInput(b.host(n)));

  it('3 → 5 with TLS: 5 voters, no existing member restarted, one learner at most, env files list the 5, no private key in history', async () => {
    const b = await freshBed();
    const before = b.etcdProcesses();
    const sampler = new MembershipSampler(b.endpoints, b.etcdCredentials);
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b) });
    const result = await op.result();
    await sampler.stop();

    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.added, NEW);
    assert.deepEqual(result.members, ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5']);
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, 5);
    assert.equal(o.learners, 0);
    // I2: pids and process start times of the existing members are unchanged
    const afterProcs = b.etcdProcesses();
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.deepEqual(afterProcs[n], before[n], `${n} was restarted`);
    // I1: never more than one learner; no member ever appeared as a voter without being a learner first
    assert.ok(sampler.samples.length > 10, `sampled ${sampler.samples.length} times`);
    assert.equal(sampler.maxLearners(), 1);
    assert.deepEqual(sampler.addedAsVoters(b.spec.members.map((m) => m.peerURLs.join(','))), []);
    // I5: every member's env file lists exactly the 5
    const expected = ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5'].map((n) => `${n}=https://${b.host(n).address}:2380`).join(',');
    for (const n of ['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5']) assert.equal(envOf(b, n).ETCD_INITIAL_CLUSTER, expected, n);
    assert.equal(envOf(b, 'etcd5').ETCD_INITIAL_CLUSTER_STATE, 'existing');
    // I8: no private key in the workflow history
    const history = decodedHistoryText(await op.handle.fetchHistory());
    assert.match(history, /"name":"etcd5"/, 'the decoded history holds the real inputs');
    assert.match(history, /BEGIN CERTIFICATE|"fingerprint":"[0-9a-f]{64}"/, 'and the certificate step results');
    assert.doesNotMatch(history, /PRIVATE KEY/);
    const status = await op.status();
    assert.equal(status.phase, 'completed');
    assert.deepEqual(status.warnings, []);
  });
});
