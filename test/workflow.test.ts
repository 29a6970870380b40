// Workflow decisions with stubbed activities (on a real Temporal dev server): the gate's
// monitoring verdict, pause/resume, approval policy, and the order of compensation. The real
// activities are covered by test/scaleout.test.ts; this pins down the pure decisions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities } from '../activities';
import type { ClusterObservation, ListedMember } from '../activities/etcd';
import { OperationRejectedError, StewardClient } from '../client';
import { type Member, parseClusterSpec } from '../spec/cluster';
import { startTemporal, type TemporalServer } from '../testbed/temporal';
import { WORKFLOWS_PATH } from '../worker';
import { testTemporalPlace, waitFor } from './helpers';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8nE1b2Ohg3E0n9m8S0Jw1vVbWfQ0Yb2lq4d1uYvJpA';
const TASK_QUEUE = 'workflow-decisions';

/** A cluster that exists only in memory, with the activities a worker would call on it. */
class FakeCluster {
  members: ListedMember[];
  calls: string[] = [];
  failStart = false;
  failRemoveLearner = false;
  constructor(names: string[]) {
    this.members = names.map((n, i) => ({ id: String(i + 1), name: n, peerURLs: [`https://127.0.0.${i + 1}:2380`], clientURLs: [`https://127.0.0.${i + 1}:2379`], isLearner: false }));
  }
  observation(): ClusterObservation {
    return {
      members: this.members,
      statuses: this.members.map((m) => ({ id: m.id, name: m.name, endpoint: m.clientURLs[0] ?? null, ok: true, leaderId: '1', isLearner: m.isLearner, raftAppliedIndex: '10' })),
      leaderId: '1',
      voters: this.members.filter((m) => !m.isLearner).length,
      learners: this.members.filter((m) => m.isLearner).length,
      problems: [],
      healthy: true,
    };
  }
  activities(): Partial<Activities> {
    const rec = (name: string) => this.calls.push(name);
    return {
      observeCluster: async () => this.observation(),
      preflightScaleOut: async (input) => ({ from: input.spec.members.length, to: input.spec.members.length + input.add.length, batches: input.add.map((m) => ({ member: m.name, address: m.address })), warnings: [], adoptedLearners: [] }),
      issueCert: async ({ member }) => (rec(`issueCert ${member.name}`), { member: member.name, cert: '/x', sans: [], fingerprint: '0', issued: true }),
      addLearner: async ({ member }) => {
        rec(`addLearner ${member.name}`);
        this.members.push({ id: String(this.members.length + 1), name: '', peerURLs: member.peerURLs, clientURLs: [], isLearner: true });
        return { id: String(this.members.length), existed: false, isLearner: true };
      },
      syncConfig: async ({ members }) => (rec(`syncConfig ${members.map((m: Member) => m.name).join(',')}`), { changed: [] }),
      startMember: async ({ member }) => {
        rec(`startMember ${member.name}`);
        if (this.failStart) throw ApplicationFailure.nonRetryable(`${member.name}: bind: address already in use`);
      },
      awaitCatchUp: async ({ member }) => (rec(`awaitCatchUp ${member.name}`), { id: '9', tookMs: 5, leaderApplied: '10', learnerApplied: '10', lag: 0, samples: 2 }),
      promoteLearner: async ({ member }) => {
        rec(`promoteLearner ${member.name}`);
        const m = this.members.find((x) => x.peerURLs[0] === member.peerURLs[0])!;
        m.isLearner = false;
        m.name = member.name;
        return { id: m.id, alreadyVoter: false };
      },
      removeLearner: async ({ member }) => {
        rec(`removeLearner ${member.name}`);
        if (this.failRemoveLearner) throw ApplicationFailure.nonRetryable('etcdserver: request timed out (test)');
        this.members = this.members.filter((x) => x.peerURLs[0] !== member.peerURLs[0]);
        return { removed: true, id: '4' };
      },
      retireHost: async ({ member }) => void rec(`retireHost ${member.name}`),
      preflightReplaceMember: async (input) => ({
        strategy: input.policy.strategy === 'add-first' ? 'add-first' : 'remove-first',
        why: 'test',
        version: '3.4.23',
        oldDown: false,
        adoptedLearner: false,
        warnings: [],
      }),
      removeMember: async ({ member }) => {
        rec(`removeMember ${member.name}`);
        this.members = this.members.filter((x) => x.peerURLs[0] !== member.peerURLs[0]);
        return { removed: true, id: '3' };
      },
      retireMember: async ({ member }) => (rec(`retireMember ${member.name}`), { dataDir: '/x moved to /x.removed', envFile: null }),
    };
  }
}

