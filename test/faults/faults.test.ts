// The fault matrix (npm run test:faults): worker crashes at every step of a scale-out, a Temporal
// server restart, and host faults, each on a fresh bed, each judged "survived" or "lost" (a case
// whose set-up fails is lost too). Ends with one line per case and
// `faults: <survived> survived, <lost> lost of <attempted>`; the suite fails when any was lost.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { StewardClient, operationWorkflowId, type Operation } from '../../client';
import { Bed } from '../../testbed';
import { sleep } from '../../testbed/procs';
import { startTemporal, type TemporalServer } from '../../testbed/temporal';
import { writeWorkflowBundle } from '../../scripts/bundle';
import { LivenessSampler } from '../../testbed/liveness';
import { MembershipSampler, causeChain, recordHistory, waitFor } from '../helpers';
import { WorkerProcess, activityCompletions, checkEndState, type EndState } from './harness';

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
/** Every case's bed lives here (Bed.up's default), so a half-made one can be cleaned up. */
const BED_DIR = join(tmpdir(), 'etcd-steward-bed');
/** The bed's cluster is always named "bed": one operation id for every case. */
const WORKFLOW_ID = operationWorkflowId('bed');
/** Fewer membership samples than this and the learner check (I1) has not really looked. */
const MIN_SAMPLES = 5;
let temporal: TemporalServer;
let steward: StewardClient;

async function startServer(): Promise<void> {
  temporal = await startTemporal({ dir: TEMPORAL_DIR, dbFilename: DB });
}

const EXISTING = ['etcd1', 'etcd2', 'etcd3'];

/** The operation a case runs on a bed whose members are EXISTING, and the end state it must leave. */
interface OperationUnderTest {
  /** Hosts the bed needs (etcd1..3 are members at the start, the rest are spare hosts). */
  hosts: number;
  start(bed: Bed): Promise<Operation<{ outcome: string }>>;
  /** When it completes, and when it fails (a case with `expectFailure`). */
  ifCompleted: EndState;
  ifFailed: EndState;
  /**
   * Watch every member's liveness (~100 ms): at most this many may be seen down at once, and, with
   * `restartedOnce`, each member's etcd pid must change exactly once (no member restarted twice).
   */
  liveness?: { maxDown: number; restartedOnce: boolean };
}

/** A scale-out adding `add`: existing members are never restarted, a failure rolls back to EXISTING. */
function scaleOut(add: string[], policy?: Record<string, unknown>): OperationUnderTest {
  const keep = { expect: 'unchanged', of: EXISTING } as const;
  return {
    hosts: EXISTING.length + add.length,
    start: (bed) => steward.startScaleOut({ spec: bed.spec, add: add.map((h) => Bed.memberInput(bed.host(h))), ...(policy ? { policy } : {}) }),
    ifCompleted: { members: [...EXISTING, ...add], pids: keep },
    ifFailed: { members: EXISTING, pids: keep },
  };
}

/** A rolling restart of the 3 members: every pid changes once, never more than one member down. */
function rollingRestart(): OperationUnderTest {
  return {
    hosts: EXISTING.length,
    start: (bed) => steward.startRollingRestart({ spec: bed.spec, reason: 'fault suite' }),
    ifCompleted: { members: EXISTING, pids: { expect: 'changed', of: EXISTING } },
    ifFailed: { members: EXISTING, pids: { expect: 'changed', of: [] } },
    liveness: { maxDown: 1, restartedOnce: true },
  };
}

/** A scale-in removing etcd3: the two that stay are never restarted; a failure before the removal leaves EXISTING. */
function scaleIn(): OperationUnderTest {
  const stay = EXISTING.filter((m) => m !== 'etcd3');
  return {
    hosts: EXISTING.length,
    start: (bed) => steward.startScaleIn({ spec: bed.spec, remove: ['etcd3'] }),
    ifCompleted: { members: stay, pids: { expect: 'unchanged', of: stay } },
    ifFailed: { members: EXISTING, pids: { expect: 'unchanged', of: EXISTING } },
  };
}

/** etcd3 replaced by etcd4, remove first: etcd1 and etcd2 are never restarted; a failure before the removal leaves EXISTING. */
function replaceRemoveFirst(): OperationUnderTest {
  const stay = ['etcd1', 'etcd2'];
  return {
    hosts: EXISTING.length + 1,
    start: (bed) => steward.startReplaceMember({ spec: bed.spec, replace: 'etcd3', with: Bed.memberInput(bed.host('etcd4')), policy: { strategy: 'remove-first' } }),
    ifCompleted: { members: [...stay, 'etcd4'], pids: { expect: 'unchanged', of: stay } },
    ifFailed: { members: EXISTING, pids: { expect: 'unchanged', of: stay } },
  };
}

