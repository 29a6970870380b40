// Integration: scaleOut on real etcd, real sshd, real TLS, a real Temporal dev server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Bed } from '../testbed';
import { WriteLoad } from '../testbed/load';
import { memberPaths } from '../spec/cluster';
import { parseEnvFile } from '../activities/envfile';
import { MembershipSampler, causeChain, decodedHistoryText, pidOnceListening, recordHistory, startStack, waitFor, type Stack } from './helpers';

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
    await stack.terminateRunning('bed');
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
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b) }).catch(async (e: unknown) => {
      await sampler.stop();
      throw e;
    });
    const result = await op.result().finally(() => sampler.stop());

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
    await recordHistory(op.handle, 'scaleOut-3-to-5', stack.temporal.address);
  });

  it('each-batch approval: waits at the gate until approve arrives; status shows it waiting; an even target is flagged', async () => {
    const b = await freshBed();
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b, ['etcd4']), policy: { approval: 'each-batch' } });
    const waiting = await waitFor('the gate to wait for approval', async () => {
      const s = await op.status();
      return s.phase === 'gate' && s.waitingFor.some((w) => w.startsWith('approval of batch 1 (etcd4)')) ? s : null;
    });
    assert.equal(waiting.members.find((m) => m.name === 'etcd4')?.state, 'planned');
    assert.ok(waiting.warnings.some((w) => w.includes('target size 4 is even')), waiting.warnings.join('; '));
    await new Promise((r) => setTimeout(r, 1500));
    const o = await b.observe();
    assert.equal(o.members.length, 3, 'nothing is added before approval');
    assert.equal((await op.status()).phase, 'gate');
    await op.approve({ by: 'test' });
    const result = await op.result();
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.members, ['etcd1', 'etcd2', 'etcd3', 'etcd4']);
    assert.ok(result.warnings.some((w) => w.includes('even')));
    const events = (await op.status()).events.map((e) => e.message);
    assert.ok(events.some((e) => e === 'batch 1 approved by test'), events.join('\n'));
    await recordHistory(op.handle, 'scaleOut-each-batch-approval', stack.temporal.address);
  });

  it('a second operation on the same cluster is refused while one runs (I9)', async () => {
    const b = bed; // the cluster from the previous test, now 4 members
    const spec = { ...b.spec, members: [...b.spec.members, Bed.memberInput(b.host('etcd4'))] };
    const op = await stack.steward.startScaleOut({ spec, add: newMembers(b, ['etcd5']), policy: { approval: 'each-batch' } });
    await assert.rejects(stack.steward.startScaleOut({ spec, add: newMembers(b, ['etcd5']) }), (e: unknown) => {
      assert.ok(e instanceof Error && e.name === 'OperationRunningError', String(e));
      assert.match(e.message, /cluster "bed" already has an operation running \(workflow etcd-steward-bed\)/);
      return true;
    });
    await op.abort({ reason: 'test over', by: 'test' });
    const r = await op.result();
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(r.rolledBack, [], 'aborted at the gate: nothing to roll back');
    assert.equal((await b.observe()).members.length, 4);
  });

  it('abort while the learner catches up: learner removed, its etcd stopped, data dir emptied, back to 3 healthy voters (I7)', async () => {
    const b = await freshBed();
    // Data to catch up on, so there is time between the learner's start and its catch-up.
    const load = new WriteLoad({ endpoints: b.endpoints, credentials: b.etcdCredentials });
    await load.prefill(10);
    await load.stop();
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b, ['etcd4']) });
    // Freeze the learner once its service has started (the supervisor's start returns when etcd
    // listens on its client port, before it has caught up), so the abort lands in catch-up.
    const pid = await pidOnceListening(b, 'etcd4');
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor('the catch-up step', async () => (await op.status()).phase === 'catch-up');
      assert.equal((await b.observe()).learners, 1);
      await op.abort({ reason: 'operator changed their mind', by: 'test' });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = await op.result();
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(r.rolledBack, ['etcd4']);
    assert.deepEqual(r.members, ['etcd1', 'etcd2', 'etcd3']);
    assert.equal(r.abort?.reason, 'operator changed their mind');
    const o = await b.waitHealthy(30_000);
    assert.equal(o.voters, 3);
    assert.equal(o.learners, 0);
    assert.equal(b.etcdPid('etcd4'), null, "etcd4's etcd is stopped");
    const { readdirSync, existsSync } = await import('node:fs');
    const dataDir = memberPaths(b.spec, 'etcd4').dataDir;
    assert.ok(!existsSync(dataDir) || readdirSync(dataDir).length === 0, 'data dir emptied');
    assert.equal(existsSync(memberPaths(b.spec, 'etcd4').envFile), false, "etcd4's env file removed");
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.doesNotMatch(envOf(b, n).ETCD_INITIAL_CLUSTER!, /etcd4/, `${n} env restored`);
    await recordHistory(op.handle, 'scaleOut-abort-during-catch-up', stack.temporal.address);
  });

  it('an existing member down before a batch: the gate holds and nothing is added; back up, the operation completes (I4)', async () => {
    const b = await freshBed();
    const svc = (cmd: string) => cmd.replaceAll('{name}', 'etcd2');
    const { sshRun } = await import('../activities/ssh');
    await sshRun(b.host('etcd2').ssh, b.sshIdentity, svc(b.spec.service.stop));
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b, ['etcd4']) });
    const held = await waitFor('the gate to hold on etcd2', async () => {
      const s = await op.status();
      return s.phase === 'gate' && s.waitingFor.some((w) => w.includes('etcd2 does not answer')) ? s : null;
    });
    assert.equal(held.members.find((m) => m.name === 'etcd4')?.state, 'planned');
    await new Promise((r) => setTimeout(r, 3000));
    const during = await b.observe();
    assert.equal(during.members.length, 3, 'nothing added while etcd2 is down');
    assert.equal((await op.status()).phase, 'gate');
    await sshRun(b.host('etcd2').ssh, b.sshIdentity, svc(b.spec.service.start));
    const r = await op.result();
    assert.equal(r.outcome, 'completed');
    assert.equal((await b.observe()).voters, 4);
    await recordHistory(op.handle, 'scaleOut-gate-holds-on-down-member', stack.temporal.address);
  });

  it('the new member cannot start (its client port is taken): compensation runs, membership is back, the error says why', async () => {
    const b = await freshBed();
    const { createServer } = await import('node:net');
    const squatter = createServer();
    await new Promise<void>((res) => squatter.listen(2379, b.host('etcd4').address, res));
    try {
      const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b, ['etcd4']), policy: { stepTimeout: '40s' } });
      await assert.rejects(op.result(), (e: unknown) => {
        const msg = causeChain(e);
        assert.match(msg, /address already in use/, msg);
        assert.match(msg, /Rolled back: etcd4/, msg);
        assert.match(msg, /Voting members now: etcd1, etcd2, etcd3/, msg);
        return true;
      });
      await recordHistory(op.handle, 'scaleOut-start-fails-compensation', stack.temporal.address);
    } finally {
      squatter.close();
    }
    const o = await b.waitHealthy(30_000);
    assert.deepEqual(o.members.map((m) => m.name).sort(), ['etcd1', 'etcd2', 'etcd3']);
    assert.equal(o.learners, 0);
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.doesNotMatch(envOf(b, n).ETCD_INITIAL_CLUSTER!, /etcd4/);
  });

  it('bad input fails before any change, naming the problem', async () => {
    const b = bed; // healthy 3-member cluster from the previous test
    const { SpecError } = await import('../spec/cluster');
    // refused by the client: duplicate name, a peer URL of an existing member
    await assert.rejects(
      stack.steward.startScaleOut({ spec: b.spec, add: [{ ...Bed.memberInput(b.host('etcd4')), name: 'etcd2' }] }),
      (e: unknown) => e instanceof SpecError && e.issues.some((i) => i.startsWith('add[0].name: name "etcd2" is already used by spec.members[1]')),
    );
    await assert.rejects(stack.steward.startScaleOut({ spec: b.spec, add: [{ ...Bed.memberInput(b.host('etcd4')), peerURLs: ['https://127.10.0.1:2380'] }] }), (e: unknown) =>
      e instanceof SpecError && e.issues.some((i) => i.includes('add[0].peerURLs[0]: URL https://127.10.0.1:2380 is already used by spec.members[0] (etcd1)')),
    );
    // refused by the worker's preflight: a host key that does not match its pin, an unreachable host
    const wrongKey = { ...Bed.memberInput(b.host('etcd4')), ssh: { ...Bed.memberInput(b.host('etcd4')).ssh, hostKey: b.host('etcd5').hostKey } };
    const op1 = await stack.steward.startScaleOut({ spec: b.spec, add: [wrongKey] });
    await assert.rejects(op1.result(), (e: unknown) => /add\[0\] \(etcd4\): etcd4 .*host key does not match its pin/.test(causeChain(e)));
    const nowhere = { ...Bed.memberInput(b.host('etcd4')), ssh: { ...Bed.memberInput(b.host('etcd4')).ssh, port: 1 } };
    const op2 = await stack.steward.startScaleOut({ spec: b.spec, add: [nowhere] });
    await assert.rejects(op2.result(), (e: unknown) => /cannot reach sshd/.test(causeChain(e)));
    const o = await b.observe();
    assert.equal(o.members.length, 3, 'membership unchanged');
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(memberPaths(b.spec, 'etcd4').envFile), false, 'nothing written to etcd4');
  });

  it('a long wait at the approval gate with monitoring verdicts coming in: the run continues as new there, the next run adds the rest; no history grows long', async () => {
    const b = await freshBed();
    const before = b.etcdProcesses();
    const limit = 150;
    const op = await stack.steward.startScaleOut({ spec: b.spec, add: newMembers(b), policy: { approval: 'each-batch', continueAsNewAfterEvents: limit } });
    const firstRun = (await op.handle.describe()).runId;
    const waitingFor = (batch: string) => waitFor(`approval of ${batch}`, async () => (await op.status()).waitingFor.some((w) => w.startsWith(`approval of ${batch}`)));
    await waitingFor('batch 1 (etcd4)');
    await op.approve({ by: 'test' });
    await waitingFor('batch 2 (etcd5)');
    const mid = b.etcdProcesses(); // etcd4 runs now
    // A monitoring system reporting every few seconds through a long wait: here, quickly, until the run hands over.
    let verdicts = 0;
    await waitFor('the run to continue as new', async () => {
      for (let i = 0; i < 10; i++, verdicts++) await op.reportQuorum({ healthy: true, source: 'test-monitoring', reason: `verdict ${verdicts}` });
      return (await op.handle.describe()).runId !== firstRun;
    });
    const first = await op.handle.client.getHandle(op.handle.workflowId, firstRun).fetchHistory();
    const firstEvents = first.events ?? [];
    assert.ok(firstEvents.at(-1)?.workflowExecutionContinuedAsNewEventAttributes, 'the first run ended by continuing as new');
    assert.ok(firstEvents.length >= limit && firstEvents.length < limit + 60, `the first run handed over at ${firstEvents.length} events (limit ${limit}) after ${verdicts} verdicts`);

    // The next run: etcd4 carried as added, batch 2 still waiting for its own approval.
    await waitingFor('batch 2 (etcd5)');
    const carried = await op.status();
    assert.equal(carried.members.find((m) => m.name === 'etcd4')?.state, 'added');
    assert.ok(carried.events.some((e) => e.message === 'batch 1 approved by test'), 'events carried over');
    assert.ok(carried.events.some((e) => e.message.startsWith('run 2 of this operation')), carried.events.map((e) => e.message).join('\n'));
    assert.equal((await b.observe()).members.length, 4, 'nothing added while waiting');
    await op.approve({ by: 'test' });
    const result = await op.result();
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.added, NEW);
    assert.deepEqual(Object.keys(result.catchUpMs).sort(), NEW);
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, 5);
    const afterProcs = b.etcdProcesses();
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.deepEqual(afterProcs[n], before[n], `${n} was restarted`);
    assert.deepEqual(afterProcs.etcd4, mid.etcd4, 'etcd4 (added by the first run) was restarted');
    const last = await op.handle.fetchHistory();
    assert.ok((last.events ?? []).length < limit, `the last run has ${(last.events ?? []).length} events`);
    await recordHistory(op.handle, 'scaleOut-continue-as-new-run-1', stack.temporal.address, firstRun);
    await recordHistory(op.handle, 'scaleOut-continue-as-new-run-2', stack.temporal.address);
  });
});
