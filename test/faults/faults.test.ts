// The fault matrix (npm run test:faults): worker crashes at every step of a scale-out, a Temporal
// server restart, and host faults, each on a fresh bed, each judged "survived" or "lost". Ends
// with one line per case and `faults: <survived> survived, <lost> lost`.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { StewardClient, type Operation, type ScaleOutResult } from '../../client';
import { Bed } from '../../testbed';
import { sleep } from '../../testbed/procs';
import { startTemporal, type TemporalServer } from '../../testbed/temporal';
import { writeWorkflowBundle } from '../../scripts/bundle';
import { MembershipSampler, causeChain, recordHistory, waitFor } from '../helpers';
import { WorkerProcess, activityCompletions, checkEndState } from './harness';

Runtime.install({ logger: new DefaultLogger('ERROR') });

interface CaseResult {
  name: string;
  survived: boolean;
  detail: string;
}
const results: CaseResult[] = [];

const TEMPORAL_DIR = join(tmpdir(), 'etcd-steward-faults-temporal');
/** Workflows bundled once for the suite, so each worker process starts without bundling. */
const BUNDLE = join(tmpdir(), 'etcd-steward-faults-workflow-bundle.js');
const DB = join(TEMPORAL_DIR, 'temporal.db');
let temporal: TemporalServer;
let steward: StewardClient;

async function startServer(): Promise<void> {
  temporal = await startTemporal({ dir: TEMPORAL_DIR, dbFilename: DB });
}

const EXISTING = ['etcd1', 'etcd2', 'etcd3'];

/** One scale-out on a fresh bed with a fault injected by `inject`; records survived/lost. */
async function runCase(
  name: string,
  opts: { add: string[]; hold?: (marker: string) => string; policy?: Record<string, unknown>; expectFailure?: RegExp; restarted?: string[] },
  inject: (ctx: { bed: Bed; op: Operation<ScaleOutResult>; marker: string; worker: () => WorkerProcess; replaceWorker: () => Promise<void>; history: () => Promise<unknown> }) => Promise<string>,
): Promise<void> {
  const bed = await Bed.up({ hosts: 3 + opts.add.length, members: 3 });
  const marker = join(bed.dir, 'hold-reached');
  const before = bed.etcdProcesses();
  let worker = await WorkerProcess.start(bed, temporal.address, { name: 'first', workflowBundle: BUNDLE, ...(opts.hold ? { hold: opts.hold(marker) } : {}) });
  let n = 0;
  const sampler = new MembershipSampler(bed.endpoints, bed.etcdCredentials, 200);
  let detail = '';
  const problems: string[] = [];
  try {
    const op = await steward.startScaleOut({ spec: bed.spec, add: opts.add.map((h) => Bed.memberInput(bed.host(h))), ...(opts.policy ? { policy: opts.policy } : {}) });
    const outcome = op.result().then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    detail = await inject({
      bed,
      op,
      marker,
      worker: () => worker,
      replaceWorker: async () => {
        await worker.kill();
        worker = await WorkerProcess.start(bed, temporal.address, { name: `replacement-${++n}`, workflowBundle: BUNDLE });
      },
      history: () => op.handle.fetchHistory(),
    });
    const end = await within(outcome, 180_000, () => ({ ok: false as const, e: new Error('did not end within 180 s') }));
    await sampler.stop();
    if (opts.expectFailure) {
      if (end.ok) problems.push(`expected a failure, got ${end.r.outcome}`);
      else if (!opts.expectFailure.test(causeChain(end.e))) problems.push(`failure does not say why: ${causeChain(end.e)}`);
      problems.push(...(await checkEndState(bed, EXISTING, EXISTING.filter((x) => !opts.restarted?.includes(x)), before)));
    } else {
      if (!end.ok) problems.push(`operation failed: ${causeChain(end.e)}`);
      else if (end.r.outcome !== 'completed') problems.push(`operation ${end.r.outcome}`);
      problems.push(...(await checkEndState(bed, [...EXISTING, ...opts.add], EXISTING.filter((x) => !opts.restarted?.includes(x)), before)));
    }
    if (sampler.maxLearners() > 1) problems.push(`${sampler.maxLearners()} learners at once`);
    if (name.startsWith('worker killed after cert completed')) await recordHistory(op.handle, 'scaleOut-worker-crash-and-resume', temporal.address);
  } catch (e) {
    problems.push(`case error: ${causeChain(e)}`);
  } finally {
    await sampler.stop();
    await worker.stop();
    await bed.down();
  }
  results.push({ name, survived: problems.length === 0, detail: problems.length ? problems.join('; ') : detail });
}