const spec = (name: string) =>
  parseClusterSpec({ name, members: ['a', 'b', 'c'].map((n, i) => ({ name: n, address: `127.0.0.${i + 1}`, ssh: { hostKey: KEY } })) });
const newMember = (n: string, i: number) => ({ name: n, address: `127.0.0.${i}`, ssh: { hostKey: KEY } });

describe('scaleOut decisions (stubbed activities)', () => {
  let temporal: TemporalServer;
  let connection: NativeConnection;
  let steward: StewardClient;

  before(async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    temporal = await startTemporal(testTemporalPlace('etcd-steward-temporal', 1));
    connection = await NativeConnection.connect({ address: temporal.address });
    steward = await StewardClient.connect({ address: temporal.address, taskQueue: TASK_QUEUE });
  });
  after(async () => {
    await steward?.close();
    await connection?.close();
    await temporal?.stop();
  });

  /** Runs `f` with a worker whose activities act on the fake cluster named by the workflow's spec. */
  async function withWorker<T>(fake: FakeCluster, f: () => Promise<T>): Promise<T> {
    const acts = fake.activities();
    const worker = await Worker.create({ connection, namespace: 'default', taskQueue: TASK_QUEUE, workflowsPath: WORKFLOWS_PATH, activities: acts });
    return worker.runUntil(f());
  }

  it('a monitoring verdict of "unhealthy" keeps the gate closed until a healthy one arrives', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('mon'), add: [newMember('d', 4)], policy: { approval: 'each-batch' } });
      await waitFor('the gate', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval')));
      await op.reportQuorum({ healthy: false, reason: 'apiserver latency high', source: 'prometheus' });
      await op.approve({ by: 'test' });
      const held = await waitFor('the verdict to hold the gate', async () => {
        const s = await op.status();
        return s.waitingFor.some((w) => w.includes('monitoring (prometheus) reports unhealthy: apiserver latency high')) ? s : null;
      });
      assert.equal(held.phase, 'gate');
      assert.deepEqual(fake.calls, [], 'nothing ran while monitoring says unhealthy');
      await op.reportQuorum({ healthy: true, source: 'prometheus' });
      const r = await op.result();
      assert.equal(r.outcome, 'completed');
      assert.deepEqual(fake.calls.slice(0, 5), ['issueCert d', 'addLearner d', 'syncConfig a,b,c,d', 'startMember d', 'awaitCatchUp d']);
    });
  });

  it('pause holds the next gate; resume releases it', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('pause'), add: [newMember('d', 4), newMember('e', 5)], policy: { approval: 'first-batch' } });
      await waitFor('approval of batch 1', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1')));
      await op.pause({ by: 'test', reason: 'change freeze' });
      await op.approve({ by: 'test' });
      const paused = await waitFor('the pause to hold the gate', async () => {
        const s = await op.status();
        return s.waitingFor.some((w) => w.startsWith('resume (paused by test: change freeze)')) ? s : null;
      });
      assert.equal(paused.batch?.member, 'd');
      assert.deepEqual(fake.calls, []);
      await op.resume({ by: 'test' });
      const r = await op.result();
      assert.equal(r.outcome, 'completed', 'first-batch: batch 2 needs no approval');
      assert.deepEqual(r.added, ['d', 'e']);
    });
  });

  it('a failure after join rolls back in order: remove the learner, retire the host, restore env files; then fails', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    fake.failStart = true;
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('comp'), add: [newMember('d', 4)] });
      await assert.rejects(op.result(), (e: unknown) => {
        const cause = (e as { cause?: Error }).cause;
        assert.match(cause?.message ?? '', /d: bind: address already in use\. Rolled back: d .*Voting members now: a, b, c\./);
        return true;
      });
      assert.deepEqual(fake.calls, ['issueCert d', 'addLearner d', 'syncConfig a,b,c,d', 'startMember d', 'removeLearner d', 'retireHost d', 'syncConfig a,b,c']);
      const s = await op.status();
      assert.equal(s.phase, 'failed');
      assert.equal(s.members.find((m) => m.name === 'd')?.state, 'rolled-back');
    });
  });

  it('a compensation that fails does not hide the failure: one message names the cause, the rollback error and what is left to do; outcome "failed"', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    fake.failStart = true;
    fake.failRemoveLearner = true;
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('comp-fails'), add: [newMember('d', 4)] });
      await assert.rejects(op.result(), (e: unknown) => {
        const cause = (e as { cause?: Error & { details?: unknown[] } }).cause;
        const msg = cause?.message ?? '';
        assert.match(msg, /scale-out of comp-fails failed: d: bind: address already in use/);
        assert.match(msg, /Rolling back failed too: d: remove the learner.*etcdserver: request timed out \(test\)/);
        assert.match(msg, /Left for a person to do: remove the learner with peer URL https:\/\/127\.0\.0\.4:2380/);
        assert.equal((cause?.details?.[0] as { outcome?: string } | undefined)?.outcome, 'failed');
        return true;
      });
      assert.deepEqual(fake.calls, ['issueCert d', 'addLearner d', 'syncConfig a,b,c,d', 'startMember d', 'removeLearner d']);
      assert.equal((await op.status()).phase, 'failed');
    });
  });

  it('Updates: approve is rejected with the reason when nothing waits or another batch waits; abort answers what it will roll back', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('upd'), add: [newMember('d', 4), newMember('e', 5)], policy: { approval: 'each-batch' } });
      await waitFor('approval of batch 1', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1')));
      await assert.rejects(op.approve({ batch: 1 }), (e: unknown) => e instanceof OperationRejectedError && /batch 2 is not the one waiting for approval: batch 1 \(d\) is/.test(e.reason));
      await assert.rejects(op.resume({}), (e: unknown) => e instanceof OperationRejectedError && /not paused/.test(e.reason));
      assert.deepEqual(await op.pause({ by: 'test' }), { paused: true, phase: 'gate' });
      await assert.rejects(op.pause({}), (e: unknown) => e instanceof OperationRejectedError && /already paused by test/.test(e.reason));
      assert.deepEqual(await op.approve({ by: 'test' }), { batch: 0, members: ['d'] }, 'a paused batch may be approved');
      assert.equal((await op.resume({ by: 'test' })).paused, false);
      await waitFor('approval of batch 2', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 2')));
      await assert.rejects(op.approve({ batch: 0 }), (e: unknown) => e instanceof OperationRejectedError && /batch 1 is not the one waiting.*batch 1 is already past/.test(e.reason));
      const a = await op.abort({ reason: 'enough', by: 'test' });
      assert.deepEqual(a.willRollBack, [], 'at the gate nothing is in flight');
      await assert.rejects(op.abort({ reason: 'again' }), (e: unknown) => e instanceof OperationRejectedError && /already under way: enough|already ended/.test(e.reason));
      const r = await op.result();
      assert.equal(r.outcome, 'aborted');
      assert.deepEqual(r.added, ['d']);
      // The operation has ended: an approve now is refused (by the server or the validator), never silently taken.
      await assert.rejects(op.approve({}), (e: unknown) => e instanceof OperationRejectedError && /already ended/.test(e.reason));
    });
  });

  it('an abort before join changes nothing and rolls back nothing', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('early'), add: [newMember('d', 4)], policy: { approval: 'each-batch' } });
      await waitFor('the gate', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval')));
      await op.abort({ reason: 'not today', by: 'test' });
      const r = await op.result();
      assert.equal(r.outcome, 'aborted');
      assert.deepEqual(r.rolledBack, []);
      assert.deepEqual(fake.calls, []);
    });
  });

  it('each-batch: every batch waits for its own approval; the Web UI sees the signals, the query and the current details', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    await withWorker(fake, async () => {
      const op = await steward.startScaleOut({ spec: spec('each'), add: [newMember('d', 4), newMember('e', 5)], policy: { approval: 'each-batch' } });
      await waitFor('approval of batch 1', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1')));
      // What the Web UI shows: the signals and the query with their descriptions, and the current details.
      const meta = (await op.handle.query('__temporal_workflow_metadata')) as {
        definition?: { signalDefinitions?: { name: string; description?: string }[]; queryDefinitions?: { name: string; description?: string }[] };
        currentDetails?: string;
      };
      const signals = Object.fromEntries((meta.definition?.signalDefinitions ?? []).map((d) => [d.name, d.description ?? '']));
      assert.deepEqual(Object.keys(signals).sort(), ['abort', 'approve', 'pause', 'quorum', 'resume']);
      const updates = Object.fromEntries(((meta.definition as { updateDefinitions?: { name: string; description?: string }[] }).updateDefinitions ?? []).map((d) => [d.name, d.description ?? '']));
      assert.deepEqual(Object.keys(updates).sort(), ['abort', 'approve', 'pause', 'resume']);
      assert.match(updates.approve!, /rejected \(with the reason\) when no batch waits/);
      assert.match(signals.approve!, /quorum gate/);
      assert.ok((meta.definition?.queryDefinitions ?? []).some((q) => q.name === 'status' && /what the gate waits for/.test(q.description ?? '')));
      assert.match(meta.currentDetails ?? '', /\*\*scaleOut each\*\* — gate — batch 1\/2: d/);
      assert.match(meta.currentDetails ?? '', /waiting for:\*\* approval of batch 1 \(d\)/);
      await op.approve({ by: 'test' });
      await waitFor('approval of batch 2', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 2')));
      assert.ok(fake.calls.includes('promoteLearner d'));
      assert.ok(!fake.calls.includes('issueCert e'), 'batch 2 waits for its own approval');
      await op.abort({ reason: 'done testing' });
      assert.equal((await op.result()).outcome, 'aborted');
    });
  });

  it('replace, remove first: a failure after the removal rolls the learner back and says the cluster is left at n - 1 voters with env files that list them', async () => {
    const fake = new FakeCluster(['a', 'b', 'c']);
    fake.failStart = true;
    await withWorker(fake, async () => {
      const op = await steward.startReplaceMember({ spec: spec('repl'), replace: 'c', with: newMember('d', 4), policy: { strategy: 'remove-first' } });
      await assert.rejects(op.result(), (e: unknown) => {
        const msg = String((e as { cause?: { message?: string } }).cause?.message);
        assert.match(msg, /replacement of c by d in repl failed: d: bind: address already in use\. c was removed; d's learner was rolled back\. Voting members now: a, b \(2, one fewer than before: add a member with scale-out\); their env files list them\./);
        return true;
      });
      assert.deepEqual(fake.calls, [
        'issueCert d',
        'removeMember c',
        'retireMember c',
        'syncConfig a,b',
        'addLearner d',
        'syncConfig a,b,d',
        'startMember d',
        'removeLearner d',
        'retireHost d',
        'syncConfig a,b',
      ]);
      assert.deepEqual(fake.members.map((m) => m.name), ['a', 'b']);
    });
  });
});