interface CaseOptions {
  /** The first worker holds at this point (STEWARD_TEST_FAULT_HOLD), given the marker file it touches. */
  hold?: (marker: string) => string;
  /** The operation must fail, saying this; the end state is then the operation's `ifFailed`. */
  expectFailure?: RegExp;
  /** Members the fault itself restarts: left out of the pid check. */
  restarted?: string[];
  /** Record the history as test/histories/<recordAs>.json (with RECORD_HISTORIES=1). */
  recordAs?: string;
  /** Runs on the fresh bed before the operation starts (e.g. to arm a fixture). */
  beforeStart?: (bed: Bed) => void;
  /** The etcd the bed runs (testbed/etcdVersions.ts); default the bed's (Debian's 3.4). */
  etcdVersion?: string;
}

interface CaseContext {
  bed: Bed;
  op: Operation<{ outcome: string }>;
  marker: string;
  worker: () => WorkerProcess;
  replaceWorker: () => Promise<void>;
  history: () => Promise<unknown>;
}

/**
 * Terminates the cluster's operation if one is running (a lost case's leftover would act on the
 * next bed, and would block its start: one operation per cluster). Says what it did, or null.
 */
async function terminateRunning(reason: string): Promise<string | null> {
  const handle = steward.temporal.workflow.getHandle(WORKFLOW_ID);
  try {
    if ((await handle.describe()).status.name !== 'RUNNING') return null;
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return null;
    throw e;
  }
  await handle.terminate(reason);
  return `terminated a running ${WORKFLOW_ID} (${reason})`;
}

/**
 * One operation on a fresh bed with a fault injected by `inject`; records and returns survived
 * or lost. Never throws: a failure anywhere, set-up included, makes the case lost.
 */
