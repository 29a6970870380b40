// Integration: rollingRestart on real etcd, real sshd, real TLS, a real Temporal dev server.
// Every bound is checked from outside: a liveness sampler asks each member for its Status every
// ~100 ms (I3: the most members down at once), pids come from the bed's pidfiles, the leader
// from what the members report.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { type Operation, OperationRejectedError, type RollingRestartResult } from '../client';
import { parseEnvFile } from '../activities/envfile';
import { memberPaths } from '../spec/cluster';
import { Bed } from '../testbed';
import { LivenessSampler } from '../testbed/liveness';
import { causeChain, recordHistory, stackAndBeds, waitFor } from './helpers';

/** The env of a running process, from /proc (what etcd really runs with). */
function runningEnv(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe('rollingRestart', () => {
  const suite = stackAndBeds();
  const freshBed = (members: number) => suite.freshBed({ hosts: members, members });
  const sampler = (b: Bed) =>
    new LivenessSampler(
      b.spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })),
      b.etcdCredentials,
      (n) => b.etcdPid(n),
    );
  const leaderName = async (b: Bed) => {
    const o = await b.observe();
    return o.statuses.find((s) => s.id === o.leaderId)!.name;
  };

  /** The checks every completed rolling restart must pass; returns the result. */
  async function restartAndCheck(b: Bed, opts: { maxUnavailable: number; bound: number; down?: string; record?: string; verdictEveryMs?: number }): Promise<RollingRestartResult & { verdictsSent: number }> {
    const names = b.spec.members.map((m) => m.name);
    const pidsBefore = Object.fromEntries(names.map((n) => [n, b.etcdPid(n)]));
    for (const n of names) if (n !== opts.down) assert.ok(pidsBefore[n] !== null, `${n} has no pid before the restart: nothing to compare`);
    const leader = await leaderName(b);
    const live = sampler(b);
    await new Promise((r) => setTimeout(r, 300)); // a few samples before anything stops
    const t0 = Date.now();
    let result: RollingRestartResult;
    let op: Operation<RollingRestartResult>;
    let verdictsSent = 0;
    let done = false;
    try {
      op = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: rolling restart', policy: { maxUnavailable: opts.maxUnavailable } });
      // A monitoring system's verdicts, as they would arrive all along (healthy: they must not hold anything up).
      const verdicts = opts.verdictEveryMs
        ? (async () => {
            for (; !done; verdictsSent++) {
              await op.reportQuorum({ healthy: true, source: 'test-monitoring', reason: `verdict ${verdictsSent}` }).catch(() => undefined);
              await new Promise((r) => setTimeout(r, opts.verdictEveryMs));
            }
          })()
        : Promise.resolve();
      result = await op.result().finally(() => (done = true));
      await verdicts;
    } finally {
      done = true;
      await live.stop();
    }
    if (opts.record) await recordHistory(op.handle, opts.record, suite.stack.temporal.address);

    assert.equal(result.outcome, 'completed');
    assert.deepEqual([...result.restarted.map((r) => r.member)].sort(), [...names].sort());
    // every member sampled, many times
    const counts = live.counts();
    for (const n of names) assert.ok((counts[n] ?? 0) >= 10, `${n} was sampled ${counts[n] ?? 0} times: too few for the liveness check to count`);
    // I3: never more down at once than the bound (a member that was already down counts too)
    const worst = live.maxDownAtOnce();
    assert.ok(worst.count <= opts.bound, `${worst.count} members down at once (${worst.members.join(', ')}), bound ${opts.bound}`);
    assert.ok(worst.count >= 1, 'no member was ever seen down: the restarts were not observed');
    // every member's pid changed (observed from the pidfiles), none is null after
    const pidsAfter = Object.fromEntries(names.map((n) => [n, b.etcdPid(n)]));
    for (const n of names) {
      assert.ok(pidsAfter[n] !== null, `${n} does not run after the restart`);
      assert.notEqual(pidsAfter[n], pidsBefore[n], `${n}'s pid did not change`);
      const rec = result.restarted.find((r) => r.member === n)!;
      assert.equal(rec.pid, pidsAfter[n], `${n}: the workflow reports pid ${rec.pid}, the pidfile says ${pidsAfter[n]}`);
    }
    // the already-down member first; the leader last, after leadership moved away from it
    const order = live.wentDown();
    if (opts.down) assert.equal(order[0], opts.down, `went down in the order ${order.join(', ')}`);
    const restartedOrder = result.restarted.map((r) => r.member);
    assert.equal(restartedOrder.at(-1), leader, `the leader ${leader} was not restarted last: ${restartedOrder.join(', ')}`);
    assert.equal(order.at(-1), leader, `observed: the leader ${leader} did not go down last (${order.join(', ')})`);
    const leaderDown = live.firstDown(leader, t0)!;
    const leaderIdBefore = (await b.observe()).statuses.find((s) => s.name === leader)!.id;
    const seenLeader = live.leaderBefore(leaderDown);
    assert.ok(seenLeader && seenLeader !== leaderIdBefore, `when ${leader} stopped the members still saw it (${seenLeader}) as leader: leadership was not moved first`);
    assert.deepEqual(result.leaderMoves.map((m) => m.from), [leader]);
    const o = await b.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, names.length);
    return { ...result, verdictsSent };
  }

  it('3 members: one at a time, the leader last after MoveLeader, every pid changed', async () => {
    const b = await freshBed(3);
    await restartAndCheck(b, { maxUnavailable: 1, bound: 1, record: 'rollingRestart-3-members' });
  });

  it('4 members with maxUnavailable 2: still one at a time (4 tolerate only 1 down)', async () => {
    const b = await freshBed(4);
    const r = await restartAndCheck(b, { maxUnavailable: 2, bound: 1 });
    assert.equal(r.largestBatch, 1);
  });

  it('5 members with maxUnavailable 2: two at a time at most, the leader alone and last', async () => {
    const b = await freshBed(5);
    const r = await restartAndCheck(b, { maxUnavailable: 2, bound: 2 });
    assert.equal(r.largestBatch, 2);
  });

  it('7 members, maxUnavailable 3, a monitoring verdict every 250 ms: at most 3 down, and the history stays small', async (t) => {
    const b = await freshBed(7);
    const r = await restartAndCheck(b, { maxUnavailable: 3, bound: 3, verdictEveryMs: 250 });
    assert.equal(r.largestBatch, 3);
    assert.ok(r.verdictsSent >= 20, `only ${r.verdictsSent} verdicts were sent: too few to weigh`);
    const history = await suite.stack.steward.operation('bed').handle.fetchHistory();
    const events = history.events?.length ?? 0;
    const bytes = Buffer.byteLength(JSON.stringify(history));
    t.diagnostic(`7-member rolling restart: ${events} events, ${Math.round(bytes / 1024)} KB as JSON (${Math.round(events / 7)} events, ${Math.round(bytes / 1024 / 7)} KB per member) with ${r.verdictsSent} monitoring verdicts`);
    // Temporal refuses a history past 50k events or 50 MB; one operation must stay far below.
    assert.ok(events < 2_000, `${events} events`);
    assert.ok(bytes < 2 * 1024 * 1024, `${bytes} bytes`);
  });

  it('5 members with one already stopped: it is restarted first, and the cluster never drops below quorum', async () => {
    const b = await freshBed(5);
    await b.stopEtcd('etcd3');
    await restartAndCheck(b, { maxUnavailable: 2, bound: 2, down: 'etcd3' });
  });

  it('3 members with one stopped and maxUnavailable 2: the stopped one first, then one at a time', async () => {
    const b = await freshBed(3);
    await b.stopEtcd('etcd2');
    await restartAndCheck(b, { maxUnavailable: 2, bound: 1, down: 'etcd2' });
  });

  it('an env change is applied on each member and shows in its running process', async () => {
    const b = await freshBed(3);
    const op = await suite.stack.steward.startRollingRestart({
      spec: b.spec,
      reason: 'test: raise the backend quota',
      change: { set: { ETCD_QUOTA_BACKEND_BYTES: '4294967296' } },
    });
    const r = await op.result();
    assert.equal(r.outcome, 'completed');
    for (const m of b.spec.members) {
      const pid = b.etcdPid(m.name);
      assert.ok(pid !== null, `${m.name} does not run`);
      assert.equal(runningEnv(pid).ETCD_QUOTA_BACKEND_BYTES, '4294967296', `${m.name}'s running etcd does not have the new quota`);
      assert.equal(parseEnvFile(readFileSync(memberPaths(b.spec, m.name).envFile, 'utf8')).ETCD_QUOTA_BACKEND_BYTES, '4294967296');
      assert.deepEqual(r.restarted.find((x) => x.member === m.name)!.envChanged, ['ETCD_QUOTA_BACKEND_BYTES']);
    }
  });

  it('a change etcd refuses: the member is put back and started, the operation stops with its log, no other member is stopped', async () => {
    const b = await freshBed(3);
    const pidsBefore = Object.fromEntries(b.spec.members.map((m) => [m.name, b.etcdPid(m.name)]));
    const op = await suite.stack.steward.startRollingRestart({
      spec: b.spec,
      reason: 'test: a bad value',
      change: { set: { ETCD_QUOTA_BACKEND_BYTES: 'lots' } },
    });
    const err = await op.result().then(
      () => null,
      (e: unknown) => e,
    );
    await recordHistory(op.handle, 'rollingRestart-refused-change-compensation', suite.stack.temporal.address);
    assert.ok(err, 'the operation should have failed');
    const chain = causeChain(err);
    assert.match(chain, /rolling restart of bed failed/);
    assert.match(chain, /ETCD_QUOTA_BACKEND_BYTES|lots/, `the log tail should say what etcd refused: ${chain}`);
    assert.match(chain, /No further member was stopped/);
    await b.waitHealthy(30_000);
    const changed = b.spec.members.filter((m) => b.etcdPid(m.name) !== pidsBefore[m.name]).map((m) => m.name);
    assert.equal(changed.length, 1, `exactly one member was restarted (the one that failed and was put back): ${changed.join(', ')}`);
    for (const m of b.spec.members) {
      assert.ok(b.etcdPid(m.name) !== null, `${m.name} is left stopped`);
      assert.equal(parseEnvFile(readFileSync(memberPaths(b.spec, m.name).envFile, 'utf8')).ETCD_QUOTA_BACKEND_BYTES, undefined, `${m.name}'s env file keeps the bad value`);
    }
  });

  it('a long wait at the approval gate with monitoring verdicts coming in: the run continues as new there and the next run restarts the rest', async () => {
    const b = await freshBed(3);
    const names = b.spec.members.map((m) => m.name);
    const pidsBefore = Object.fromEntries(names.map((n) => [n, b.etcdPid(n)]));
    const limit = 150;
    const op: Operation<RollingRestartResult> = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: long wait', policy: { approval: 'each-batch', continueAsNewAfterEvents: limit } });
    const firstRun = (await op.handle.describe()).runId;
    const waiting = (batch: number) => waitFor(`approval of batch ${batch}`, async () => (await op.status()).waitingFor.some((w) => w.startsWith(`approval of batch ${batch}`)), 120_000);
    await waiting(1);
    await op.approve({ by: 'test' });
    await waiting(2);
    let verdicts = 0;
    await waitFor('the run to continue as new', async () => {
      for (let i = 0; i < 10; i++, verdicts++) await op.reportQuorum({ healthy: true, source: 'test-monitoring', reason: `verdict ${verdicts}` });
      return (await op.handle.describe()).runId !== firstRun;
    });
    const first = await op.handle.client.getHandle(op.handle.workflowId, firstRun).fetchHistory();
    assert.ok(first.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes, 'the first run ended by continuing as new');
    assert.ok((first.events ?? []).length < limit + 60, `the first run handed over at ${(first.events ?? []).length} events (limit ${limit})`);
    await waiting(2);
    await op.approve({ by: 'test' });
    await waiting(3);
    await op.approve({ by: 'test' });
    const r = await op.result();
    assert.equal(r.outcome, 'completed');
    assert.deepEqual([...r.restarted.map((x) => x.member)].sort(), [...names].sort(), 'the restart of the first run is carried in the result');
    assert.deepEqual(r.restarted.map((x) => x.batch), [1, 2, 3]);
    for (const n of names) assert.notEqual(b.etcdPid(n), pidsBefore[n], `${n}'s pid did not change`);
    const events = (await op.status()).events.map((e) => e.message);
    assert.ok(events.some((e) => e.startsWith('run 2 of this operation')), events.join('\n'));
    await recordHistory(op.handle, 'rollingRestart-continue-as-new-run-1', suite.stack.temporal.address, firstRun);
    await recordHistory(op.handle, 'rollingRestart-continue-as-new-run-2', suite.stack.temporal.address);
  });

  it('Updates: approve with nothing waiting is rejected with the reason; approve of the waiting batch goes through; abort between batches leaves every member running', async () => {
    const b = await freshBed(3);
    const op: Operation<RollingRestartResult> = await suite.stack.steward.startRollingRestart({ spec: b.spec, reason: 'test: approvals', policy: { approval: 'each-batch' } });
    await waitFor('the first batch to wait for approval', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1')), 60_000);
    // batch numbers are 0-based in the API (the CLI counts from 1, as status shows them)
    await assert.rejects(op.approve({ batch: 1 }), (e: unknown) => e instanceof OperationRejectedError && /batch 2 is not the one waiting for approval: batch 1 \(etcd\d\) is/.test(e.reason));
    const approved = await op.approve({ by: 'test' });
    assert.equal(approved.batch, 0);
    // batch 1 is now on its way: nothing waits for approval until batch 2 reaches its gate
    await assert.rejects(op.approve({}), (e: unknown) => e instanceof OperationRejectedError && /no batch is waiting for approval: batch 1 \(etcd\d\) is in phase/.test(e.reason));
    await waitFor('the second batch to wait for approval', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 2')), 120_000);
    const aborted = await op.abort({ reason: 'test: enough', by: 'test' });
    assert.deepEqual(aborted.willRollBack, []);
    const r = await op.result();
    await recordHistory(op.handle, 'rollingRestart-updates-approval-abort', suite.stack.temporal.address);
    assert.equal(r.outcome, 'aborted');
    assert.equal(r.restarted.length, 1);
    assert.equal(r.notRestarted.length, 2);
    for (const m of b.spec.members) assert.ok(b.etcdPid(m.name) !== null, `${m.name} is left stopped`);
    await b.waitHealthy(10_000);
    // the operation has ended: every action is rejected, with the reason
    await assert.rejects(op.approve({}), (e: unknown) => e instanceof OperationRejectedError || /completed|not found|ended/i.test(String(e)));
  });
});
