// Integration: the operator CLI as a child process, against a real bed (etcd, sshd, TLS) and a
// real Temporal dev server with an in-process worker. Its own addresses, ports and directories
// (127.21.0.x, 27233/28233, /tmp/etcd-steward-cli-*), so it can run beside the other suites.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Bed } from '../testbed';
import { startStack, waitFor, type Stack } from './helpers';

const ROOT = resolve(__dirname, '..');
const TEMPORAL = { dir: '/tmp/etcd-steward-cli-temporal', port: 27233, uiPort: 28233 };

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** `node --import tsx client/cli/main.ts ARGS`, with the Temporal address from the environment. */
function cli(args: string[], timeoutMs = 60_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${TEMPORAL.port}` };
  for (const k of ['STEWARD_TEMPORAL_ADDRESS', 'STEWARD_NAMESPACE', 'TEMPORAL_NAMESPACE', 'TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE', 'STEWARD_TASK_QUEUE', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS']) delete env[k];
  return new Promise((res) => {
    execFile(process.execPath, ['--import', 'tsx', '--disable-warning=DEP0123', 'client/cli/main.ts', ...args], { cwd: ROOT, env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string }) | null;
      res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
const noStack = (r: Run) => assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `no stack trace expected:\n${show(r)}`);

describe('the operator CLI', () => {
  let stack: Stack;
  let bed: Bed;
  let files: string;
  const f = (name: string) => join(files, name);

  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'etcd-steward-cli-files-'));
    [stack, bed] = await Promise.all([startStack(TEMPORAL), Bed.up({ hosts: 4, members: 3, net: '127.21.0', dir: '/tmp/etcd-steward-cli-bed' })]);
    await stack.startWorker(bed);
    writeFileSync(f('spec.json'), JSON.stringify(bed.spec, null, 2));
    writeFileSync(f('add.json'), JSON.stringify([Bed.memberInput(bed.host('etcd4'))], null, 2));
    // A fifth member on an address of the bed's net where no host (no sshd) is.
    const five = { name: 'etcd5', address: '127.21.0.5', ssh: { ...Bed.memberInput(bed.host('etcd4')).ssh, host: '127.21.0.5' } };
    writeFileSync(f('add-unreachable.yaml'), `- ${JSON.stringify(five)}\n`);
    writeFileSync(f('add-dup.json'), JSON.stringify([{ ...Bed.memberInput(bed.host('etcd4')), name: 'etcd2' }], null, 2));
  });
  after(async () => {
    await stack?.stop();
    await bed?.down();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  it('health: the report of a healthy cluster, exit 0', async () => {
    const r = await cli(['health', '--spec', f('spec.json')]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^cluster bed: healthy$/m, show(r));
    assert.match(r.stdout, /3 voting member\(s\), 0 learner\(s\), leader etcd[123], quorum 2, can lose 1 more/, show(r));
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.match(r.stdout, new RegExp(`^\\s+${n}\\s+[0-9a-f]+\\s+voter\\s+yes\\s+\\d+`, 'm'), show(r));
    // each member's server and cluster version, as it reports them (GET /version)
    assert.match(r.stdout, /\bSERVER\s+CLUSTER$/m, show(r));
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.match(r.stdout, new RegExp(`^\\s+${n}\\s.*\\s3\\.\\d+\\.\\d+\\s+3\\.\\d+\\.0$`, 'm'), show(r));
    assert.doesNotMatch(r.stdout, /mixed etcd versions/, show(r));
  });

  it('bad input and usage errors: exit 2 with the issues named, nothing started', async () => {
    const dup = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add-dup.json')]);
    assert.equal(dup.code, 2, show(dup));
    assert.match(dup.stderr, /^scale-out request is not valid:$/m, show(dup));
    assert.match(dup.stderr, /^ {2}- add\[0\]\.name: name "etcd2" is already used by spec\.members\[1\] \(etcd2\)$/m, show(dup));
    noStack(dup);
    const badTimeout = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add.json'), '--gate-timeout', 'soon']);
    assert.equal(badTimeout.code, 2, show(badTimeout));
    assert.match(badTimeout.stderr, /policy\.gateTimeout: gateTimeout must be a positive duration/, show(badTimeout));

    const noReason = await cli(['abort', '--cluster', 'bed']);
    assert.equal(noReason.code, 2, show(noReason));
    assert.match(noReason.stderr, /required option '--reason <text>' not specified/, show(noReason));
    const noVerdict = await cli(['quorum', '--cluster', 'bed']);
    assert.equal(noVerdict.code, 2, show(noVerdict));
    assert.match(noVerdict.stderr, /quorum needs --healthy or --unhealthy/, show(noVerdict));

    const none = await cli(['list']);
    assert.equal(none.code, 0, show(none));
    assert.match(none.stdout, /no etcd-steward operations/, show(none));
    assert.equal((await bed.observe()).members.length, 3);
  });

  it('errors name what is wrong: an unknown cluster, a Temporal address nobody listens on', async () => {
    const unknown = await cli(['status', '--cluster', 'nosuch']);
    assert.equal(unknown.code, 1, show(unknown));
    assert.match(unknown.stderr, /^no operation found for cluster nosuch\b/m, show(unknown));
    noStack(unknown);
    const nowhere = await cli(['--address', '127.21.0.250:27233', 'list']);
    assert.equal(nowhere.code, 1, show(nowhere));
    assert.match(nowhere.stderr, /^cannot connect to Temporal at 127\.21\.0\.250:27233 \(plaintext\), namespace default \(without TLS; .*\): .*\(set --address, TEMPORAL_ADDRESS or a --profile\)$/m, show(nowhere));
    noStack(nowhere);
  });

  it('plan: what each operation would do from live health, changing nothing; a plan the operation would refuse exits 1 with the reason', async () => {
    const pids = ['etcd1', 'etcd2', 'etcd3'].map((n) => bed.etcdPid(n));
    const out = await cli(['plan', 'scale-out', '--spec', f('spec.json'), '--add', f('add.json'), '--approval', 'first-batch']);
    assert.equal(out.code, 0, show(out));
    assert.match(out.stdout, /^plan: scale-out of bed, 3 → 4 voting members, 1 batch\(es\) \(a dry run from live health: nothing was changed\)$/m, show(out));
    assert.match(out.stdout, /^ {2}batch 1: etcd4\n {4}add as a learner \(MemberAddAsLearner\) → .* → start etcd4 \(127\.21\.0\.4\) → .* → promote to voter$/m, show(out));
    assert.match(out.stdout, /^ {2}leadership: etcd[123] leads and keeps leading: a scale-out moves no leadership$/m, show(out));
    assert.match(out.stdout, /^ {2}untouched: etcd1, etcd2, etcd3: not restarted/m, show(out));
    assert.match(out.stdout, /^ {4}- an operator's approve before the first batch$/m, show(out));
    assert.match(out.stdout, /^ {4}- .*target size 4 is even/m, show(out));
    const user = bed.spec.members[0]!.ssh.user;
    assert.match(out.stdout, new RegExp(`^ {2}access \\(as preflight reached each host\\):\n {4}- etcd1: user ${user}, direct\n {4}- etcd2: user ${user}, direct\n {4}- etcd3: user ${user}, direct\n {4}- etcd4: user ${user}, direct$`, 'm'), show(out));

    const restart = await cli(['plan', 'restart', '--spec', f('spec.json'), '--reason', 'test', '--output', 'json']);
    assert.equal(restart.code, 0, show(restart));
    const doc = JSON.parse(restart.stdout) as { type: string; plan: { operation: string; leader: string; batches: { members: string[]; steps: string }[] } };
    assert.equal(doc.type, 'plan');
    const p = doc.plan;
    assert.equal(p.operation, 'rollingRestart');
    assert.equal(p.batches.length, 3, 'one member at a time');
    assert.deepEqual(p.batches.at(-1)!.members, [p.leader], 'the leader last');
    assert.match(p.batches.at(-1)!.steps, /^MoveLeader to the most caught-up follower, then stop/);

    const scaleIn = await cli(['plan', 'scale-in', '--spec', f('spec.json'), '--remove', 'etcd3']);
    assert.equal(scaleIn.code, 0, show(scaleIn));
    assert.match(scaleIn.stdout, /^plan: scale-in of bed, 3 → 2 voting members, 1 batch\(es\)/m, show(scaleIn));

    const refused = await cli(['plan', 'scale-out', '--spec', f('spec.json'), '--add', f('add-unreachable.yaml')]);
    assert.equal(refused.code, 1, show(refused));
    assert.match(refused.stderr, /^scale-out would be refused: .*etcd5.*cannot reach sshd/m, show(refused));
    noStack(refused);
    // nothing changed: no operation, the same members and processes
    assert.equal(await stack.steward.runningOperation('bed'), null);
    assert.equal((await bed.observe()).members.length, 3);
    assert.deepEqual(['etcd1', 'etcd2', 'etcd3'].map((n) => bed.etcdPid(n)), pids);
  });

  it('scale-out --approval each-batch 3 → 4: starts and says how to watch and approve; status shows it waiting; a second start exits 3', async () => {
    const r = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add.json'), '--approval', 'each-batch', '--step-timeout', '3 minutes']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /started scale-out of bed: 3 → 4 \(adding etcd4\), approval each-batch/, show(r));
    assert.ok(r.stdout.indexOf('plan: scale-out of bed, 3 → 4') >= 0 && r.stdout.indexOf('plan: scale-out of bed') < r.stdout.indexOf('started scale-out'), `the plan is not printed first:\n${show(r)}`);
    assert.match(r.stdout, /^workflow: etcd-steward-bed \(run [0-9a-f-]{36}\)$/m, show(r));
    assert.match(r.stdout, /approve: npm run steward -- approve --cluster bed$/m, show(r));
    assert.match(r.stdout, /watch: {3}npm run steward -- watch --cluster bed$/m, show(r));
    assert.doesNotMatch(r.stderr, /no worker/, show(r));

    await waitFor('the gate to wait for approval', async () => {
      const s = await stack.steward.operation('bed').status();
      return s.phase === 'gate' && s.waitingFor.some((w) => w.startsWith('approval of batch 1 (etcd4)'));
    });
    const s = await cli(['status', '--cluster', 'bed']);
    assert.equal(s.code, 0, show(s));
    assert.match(s.stdout, /^scaleOut of bed — workflow etcd-steward-bed RUNNING/m, show(s));
    assert.match(s.stdout, /^phase: +gate$/m, show(s));
    assert.match(s.stdout, /^batch: +1\/1 \(etcd4\)$/m, show(s));
    assert.match(s.stdout, /^members: +etcd1 voter, etcd2 voter, etcd3 voter, etcd4 planned$/m, show(s));
    assert.match(s.stdout, /^waiting for:\n {2}- approval of batch 1 \(etcd4\)/m, show(s));
    assert.match(s.stdout, /approve with: npm run steward -- approve --cluster bed/, show(s));
    assert.match(s.stdout, /^warnings:\n {2}- .*target size 4 is even/m, show(s));
    assert.match(s.stdout, /^last events.*:\n(?: {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}.+\n)+/m, show(s));
    assert.match(s.stdout, /waiting for approval of batch 1/, show(s));

    const json = await cli(['status', '--cluster', 'bed', '--json']);
    assert.equal(json.code, 0, show(json));
    const raw = JSON.parse(json.stdout) as { phase: string; batch: { index: number; member: string }; members: { name: string; state: string }[] };
    assert.equal(raw.phase, 'gate');
    assert.deepEqual(raw.batch, { index: 0, of: 1, member: 'etcd4' });
    assert.equal(raw.members.find((m) => m.name === 'etcd4')?.state, 'planned');

    const again = await cli(['scale-out', '--spec', f('spec.json'), '--add', f('add.json')]);
    assert.equal(again.code, 3, show(again));
    assert.match(again.stderr, /cluster "bed" already has an operation running \(workflow etcd-steward-bed\)/, show(again));
    assert.equal((await bed.observe()).members.length, 3, 'nothing added before approval');
  });

  it('pause, resume and a monitoring verdict reach the workflow and are shown', async () => {
    const p = await cli(['pause', '--cluster', 'bed', '--reason', 'change freeze', '--by', 'bob']);
    assert.equal(p.code, 0, show(p));
    assert.match(p.stdout, /^pause: paused \(phase gate\); it holds at its next gate$/m, show(p));
    const twice = await cli(['pause', '--cluster', 'bed']);
    assert.equal(twice.code, 5, show(twice));
    assert.match(twice.stderr, /^pause rejected: already paused by bob: change freeze$/m, show(twice));
    noStack(twice);
    assert.match(p.stdout, /paused by bob: change freeze/, show(p));
    await waitFor('the gate to wait for resume', async () => (await stack.steward.operation('bed').status()).waitingFor.some((w) => w.startsWith('resume')));
    const s = await cli(['status', '--cluster', 'bed']);
    assert.match(s.stdout, /^ {2}- resume \(paused by bob: change freeze\)$/m, show(s));
    assert.match(s.stdout, /^paused by bob: change freeze$/m, show(s));

    const q = await cli(['quorum', '--cluster', 'bed', '--healthy', '--source', 'nagios', '--reason', 'all green']);
    assert.equal(q.code, 0, show(q));
    assert.match(q.stdout, /monitoring \(nagios\) says healthy: all green/, show(q));

    const r = await cli(['resume', '--cluster', 'bed', '--by', 'bob']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^resume: resumed \(phase gate\)$/m, show(r));
    assert.match(r.stdout, /resumed by bob/, show(r));
    await waitFor('the gate to wait for approval again', async () => (await stack.steward.operation('bed').status()).waitingFor.some((w) => w.startsWith('approval of batch 1')));
    assert.equal((await bed.observe()).members.length, 3, 'still nothing added');
  });

  it('approve (batch 1 as people count) and watch: exit 0 once completed, the cluster has 4 voters', async () => {
    const wrong = await cli(['approve', '--cluster', 'bed', '--batch', '2']);
    assert.equal(wrong.code, 2, show(wrong));
    assert.match(wrong.stderr, /^there is no batch 2: the operation on bed has 1 batch\(es\): 1 \(etcd4\)$/m, show(wrong));
    const a = await cli(['approve', '--cluster', 'bed', '--batch', '1', '--by', 'alice', '--comment', 'looks good']);
    assert.equal(a.code, 0, show(a));
    assert.match(a.stdout, /^approve: batch 1 \(etcd4\) approved$/m, show(a));
    assert.match(a.stdout, /^ {2}\d\d:\d\d:\d\d {2}batch 1 approved by alice: looks good$/m, show(a));
    const again = await cli(['approve', '--cluster', 'bed']);
    assert.equal(again.code, 5, show(again));
    assert.match(again.stderr, /^approve rejected: no batch is waiting for approval: batch 1 \(etcd4\) is in phase /m, show(again));

    const w = await cli(['watch', '--cluster', 'bed'], 240_000);
    assert.equal(w.code, 0, show(w));
    // (a scale-out of one member may be over before `watch` has started: then it shows the whole story at once)
    assert.match(w.stdout, /^watching scaleOut etcd-steward-bed \(run [0-9a-f-]{36}, (RUNNING|COMPLETED)/m, show(w));
    assert.match(w.stdout, /^\d\d:\d\d:\d\d {2}etcd4: promoted to voting member; 4 voting members$/m, show(w));
    assert.match(w.stdout, /^\d\d:\d\d:\d\d {2}completed: 4 voting members/m, show(w));
    assert.match(w.stdout, /^completed: 4 voting members \(etcd1, etcd2, etcd3, etcd4\); added etcd4$/m, show(w));
    assert.match(w.stdout, /^ {2}learner catch-up: etcd4 \d+ ms$/m, show(w));
    const o = await bed.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, 4);
    assert.equal(o.learners, 0);
  });

  it('after the end: watch returns at once, status shows it completed, signals are refused, list shows it', async () => {
    const w = await cli(['watch', '--cluster', 'bed']);
    assert.equal(w.code, 0, show(w));
    assert.match(w.stdout, /^completed: 4 voting members/m, show(w));
    const s = await cli(['status', '--cluster', 'bed']);
    assert.equal(s.code, 0, show(s));
    assert.match(s.stdout, /workflow etcd-steward-bed COMPLETED/, show(s));
    assert.match(s.stdout, /^phase: +completed$/m, show(s));
    assert.match(s.stdout, /^members: +etcd1 voter, etcd2 voter, etcd3 voter, etcd4 added$/m, show(s));
    const a = await cli(['abort', '--cluster', 'bed', '--reason', 'too late']);
    assert.equal(a.code, 1, show(a));
    assert.match(a.stderr, /^the operation on cluster bed \(workflow etcd-steward-bed\) has already ended \(COMPLETED\); there is nothing to abort$/m, show(a));
    const l = await cli(['list']);
    assert.equal(l.code, 0, show(l));
    assert.match(l.stdout, /^CLUSTER +TYPE +STATUS +STARTED +CLOSED +WORKFLOW ID +RUN ID$/m, show(l));
    assert.match(l.stdout, /^bed +scaleOut +COMPLETED +\d{4}-.* etcd-steward-bed /m, show(l));
    const other = await cli(['list', '--cluster', 'other']);
    assert.equal(other.code, 0, show(other));
    assert.match(other.stdout, /no etcd-steward operations/, show(other));
    const mine = await cli(['list', '--cluster', 'bed', '--json']);
    assert.deepEqual((JSON.parse(mine.stdout) as { type: string }[]).map((x) => x.type), ['scaleOut'], mine.stdout);
    assert.doesNotMatch(l.stdout, /clusterHealth/, 'health checks only with --all');
    const all = await cli(['list', '--all', '--json']);
    const rows = JSON.parse(all.stdout) as { type: string; cluster: string; status: string }[];
    assert.ok(rows.some((x) => x.type === 'clusterHealth' && x.cluster === 'bed' && x.status === 'COMPLETED'), all.stdout);
    assert.ok(rows.some((x) => x.type === 'scaleOut' && x.cluster === 'bed'), all.stdout);
  });

  it('scale-out prints its plan first, and does not start what preflight would refuse: exit 1 with the cause, nothing changed', async () => {
    const spec4 = { ...bed.spec, members: [...bed.spec.members, Bed.memberInput(bed.host('etcd4'))] };
    writeFileSync(f('spec4.yaml'), JSON.stringify(spec4)); // YAML is a superset of JSON
    const r = await cli(['scale-out', '--spec', f('spec4.yaml'), '--add', f('add-unreachable.yaml'), '--wait', '--step-timeout', '30s'], 120_000);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^scale-out refused before starting: .*etcd5.*cannot reach sshd/m, show(r));
    assert.doesNotMatch(r.stdout, /started scale-out/, show(r));
    const o = await bed.observe();
    assert.equal(o.voters, 4);
    assert.equal(o.learners, 0);
  });
  it('restart: a rolling restart of the 4 members, watched to its end; bad input exits 2 naming the field', async () => {
    const spec4 = { ...bed.spec, members: [...bed.spec.members, Bed.memberInput(bed.host('etcd4'))] };
    writeFileSync(f('spec4.json'), JSON.stringify(spec4));
    const bad = await cli(['restart', '--spec', f('spec4.json'), '--reason', 'x', '--members', 'etcd9', '--set', 'ETCD_NAME=oops']);
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /^rolling-restart request is not valid:$/m, show(bad));
    assert.match(bad.stderr, /change\.ETCD_NAME: ETCD_NAME identifies the member/, show(bad));
    noStack(bad);
    const badMember = await cli(['restart', '--spec', f('spec4.json'), '--reason', 'x', '--members', 'etcd9']);
    assert.equal(badMember.code, 2, show(badMember));
    assert.match(badMember.stderr, /members\[0\]: "etcd9" is not a member of cluster bed/, show(badMember));
    const pids = Object.fromEntries(spec4.members.map((m) => [m.name, bed.etcdPid(m.name)]));
    const r = await cli(['restart', '--spec', f('spec4.json'), '--reason', 'cli test', '--max-unavailable', '2', '--set', 'ETCD_QUOTA_BACKEND_BYTES=4294967296', '--wait'], 240_000);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^started rolling restart of bed \(etcd1, etcd2, etcd3, etcd4\): cli test; at most 2 down at once, approval never$/m, show(r));
    assert.match(r.stdout, /^completed: restarted etcd\d, etcd\d, etcd\d, etcd\d; at most 1 member\(s\) down at once$/m, show(r));
    assert.match(r.stdout, /^ {2}leadership moved etcd\d → etcd\d before etcd\d was restarted$/m, show(r));
    for (const m of spec4.members) {
      assert.match(r.stdout, new RegExp(`^ {2}${m.name}: batch \\d, pid ${pids[m.name]} → \\d+, ready in \\d+ ms, changed ETCD_QUOTA_BACKEND_BYTES$`, 'm'), show(r));
      assert.notEqual(bed.etcdPid(m.name), pids[m.name]);
    }
  });

  it('scale-in and replace: bad input exits 2 naming the field; then a scale-in 4 → 3 watched to its end, the removed host retired', async () => {
    const spec4 = { ...bed.spec, members: [...bed.spec.members, Bed.memberInput(bed.host('etcd4'))] };
    writeFileSync(f('spec4.json'), JSON.stringify(spec4));
    const all = await cli(['scale-in', '--spec', f('spec4.json'), '--remove', 'etcd1,etcd2,etcd3,etcd4']);
    assert.equal(all.code, 2, show(all));
    assert.match(all.stderr, /^scale-in request is not valid:$/m, show(all));
    assert.match(all.stderr, /remove: names every member of cluster bed .*cannot remove its last member/, show(all));
    noStack(all);
    writeFileSync(f('with.json'), JSON.stringify({ ...Bed.memberInput(bed.host('etcd4')), name: 'etcd3' }));
    const badReplace = await cli(['replace', '--spec', f('spec4.json'), '--member', 'etcd9', '--with', f('with.json'), '--strategy', 'add-first']);
    assert.equal(badReplace.code, 2, show(badReplace));
    assert.match(badReplace.stderr, /^replace request is not valid:$/m, show(badReplace));
    assert.match(badReplace.stderr, /replace: "etcd9" is not a member of cluster bed/, show(badReplace));
    const inPlaceAddFirst = await cli(['replace', '--spec', f('spec4.json'), '--member', 'etcd3', '--with', f('with.json'), '--strategy', 'add-first']);
    assert.equal(inPlaceAddFirst.code, 2, show(inPlaceAddFirst));
    assert.match(inPlaceAddFirst.stderr, /policy\.strategy: add-first needs the new member to have its own name/, show(inPlaceAddFirst));
    noStack(inPlaceAddFirst);
    const badRetire = await cli(['scale-in', '--spec', f('spec4.json'), '--remove', 'etcd4', '--retire', 'shred']);
    assert.equal(badRetire.code, 2, show(badRetire));
    assert.match(badRetire.stderr, /--retire.*shred.*keep, wipe/, show(badRetire));
    const pids = Object.fromEntries(['etcd1', 'etcd2', 'etcd3'].map((n) => [n, bed.etcdPid(n)]));
    // --output json: one JSON document per line, from the start to the result
    const r = await cli(['scale-in', '--spec', f('spec4.json'), '--remove', 'etcd4', '--retire', 'wipe', '--wait', '--output', 'json'], 240_000);
    assert.equal(r.code, 0, show(r));
    const docs = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; message?: string; member?: string; state?: string; result?: { outcome: string; removed: string[]; hosts: { member: string; cleaned: boolean; note: string }[] } });
    assert.equal(docs[0]!.type, 'summary');
    assert.equal(docs[0]!.message, 'started scale-in of bed: 4 → 3 (removing etcd4), approval never, data dirs: wipe');
    assert.equal(docs[1]!.type, 'started');
    assert.ok(docs.some((d) => d.type === 'event'), show(r));
    assert.ok(docs.some((d) => d.type === 'member' && d.member === 'etcd4' && d.state === 'removed'), `no member document saying etcd4 was removed:\n${show(r)}`);
    const result = docs.at(-1)!;
    assert.equal(result.type, 'result');
    assert.equal(result.result!.outcome, 'completed');
    assert.deepEqual(result.result!.removed, ['etcd4']);
    assert.match(result.result!.hosts[0]!.note, /^service stopped; \S+ wiped; env file moved to \S+\.removed-\d{8}T\d{6}Z$/);
    const o = await bed.observe();
    assert.deepEqual(o.members.map((m) => m.name).sort(), ['etcd1', 'etcd2', 'etcd3']);
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.equal(bed.etcdPid(n), pids[n], `${n} was restarted`);
  });
});
