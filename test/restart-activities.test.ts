// The rolling-restart activities on the real bed (real etcd, real sshd): each one run twice in a
// row ends in the same state as run once (a worker that dies after the work, before the reply).
// Twice over: logged in as root, and as an unprivileged user with sudo through a bastion.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities, type Activities } from '../activities';
import type { StartFailedDetails } from '../activities/restart';
import { type ClusterSpec, memberPaths } from '../spec/cluster';
import { type EnvChange, type RollingRestartInput, parseRollingRestartInput } from '../spec/operations';
import { Bed } from '../testbed';
import { activityRunner } from '../testbed/run-activity';

const QUOTA = 'ETCD_QUOTA_BACKEND_BYTES';
const change = (set: Record<string, string>, unset: string[] = []): EnvChange => ({ set, unset });

for (const access of ['root', 'sudo'] as const) {
  describe(`rolling-restart activities (each run twice on the real bed, ${access === 'root' ? 'as root' : 'as etcd-steward with sudo through a bastion'})`, () => {
    let bed: Bed;
    let acts: Activities;
    /** Activity failures are what several cases expect: not logged as warnings. */
    const quiet = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const env = quiet();
    const timings: string[] = [];

    /** Runs an activity as a worker would, waiting out BENIGN states as the retry policy does. */
    const run = activityRunner(() => acts, env);

    /** Everything these activities may change: members, env files and their sidecars, processes. */
    async function snapshot() {
      const o = await bed.observe();
      const files: Record<string, string | null> = {};
      for (const h of bed.hosts) {
        const f = memberPaths(bed.spec, h.name).envFile;
        for (const x of [f, `${f}.steward-previous`]) files[x] = existsSync(x) ? createHash('sha256').update(readFileSync(x)).digest('hex') : null;
      }
      return { members: o.members.map((m) => `${m.id} ${m.name} ${m.isLearner ? 'learner' : 'voter'}`).sort(), files, pids: bed.etcdProcesses() };
    }

    async function twice<K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>) {
      let t = Date.now();
      const first = await run(name, ...args);
      const firstMs = Date.now() - t;
      const once = await snapshot();
      t = Date.now();
      const second = await run(name, ...args);
      timings.push(`${String(name)}: ${firstMs} ms, again ${Date.now() - t} ms`);
      assert.deepEqual(await snapshot(), once, `${String(name)} run twice left a different state than once`);
      return [first, second] as const;
    }

    const ref = (name: string) => ({ spec: bed.spec, member: bed.spec.members.find((m) => m.name === name)! });
    const envText = (name: string) => readFileSync(memberPaths(bed.spec, name).envFile, 'utf8');
    async function leaderName(): Promise<string> {
      const o = await bed.waitHealthy(30_000);
      return o.statuses.find((s) => s.id === o.leaderId)!.name;
    }
    async function aFollower(): Promise<string> {
      const leader = await leaderName();
      return bed.spec.members.find((m) => m.name !== leader)!.name;
    }
    const request = (extra: Partial<Record<keyof RollingRestartInput, unknown>> = {}) => parseRollingRestartInput({ spec: bed.spec, reason: 'test', ...extra });

    before(async () => {
      bed = await Bed.up({ hosts: 3, members: 3, ...(access === 'sudo' ? { access, bastion: true } : {}) });
      acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
    });
    after(async () => {
      await bed?.down();
      if (timings.length) console.log(`timings:\n  ${timings.join('\n  ')}`);
    });

    it('preflightRollingRestart accepts the bed, only reading', async () => {
      const [a, b] = await twice('preflightRollingRestart', request());
      const user = bed.spec.members[0]!.ssh.user;
      const via = access === 'sudo' ? [`${bed.bastion!.address}:${bed.bastion!.port}`] : [];
      const access_ = ['etcd1', 'etcd2', 'etcd3'].map((member) => ({ member, user, via, sudo: access === 'sudo' }));
      assert.deepEqual(a, { members: ['etcd1', 'etcd2', 'etcd3'], warnings: [], down: [], access: access_ });
      assert.deepEqual(b, a);
    });

    it('preflightRollingRestart refuses a spec that does not match the cluster, an unknown member, a broken mainPid template', async () => {
      const two: ClusterSpec = { ...bed.spec, members: bed.spec.members.slice(0, 2) };
      await assert.rejects(run('preflightRollingRestart', parseRollingRestartInput({ spec: two, reason: 'test' })), (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure && e.nonRetryable && e.type === 'InvalidInput', String(e));
        assert.match(e.message, /^rolling restart refused before any change:\n {2}- the cluster has a member "etcd3" .* that the spec does not list: add it to the spec first/);
        return true;
      });
      const raw = { spec: bed.spec, members: ['etcd1', 'etcd9'], reason: 'test' } as unknown as RollingRestartInput;
      await assert.rejects(run('preflightRollingRestart', raw), (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure && e.nonRetryable && e.type === 'InvalidInput', String(e));
        assert.match(e.message, /members\[1\]: "etcd9" is not a member of cluster bed/);
        return true;
      });
      const broken: ClusterSpec = { ...bed.spec, service: { ...bed.spec.service, mainPid: 'echo not-a-pid' } };
      await assert.rejects(run('preflightRollingRestart', parseRollingRestartInput({ spec: broken, members: ['etcd2'], reason: 'test' })), (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure && e.type === 'InvalidInput', String(e));
        assert.match(e.message, /etcd2: service\.mainPid `echo not-a-pid` printed "not-a-pid", not a pid/);
        return true;
      });
    });

    it('readMemberPid reads the running pid and the env values asked for', async () => {
      const [a, b] = await twice('readMemberPid', { ...ref('etcd1'), envKeys: [QUOTA, 'ETCD_SNAPSHOT_COUNT'] });
      assert.equal(a.pid, bed.etcdPid('etcd1'));
      assert.deepEqual(a.env, { [QUOTA]: null, ETCD_SNAPSHOT_COUNT: '10000' });
      assert.deepEqual(b, a);
      assert.deepEqual(await run('readMemberPid', ref('etcd1')), { pid: a.pid });
    });

    it('restartMember applies an env change once; the retry finds it done and still reports the original values', async () => {
      const name = await aFollower();
      const original = envText(name);
      const pidBefore = bed.etcdPid(name);
      const [r1, r2] = await twice('restartMember', { ...ref(name), pidBefore, change: change({ [QUOTA]: '4294967296' }) });
      assert.equal(r1.restarted, true);
      assert.notEqual(r1.pid, pidBefore);
      assert.equal(r1.pid, bed.etcdPid(name));
      assert.deepEqual(r1.envChanged, [QUOTA]);
      assert.deepEqual(r1.previous, { [QUOTA]: null });
      assert.deepEqual(r1.running, { [QUOTA]: '4294967296' });
      assert.ok(r1.downMs > 0);
      assert.deepEqual(r2, { ...r1, restarted: false, envChanged: [], downMs: 0 });
      assert.equal(envText(name), `${original}${QUOTA}=4294967296\n`);
      timings.push(`  (${name} was down for ${r1.downMs} ms)`);

      const [w1, w2] = await twice('awaitMemberReady', { endpoints: bed.endpoints, member: ref(name).member, maxIndexSpread: 10 });
      assert.equal(w2.id, w1.id);
      assert.ok(w1.samples >= 2);

      // The worker died after writing the env file, before the start: the member is down and a
      // retry (same pidBefore) starts it, with the original values from the sidecar.
      await run('stopMember', ref(name));
      const r3 = await run('restartMember', { ...ref(name), pidBefore, change: change({ [QUOTA]: '4294967296' }) });
      assert.equal(r3.restarted, true);
      assert.deepEqual(r3.envChanged, []);
      assert.deepEqual(r3.previous, { [QUOTA]: null });
      assert.deepEqual(r3.running, { [QUOTA]: '4294967296' });
      await run('awaitMemberReady', { endpoints: bed.endpoints, member: ref(name).member, maxIndexSpread: 10 });

      // The undo: the inverse change restores the file byte for byte and the process's environment.
      const [u1, u2] = await twice('restartMember', { ...ref(name), pidBefore: r3.pid, change: change({}, [QUOTA]) });
      assert.equal(u1.restarted, true);
      assert.deepEqual(u1.envChanged, [QUOTA]);
      assert.deepEqual(u1.previous, { [QUOTA]: '4294967296' });
      assert.deepEqual(u1.running, { [QUOTA]: null });
      assert.equal(u2.restarted, false);
      assert.deepEqual(u2.previous, { [QUOTA]: '4294967296' });
      assert.equal(envText(name), original);
      await bed.waitHealthy(30_000);
    });

    it('a process with another pid counts as restarted only when its environment shows the change', async () => {
      const name = await aFollower();
      const original = envText(name);
      const pidBefore = bed.etcdPid(name);
      await run('restartMember', { ...ref(name), pidBefore }); // restarted by someone else, without the change
      writeFileSync(memberPaths(bed.spec, name).envFile, `${original}${QUOTA}=4294967296\n`); // the file edited by hand
      const r = await run('restartMember', { ...ref(name), pidBefore, change: change({ [QUOTA]: '4294967296' }) });
      assert.equal(r.restarted, true, 'the running process did not have the change: it must be restarted');
      assert.deepEqual(r.envChanged, []);
      assert.deepEqual(r.running, { [QUOTA]: '4294967296' });
      writeFileSync(memberPaths(bed.spec, name).envFile, original);
      await run('restartMember', { ...ref(name), pidBefore: r.pid });
      await bed.waitHealthy(30_000);
    });

    it('restartMember of a member that was down (pidBefore null) starts it, once', async () => {
      const name = await aFollower();
      await run('stopMember', ref(name));
      assert.deepEqual(await run('readMemberPid', ref(name)), { pid: null });
      const [r1, r2] = await twice('restartMember', { ...ref(name), pidBefore: null });
      assert.equal(r1.restarted, true);
      assert.equal(r1.pid, bed.etcdPid(name));
      assert.deepEqual([r1.envChanged, r1.previous, r1.running], [[], {}, {}]);
      assert.equal(r2.restarted, false);
      assert.equal(r2.pid, r1.pid);
      await run('awaitMemberReady', { endpoints: bed.endpoints, member: ref(name).member, maxIndexSpread: 10 });
      await bed.waitHealthy(30_000);
    });

    it('a change etcd refuses to start with: StartFailed with the log tail, again on a retry; the undo starts it', async () => {
      const name = await aFollower();
      const original = envText(name);
      const svc = bed.spec.service.start.replaceAll('{name}', name);
      const check = (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure, String(e));
        assert.equal(e.type, 'StartFailed');
        assert.equal(e.nonRetryable, true);
        assert.ok(e.message.startsWith(`${name}: \`${svc}\` failed`), e.message);
        assert.match(e.message, /last lines of its log \(`.*etcd-service logs .*`\):\n(.*\n)*.*invalid value "notanumber" for ETCD_QUOTA_BACKEND_BYTES/);
        const d = e.details?.[0] as StartFailedDetails;
        assert.deepEqual(d.previous, { [QUOTA]: null });
        return true;
      };
      const pidBefore = bed.etcdPid(name);
      const bad = { ...ref(name), pidBefore, change: change({ [QUOTA]: 'notanumber' }) };
      await assert.rejects(run('restartMember', bad), check);
      const once = await snapshot();
      await assert.rejects(run('restartMember', bad), check);
      assert.deepEqual(await snapshot(), once);
      assert.deepEqual(await run('readMemberPid', ref(name)), { pid: null });

      const undo = await run('restartMember', { ...ref(name), pidBefore: null, change: change({}, [QUOTA]) });
      assert.equal(undo.restarted, true);
      assert.deepEqual(undo.running, { [QUOTA]: null });
      assert.equal(envText(name), original);
      await bed.waitHealthy(30_000);
    });

    it('moveLeader moves leadership to the target once; the second call finds it there', async () => {
      const from = await leaderName();
      const to = await aFollower();
      const [m1, m2] = await twice('moveLeader', { endpoints: bed.endpoints, to: ref(to).member });
      assert.deepEqual(m1, { from, to, moved: true });
      assert.deepEqual(m2, { from: to, to, moved: false });
      assert.equal(await leaderName(), to);
      await assert.rejects(run('moveLeader', { endpoints: bed.endpoints, to: { name: 'stranger', peerURLs: ['https://127.10.0.9:2380'] } }), (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure && e.nonRetryable && e.type === 'BadLeaderTarget', String(e));
        assert.match(e.message, /stranger .* is not a member of the cluster/);
        return true;
      });
    });

    it('awaitMemberReady waits for a restarted leader to catch up, and stops when cancelled', async () => {
      const name = await leaderName();
      const r = await run('restartMember', { ...ref(name), pidBefore: bed.etcdPid(name) });
      assert.equal(r.restarted, true);
      const t = Date.now();
      const w = await run('awaitMemberReady', { endpoints: bed.endpoints, member: ref(name).member, maxIndexSpread: 10, pollMs: 100 });
      timings.push(`restart of the leader ${name}: down ${r.downMs} ms, ready ${Date.now() - t} ms later (${w.samples} samples)`);
      assert.equal(BigInt(w.leaderApplied) - BigInt(w.applied) <= 10n, true);
      await bed.waitHealthy(30_000);

      // A member that does not come back: the wait goes on until it is cancelled (abort).
      const follower = await aFollower();
      await run('stopMember', ref(follower));
      const cancelEnv = quiet();
      const beats: unknown[] = [];
      cancelEnv.on('heartbeat', (d: unknown) => beats.push(d));
      const waiting = (cancelEnv.run as (f: unknown, ...a: unknown[]) => Promise<unknown>)(acts.awaitMemberReady, { endpoints: bed.endpoints, member: ref(follower).member, maxIndexSpread: 10, pollMs: 100 });
      await new Promise((res) => setTimeout(res, 1500));
      cancelEnv.cancel();
      await assert.rejects(waiting, (e: unknown) => e instanceof CancelledFailure);
      assert.ok(beats.some((b) => /does not answer yet/.test(JSON.stringify(b))), JSON.stringify(beats));
      await run('restartMember', { ...ref(follower), pidBefore: null });
      await bed.waitHealthy(30_000);
    });

    it('preflightRollingRestart names a member that is down: it is restarted first', async () => {
      const name = await aFollower();
      await run('stopMember', ref(name));
      const plan = await run('preflightRollingRestart', request());
      assert.deepEqual(plan.down, [name]);
      assert.ok(plan.warnings.some((w) => w.startsWith(`${name} is not running now: it will be restarted first`)), plan.warnings.join('\n'));
      await run('startMember', ref(name));
      await bed.waitHealthy(30_000);
    });

    it('restartMember with a new binary installs it once, keeping the old one; the retry finds it running; restoring puts the old one back, once', async () => {
      const name = await aFollower();
      const installed = memberPaths(bed.spec, name).etcdBinary;
      const original = readFileSync(installed);
      // "a new build": the bed's etcd with one byte appended (an ELF binary ignores trailing bytes), staged where an operator would put it
      const template = bed.spec.layout.etcdBinary.replace(/\/usr\/local\/bin\/etcd$/, '/opt/etcd-new/etcd');
      const staged = memberPaths({ layout: { ...bed.spec.layout, etcdBinary: template } }, name).etcdBinary;
      mkdirSync(dirname(staged), { recursive: true });
      writeFileSync(staged, Buffer.concat([original, Buffer.from([0])]), { mode: 0o755 });
      const pidBefore = bed.etcdPid(name);
      const [r1, r2] = await twice('restartMember', { ...ref(name), pidBefore, binary: { install: template } });
      assert.ok(r1.restarted && !r2.restarted, `restarted: ${r1.restarted}, then ${r2.restarted}`);
      assert.equal(r2.pid, r1.pid);
      assert.ok(readFileSync(installed).equals(readFileSync(staged)), `${installed} is not the new binary`);
      assert.ok(readFileSync(`${installed}.steward-previous`).equals(original), 'the binary it replaced is not kept');
      assert.ok(readFileSync(`/proc/${r1.pid}/exe`).equals(readFileSync(staged)), 'the running process is not the new binary');
      // a missing binary: refused before anything is stopped
      const pid = bed.etcdPid(name);
      await assert.rejects(run('restartMember', { ...ref(name), pidBefore: pid, binary: { install: '/nonexistent/{name}/etcd' } }), (e: unknown) => e instanceof ApplicationFailure && e.type === 'MissingBinary' && /nothing was stopped/.test(e.message));
      assert.equal(bed.etcdPid(name), pid, 'a restart with a missing binary stopped the member');
      // the undo: the kept binary back, once
      const [u1, u2] = await twice('restartMember', { ...ref(name), pidBefore: pid, binary: { restore: true } });
      assert.ok(u1.restarted && !u2.restarted);
      assert.ok(readFileSync(installed).equals(original), `${installed} is not the original binary again`);
      await bed.waitHealthy(30_000);
    });
  });
}