/** `p`, or `onTimeout()` after `ms`; the timer is cleared so it never holds the process open. */
async function within<T>(p: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((resolve) => (timer = setTimeout(() => resolve(onTimeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Kill the worker, start a fresh one, and report how long until `type` completed again after the kill. */
async function killAndMeasure(ctx: Parameters<Parameters<typeof runCase>[2]>[0], type: string | 'next'): Promise<string> {
  const killedAt = Date.now();
  const done = activityCompletions(await ctx.history()).length;
  await ctx.replaceWorker();
  const completion = await waitFor(
    `${type} to complete on the new worker`,
    async () => activityCompletions(await ctx.history()).slice(type === 'next' ? done : 0).find((c) => c.at >= killedAt && (type === 'next' || c.type === type)),
    120_000,
    200,
  );
  return `${completion.type} completed ${((completion.at - killedAt) / 1000).toFixed(1)} s after the kill`;
}

/** Waits until the history shows `type` completed at least once. */
async function untilCompleted(ctx: Parameters<Parameters<typeof runCase>[2]>[0], type: string, everyMs = 20): Promise<void> {
  await waitFor(`${type} to complete`, async () => activityCompletions(await ctx.history()).some((c) => c.type === type), 120_000, everyMs);
}

const STEPS: [string, string][] = [
  ['gate', 'observeCluster'],
  ['cert', 'issueCert'],
  ['join', 'addLearner'],
  ['config-sync', 'syncConfig'],
  ['start', 'startMember'],
  ['catch-up', 'awaitCatchUp'],
  ['promote', 'promoteLearner'],
];

describe('fault matrix', () => {
  before(async () => {
    if (existsSync(TEMPORAL_DIR)) rmSync(TEMPORAL_DIR, { recursive: true, force: true });
    await Promise.all([startServer(), writeWorkflowBundle(BUNDLE)]);
    steward = await StewardClient.connect({ address: temporal.address });
  });
  after(async () => {
    await steward?.close();
    await temporal?.stop();
    console.log('\nfault matrix');
    for (const r of results) console.log(`  ${r.survived ? 'survived' : 'LOST    '}  ${r.name}: ${r.detail}`);
    const lost = results.filter((r) => !r.survived).length;
    console.log(`faults: ${results.length - lost} survived, ${lost} lost`);
  });

  for (const [step, type] of STEPS) {
    it(`worker killed during ${step} (${type} done, not reported)`, async () => {
      await runCase(`worker killed during ${step}, work done but not reported`, { add: ['etcd4'], hold: (m) => `${type}:after:${m}` }, async (ctx) => {
        await waitFor(`the worker to reach the end of ${type}`, () => existsSync(ctx.marker), 120_000, 20);
        return killAndMeasure(ctx, type);
      });
      assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
    });
    it(`worker killed just after ${step} completed`, async () => {
      await runCase(`worker killed after ${step} completed`, { add: ['etcd4'] }, async (ctx) => {
        await untilCompleted(ctx, type, 30);
        return killAndMeasure(ctx, 'next');
      });
      assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
    });
  }

  it('Temporal server restarted mid-operation (persisted database)', async () => {
    await runCase('Temporal server restarted after join', { add: ['etcd4'] }, async (ctx) => {
      await untilCompleted(ctx, 'addLearner', 50);
      const t = Date.now();
      await temporal.stop({ keepFiles: true });
      await sleep(2_000);
      await startServer();
      return `server down ${((Date.now() - t) / 1000).toFixed(1)} s`;
    });
    assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
  });

  for (const [host, who] of [
    ['etcd4', "the new host's"],
    ['etcd1', "the CA host's"],
  ] as const) {
    it(`${who} sshd down for a while during the cert step: retried, then success`, async () => {
      await runCase(`${who} sshd (${host}) down 6 s during cert`, { add: ['etcd4'] }, async (ctx) => {
        await untilCompleted(ctx, 'preflightScaleOut');
        await ctx.bed.stopSshd(host);
        await sleep(6_000);
        await ctx.bed.startSshd(host);
        return `sshd of ${host} stopped after preflight, back 6 s later`;
      });
      assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
    });
  }

  it("the new host's sshd never returns after join: clear failure, learner rolled back", async () => {
    await runCase("new host's sshd gone for good after join", { add: ['etcd4'], policy: { stepTimeout: '15s' }, expectFailure: /etcd4.*cannot reach sshd.*Rolled back: etcd4/s }, async (ctx) => {
      await untilCompleted(ctx, 'addLearner', 10);
      await ctx.bed.stopSshd('etcd4');
      return 'sshd of etcd4 stopped right after the join, never started again';
    });
    assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
  });


  it('an existing member killed mid-operation: the gate holds, the operation resumes when it is back', async () => {
    await runCase('existing member etcd2 SIGKILLed between batches', { add: ['etcd4', 'etcd5'], restarted: ['etcd2'] }, async (ctx) => {
      await untilCompleted(ctx, 'promoteLearner', 10);
      process.kill(ctx.bed.etcdPid('etcd2')!, 'SIGKILL');
      const held = await waitFor('the gate to hold', async () => (await ctx.op.status()).waitingFor.find((w) => w.includes('etcd2')), 60_000, 100);
      const learnersWhileDown = (await ctx.bed.observe()).learners;
      await sleep(3_000);
      const { sshRun } = await import('../../activities/ssh');
      await sshRun(ctx.bed.host('etcd2').ssh, ctx.bed.sshIdentity, ctx.bed.spec.service.start.replaceAll('{name}', 'etcd2'));
      if (learnersWhileDown > 0) throw new Error('a learner was added while etcd2 was down');
      return `gate held ("${held}"), resumed when etcd2 was back`;
    });
    assert.ok(results.at(-1)!.survived, results.at(-1)!.detail);
  });
});