async function runCase(name: string, operation: OperationUnderTest, opts: CaseOptions, inject: (ctx: CaseContext) => Promise<string>): Promise<CaseResult> {
  const problems: string[] = [];
  const notes: string[] = [];
  let detail = '';
  let stage = 'set-up: terminating a leftover operation';
  /** What the case has started, for the clean-up. */
  const live: { bed?: Bed; worker?: WorkerProcess; sampler?: MembershipSampler; liveness?: LivenessSampler } = {};
  try {
    const leftover = await terminateRunning(`fault suite: still running when case "${name}" began`);
    if (leftover) notes.push(leftover);
    stage = 'set-up: Bed.up';
    const bed = (live.bed = await Bed.up({ dir: BED_DIR, hosts: operation.hosts, members: EXISTING.length, ...(opts.etcdVersion ? { etcdVersion: opts.etcdVersion } : {}) }));
    const marker = join(bed.dir, 'hold-reached');
    const before = bed.etcdProcesses();
    stage = 'set-up: starting the worker';
    live.worker = await WorkerProcess.start(bed, temporal.address, { name: 'first', workflowBundle: BUNDLE, ...(opts.hold ? { hold: opts.hold(marker) } : {}) });
    let n = 0;
    stage = 'set-up: starting the membership sampler';
    const sampler = (live.sampler = new MembershipSampler(bed.endpoints, bed.etcdCredentials, 200));
    if (operation.liveness) {
      stage = 'set-up: starting the liveness sampler';
      live.liveness = new LivenessSampler(
        bed.spec.members.map((m) => ({ name: m.name, clientURL: m.clientURLs[0]! })),
        bed.etcdCredentials,
        (x) => bed.etcdPid(x),
      );
    }
    opts.beforeStart?.(bed);
    stage = 'set-up: starting the operation';
    const startedAt = Date.now();
    const op = await operation.start(bed);
    stage = 'case';
    const outcome = op.result().then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    detail = await inject({
      bed,
      op,
      marker,
      worker: () => live.worker!,
      replaceWorker: async () => {
        await live.worker!.kill();
        live.worker = await WorkerProcess.start(bed, temporal.address, { name: `replacement-${++n}`, workflowBundle: BUNDLE });
      },
      history: () => op.handle.fetchHistory(),
    });
    const end = await within(outcome, 180_000, () => ({ ok: false as const, e: new Error('did not end within 180 s') }));
    const tookS = ((Date.now() - startedAt) / 1000).toFixed(1);
    await sampler.stop();
    let expected: EndState;
    if (opts.expectFailure) {
      expected = operation.ifFailed;
      if (end.ok) problems.push(`expected a failure, got ${end.r.outcome}`);
      else if (!opts.expectFailure.test(causeChain(end.e))) problems.push(`failure does not say why: ${causeChain(end.e)}`);
    } else {
      expected = operation.ifCompleted;
      if (!end.ok) problems.push(`operation failed: ${causeChain(end.e)}`);
      else if (end.r.outcome !== 'completed') problems.push(`operation ${end.r.outcome}`);
    }
    const pids = { ...expected.pids, of: expected.pids.of.filter((x) => !opts.restarted?.includes(x)) };
    problems.push(...(await checkEndState(bed, { ...expected, pids }, before)));
    if (sampler.samples.length < MIN_SAMPLES) {
      problems.push(`learner check not made: ${sampler.samples.length} membership samples over ${tookS} s (${sampler.failures} failed${sampler.lastError ? `, last: ${sampler.lastError}` : ''})`);
    } else if (sampler.maxLearners() > 1) problems.push(`${sampler.maxLearners()} learners at once`);
    if (operation.liveness && live.liveness) {
      await live.liveness.stop();
      problems.push(...livenessProblems(live.liveness, bed.spec.members.map((m) => m.name), operation.liveness));
    }
    if (opts.recordAs) await recordHistory(op.handle, opts.recordAs, temporal.address);
  } catch (e) {
    problems.push(`${stage === 'case' ? 'case error' : `${stage} failed`}: ${causeChain(e)}`);
  } finally {
    // Each clean-up step on its own: one failing must not leave the next case a running worker,
    // operation or bed.
    const cleanUp = async (what: string, f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (e) {
        problems.push(`clean-up (${what}) failed: ${causeChain(e)}`);
      }
    };
    await cleanUp('sampler', async () => live.sampler?.stop());
    await cleanUp('liveness sampler', async () => live.liveness?.stop());
    await cleanUp('operation', async () => {
      const t = await terminateRunning(`fault suite: case "${name}" ended with its operation still running`);
      if (t) notes.push(t);
    });
    await cleanUp('worker', async () => live.worker?.stop());
    await cleanUp('bed', () => (live.bed ? live.bed.down() : Bed.cleanStale(BED_DIR)));
  }
  const r = { name, survived: problems.length === 0, detail: [...(problems.length ? problems : [detail]), ...notes].filter(Boolean).join('; ') };
  results.push(r);
  return r;
}

/** The process group of a process (field 5 of /proc/PID/stat). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** What the liveness samples say against the operation's bound (I3) and "restarted once". */
function livenessProblems(live: LivenessSampler, members: string[], want: { maxDown: number; restartedOnce: boolean }): string[] {
  const out: string[] = [];
  const counts = live.counts();
  const few = members.filter((m) => (counts[m] ?? 0) < 10);
  if (few.length) return [`liveness check not made: too few samples of ${few.map((m) => `${m} (${counts[m] ?? 0})`).join(', ')}`];
  const worst = live.maxDownAtOnce();
  if (worst.count > want.maxDown) out.push(`${worst.count} members down at once (${worst.members.join(', ')}), bound ${want.maxDown}`);
  if (want.restartedOnce) {
    for (const m of members) {
      const pids = live.pids(m);
      if (pids.length !== 2) out.push(`${m}: pids seen ${pids.join(' → ') || 'none'} (restarted ${Math.max(0, pids.length - 1)} times, expected once)`);
    }
  }
  return out;
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
async function killAndMeasure(ctx: CaseContext, type: string | 'next'): Promise<string> {
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
async function untilCompleted(ctx: CaseContext, type: string, everyMs = 20): Promise<void> {
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
    try {
      await steward?.close();
      await temporal?.stop();
    } finally {
      console.log('\nfault matrix');
      for (const r of results) console.log(`  ${r.survived ? 'survived' : 'LOST    '}  ${r.name}: ${r.detail}`);
      const lost = results.filter((r) => !r.survived).length;
      console.log(`faults: ${results.length - lost} survived, ${lost} lost of ${results.length}`);
      assert.equal(lost, 0, `${lost} of ${results.length} fault cases lost`);
    }
  });

  /** A test that runs one case and fails unless it survived. */
  const survives = (...args: Parameters<typeof runCase>) => async () => {
    const r = await runCase(...args);
    assert.ok(r.survived, r.detail);
  };

  for (const [step, type] of STEPS) {
    it(
      `worker killed during ${step} (${type} done, not reported)`,
      survives(`worker killed during ${step}, work done but not reported`, scaleOut(['etcd4']), { hold: (m) => `${type}:after:${m}` }, async (ctx) => {
        await waitFor(`the worker to reach the end of ${type}`, () => existsSync(ctx.marker), 120_000, 20);
        return killAndMeasure(ctx, type);
      }),
    );
    it(
      `worker killed just after ${step} completed`,
      survives(`worker killed after ${step} completed`, scaleOut(['etcd4']), step === 'cert' ? { recordAs: 'scaleOut-worker-crash-and-resume' } : {}, async (ctx) => {
        await untilCompleted(ctx, type, 30);
        return killAndMeasure(ctx, 'next');
      }),
    );
  }

  it(
    'Temporal server restarted mid-operation (persisted database)',
    survives('Temporal server restarted after join', scaleOut(['etcd4']), {}, async (ctx) => {
      await untilCompleted(ctx, 'addLearner', 50);
      const t = Date.now();
      await temporal.stop({ keepFiles: true });
      await sleep(2_000);
      await startServer();
      return `server down ${((Date.now() - t) / 1000).toFixed(1)} s`;
    }),
  );

  for (const [host, who] of [
    ['etcd4', "the new host's"],
    ['etcd1', "the CA host's"],
  ] as const) {
    it(
      `${who} sshd down for a while during the cert step: retried, then success`,
      survives(`${who} sshd (${host}) down 6 s during cert`, scaleOut(['etcd4']), {}, async (ctx) => {
        await untilCompleted(ctx, 'preflightScaleOut');
        await ctx.bed.stopSshd(host);
        await sleep(6_000);
        await ctx.bed.startSshd(host);
        return `sshd of ${host} stopped after preflight, back 6 s later`;
      }),
    );
  }

  it(
    "the new host's sshd never returns after join: clear failure, learner rolled back",
    survives("new host's sshd gone for good after join", scaleOut(['etcd4'], { stepTimeout: '15s' }), { expectFailure: /etcd4.*cannot reach sshd.*Rolled back: etcd4/s }, async (ctx) => {
      await untilCompleted(ctx, 'addLearner', 10);
      await ctx.bed.stopSshd('etcd4');
      return 'sshd of etcd4 stopped right after the join, never started again';
    }),
  );

  it(
    'an existing member killed mid-operation: the gate holds, the operation resumes when it is back',
    survives('existing member etcd2 SIGKILLed between batches', scaleOut(['etcd4', 'etcd5']), { restarted: ['etcd2'] }, async (ctx) => {
      await untilCompleted(ctx, 'promoteLearner', 10);
      process.kill(ctx.bed.etcdPid('etcd2')!, 'SIGKILL');
      const held = await waitFor('the gate to hold', async () => (await ctx.op.status()).waitingFor.find((w) => w.includes('etcd2')), 60_000, 100);
      const learnersWhileDown = (await ctx.bed.observe()).learners;
      await sleep(3_000);
      const { sshRun } = await import('../../activities/ssh');
      await sshRun(ctx.bed.host('etcd2').ssh, ctx.bed.sshIdentity, ctx.bed.spec.service.start.replaceAll('{name}', 'etcd2'));
      if (learnersWhileDown > 0) throw new Error('a learner was added while etcd2 was down');
      return `gate held ("${held}"), resumed when etcd2 was back`;
    }),
  );
  // ---- rolling restart ----------------------------------------------------------------------

  it(
    'rolling restart: worker killed while a member is stopped (after stop, before start)',
    survives(
      'rolling restart: worker killed while a member is down',
      rollingRestart(),
      { beforeStart: (bed) => EXISTING.forEach((m) => writeFileSync(join(bed.host(m).root, 'run', 'TEST-hold-after-stop'), '')) },
      async (ctx) => {
        const runDir = (m: string) => join(ctx.bed.host(m).root, 'run');
        const held = await waitFor('a member to be held stopped', () => EXISTING.find((m) => existsSync(join(runDir(m), 'TEST-held'))), 120_000, 20);
        if (ctx.bed.etcdPid(held) !== null) throw new Error(`${held} is held after its stop, yet its etcd runs`);
        const killedAt = Date.now();
        await ctx.worker().kill();
        // sshd lets a command outlive its client's connection, so the dead worker's restart script
        // would go on and start the member itself. Kill it too (its whole process group, as when the
        // host ends the session): the member stays down, and only the new worker can start it.
        const script = Number(readFileSync(join(runDir(held), 'TEST-held'), 'utf8'));
        const group = processGroup(script);
        if (!(group > 1) || group === processGroup(process.pid)) throw new Error(`refusing to kill process group ${group} of pid ${script}`);
        process.kill(-group, 'SIGKILL');
        for (const m of EXISTING) rmSync(join(runDir(m), 'TEST-hold-after-stop'), { force: true });
        await sleep(1_000);
        if (ctx.bed.etcdPid(held) !== null) throw new Error(`${held} runs again before the new worker could start it`);
        await ctx.replaceWorker();
        const done = await waitFor('restartMember to complete on the new worker', async () => activityCompletions(await ctx.history()).find((c) => c.type === 'restartMember' && c.at >= killedAt), 120_000, 200);
        return `${held} held stopped; the worker and its restart script on ${held} SIGKILLed; the new worker started it: restartMember completed ${((done.at - killedAt) / 1000).toFixed(1)} s after the kill`;
      },
    ),
  );

  it(
    'rolling restart: worker killed after a restart was done but before it was reported',
    survives('rolling restart: worker killed during restart, work done but not reported', rollingRestart(), { hold: (m) => `restartMember:after:${m}` }, async (ctx) => {
      await waitFor('the worker to reach the end of restartMember', () => existsSync(ctx.marker), 120_000, 20);
      return killAndMeasure(ctx, 'restartMember');
    }),
  );

  // ---- scale-in -----------------------------------------------------------------------------

  it(
    'scale-in: worker killed after MemberRemove was done but before it was reported',
    survives('scale-in: worker killed during removeMember, work done but not reported', scaleIn(), { hold: (m) => `removeMember:after:${m}` }, async (ctx) => {
      await waitFor('the worker to reach the end of removeMember', () => existsSync(ctx.marker), 120_000, 20);
      const gone = !(await ctx.bed.observe()).members.some((m) => m.name === 'etcd3');
      if (!gone) throw new Error('etcd3 is still in the member list when removeMember is held after its work');
      return `etcd3 removed, then ${await killAndMeasure(ctx, 'removeMember')} (it found etcd3 gone and went on)`;
    }),
  );

  it(
    'replace (remove first): worker killed between the removal and the add (MemberRemove done, not reported)',
    survives('replace: worker killed after removing etcd3, before adding etcd4', replaceRemoveFirst(), { hold: (m) => `removeMember:after:${m}` }, async (ctx) => {
      await waitFor('the worker to reach the end of removeMember', () => existsSync(ctx.marker), 120_000, 20);
      const o = await ctx.bed.observe();
      if (o.members.some((m) => m.name === 'etcd3')) throw new Error('etcd3 is still in the member list when removeMember is held after its work');
      if (o.members.length !== 2) throw new Error(`expected 2 members between the removal and the add, saw ${o.members.map((m) => m.name).join(', ')}`);
      return `etcd3 removed, cluster at 2 voters; then ${await killAndMeasure(ctx, 'removeMember')}, and etcd4 was added by the new worker`;
    }),
  );

  // ---- one worker-SIGKILL case per operation on each other etcd version ---------------------

  for (const version of (process.env.STEWARD_FAULT_ETCD_VERSIONS ?? '3.5,3.6,3.7').split(',').map((v) => v.trim()).filter(Boolean)) {
    const cases: [string, OperationUnderTest, string][] = [
      ['scale-out', scaleOut(['etcd4']), 'addLearner'],
      ['rolling restart', rollingRestart(), 'restartMember'],
      ['scale-in', scaleIn(), 'removeMember'],
      ['replace (remove first)', replaceRemoveFirst(), 'removeMember'],
    ];
    for (const [what, operation, type] of cases) {
      it(
        `etcd ${version}: ${what}, worker killed after ${type} did its work, before reporting it`,
        survives(`etcd ${version}: ${what}, worker killed during ${type}, work done but not reported`, operation, { hold: (m) => `${type}:after:${m}`, etcdVersion: version }, async (ctx) => {
          await waitFor(`the worker to reach the end of ${type}`, () => existsSync(ctx.marker), 120_000, 20);
          return killAndMeasure(ctx, type);
        }),
      );
    }
  }
});
