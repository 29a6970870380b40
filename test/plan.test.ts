// Pure logic: which member a scale-in may remove, and when none may be (common/scaleInPlan.ts),
// the scale-in request's validation (spec/operations.ts), and which version changes a rolling
// upgrade may make (common/versions.ts). Made-up observations only.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterObservation } from '../common/observation';
import { planRemoval, projectRemoval, projectRemovalOrder } from '../common/scaleInPlan';
import { decideReplace, refusesAddWhileVoterDown } from '../common/replacePlan';
import { checkBinaryChange, compareVersions, lowestVersion, mixedVersionsWarning, oldestVersionProblem } from '../common/versions';
import { parseReplaceMemberInput, parseScaleInInput } from '../spec/operations';
import { SpecError } from '../spec/cluster';

/** A cluster of voters named etcd1..n (ids "1".."n"), `leader` leading, `down` not answering, applied indexes per member, all on `version` (default 3.4.23). */
function cluster(n: number, o: { leader?: number; down?: number[]; applied?: Record<number, number>; version?: string } = {}): ClusterObservation {
  const leader = String(o.leader ?? 1);
  const members = Array.from({ length: n }, (_, i) => ({ id: String(i + 1), name: `etcd${i + 1}`, peerURLs: [`https://127.0.0.${i + 1}:2380`], clientURLs: [`https://127.0.0.${i + 1}:2379`], isLearner: false }));
  const statuses = members.map((m, i) => {
    const ok = !(o.down ?? []).includes(i + 1);
    return ok
      ? { id: m.id, name: m.name, endpoint: m.clientURLs[0]!, ok, leaderId: leader, raftAppliedIndex: String(o.applied?.[i + 1] ?? 100), version: o.version ?? '3.4.23', isLearner: false }
      : { id: m.id, name: m.name, endpoint: m.clientURLs[0]!, ok, error: 'connection refused', isLearner: false };
  });
  return { members, statuses, leaderId: leader, voters: n, learners: 0, problems: [], healthy: true };
}

describe('scale-in planning', () => {
  it('projects the staying members against their quorum, from live health', () => {
    assert.deepEqual(projectRemoval(cluster(5), ['etcd4', 'etcd5']), { voters: 3, healthy: 3, quorum: 2, problem: null });
    // 3 members, etcd3 down: removing the two that answer leaves one member that does not
    const p = projectRemoval(cluster(3, { down: [3] }), ['etcd1', 'etcd2']);
    assert.equal(p.healthy, 0);
    assert.match(p.problem!, /removing etcd1, etcd2 would leave 1 voting member\(s\) \(etcd3\) of which 0 answer\(s\) now \(down: etcd3\), below their quorum of 1/);
    // 5 members, two down, removing one healthy: 4 left, 2 answer, quorum 3
    assert.match(projectRemoval(cluster(5, { down: [4, 5] }), ['etcd1']).problem!, /4 voting member\(s\).*of which 2 answer\(s\).*quorum of 3/);
    // removing the dead ones is what makes it healthy again
    assert.equal(projectRemoval(cluster(5, { down: [4, 5] }), ['etcd4', 'etcd5']).problem, null);
    assert.match(projectRemoval(cluster(3), ['etcd1', 'etcd2', 'etcd3']).problem!, /would leave no voting member/);
  });

  it('removes members that do not answer first, then followers, the leader last after moving leadership to the most caught-up member that stays', () => {
    const o = cluster(5, { leader: 2, down: [5], applied: { 1: 90, 3: 120, 4: 110 } });
    assert.deepEqual(planRemoval(o, ['etcd2', 'etcd4', 'etcd5']).batch, { member: 'etcd5', wasDown: true });
    assert.deepEqual(planRemoval(cluster(5, { leader: 2 }), ['etcd2', 'etcd4']).batch, { member: 'etcd4', wasDown: false });
    // only the leader left: the most caught-up answering member that stays takes over (etcd3), not etcd4 which is removed too
    const onlyLeader = planRemoval(cluster(5, { leader: 2, applied: { 1: 90, 3: 110, 4: 200 } }), ['etcd2', 'etcd4'].slice(0, 1));
    assert.deepEqual(onlyLeader.batch, { member: 'etcd2', wasDown: false, moveLeaderTo: { name: 'etcd4', id: '4' } });
    const notToRemoved = planRemoval(cluster(5, { leader: 2, applied: { 1: 90, 3: 110, 4: 200 } }), ['etcd2']);
    assert.equal(notToRemoved.batch?.moveLeaderTo?.name, 'etcd4');
    assert.deepEqual(projectRemovalOrder(o, ['etcd2', 'etcd4', 'etcd5']), ['etcd5 (down)', 'etcd4', 'etcd2 (leader: leadership moved first)']);
  });

  it('never hands leadership to a member that is itself being removed', () => {
    // etcd1 leads; etcd2 is the most caught up, but it is removed too: the follower goes first,
    // and when the leader's turn comes etcd2 is gone; until then it is never chosen
    const o = cluster(5, { leader: 1, applied: { 2: 500, 3: 100, 4: 300, 5: 50 } });
    assert.equal(planRemoval(o, ['etcd1', 'etcd2']).batch?.member, 'etcd2');
    const statuses = o.statuses.map((s) => (s.name === 'etcd2' ? { ...s, raftAppliedIndex: '900' } : s));
    // (a made-up state where the leader is the only follower-less choice while etcd2 is still listed as to remove)
    const leaderOnly = planRemoval({ ...o, statuses }, ['etcd1']);
    assert.equal(leaderOnly.batch?.moveLeaderTo?.name, 'etcd2', 'etcd2 stays here, so it may take over');
    const noStayingCandidate = planRemoval({ ...o, statuses: statuses.map((s) => (s.name === 'etcd1' || s.name === 'etcd2' ? s : { ...s, ok: false })) }, ['etcd1', 'etcd2']);
    assert.match(noStayingCandidate.blockers.join(), /below their quorum/);
  });

  it('blocks, saying why, when a removal would lose the healthy quorum, there is no leader, or no member that stays answers', () => {
    const d = planRemoval(cluster(3, { down: [3] }), ['etcd1', 'etcd2']);
    assert.equal(d.batch, null);
    assert.match(d.blockers[0]!, /below their quorum/);
    const noLeader = { ...cluster(3), leaderId: null };
    assert.match(planRemoval(noLeader, ['etcd2']).blockers[0]!, /no leader/);
    assert.match(planRemoval(cluster(3), ['etcd9']).blockers[0]!, /etcd9 is not a voting member/);
    assert.deepEqual(planRemoval(cluster(3), []).blockers, ['nothing left to remove']);
  });
});

describe('scale-in request', () => {
  const spec = {
    name: 'c',
    ca: { host: 'etcd1' },
    members: [1, 2, 3].map((i) => ({ name: `etcd${i}`, address: `127.0.0.${i}`, ssh: { hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2l0sQh2x8vV0rjYv1U9C6m5q5Q0g5l2W5mYd2s1bq' } })),
  };
  const refuses = (input: unknown, re: RegExp) =>
    assert.throws(
      () => parseScaleInInput(input),
      (e: unknown) => e instanceof SpecError && re.test(e.message),
    );

  it('takes the members to remove and a retire policy (keep by default)', () => {
    const r = parseScaleInInput({ spec, remove: ['etcd3'] });
    assert.deepEqual(r.remove, ['etcd3']);
    assert.equal(r.policy.retire, 'keep');
    assert.equal(parseScaleInInput({ spec, remove: ['etcd3'], policy: { retire: 'wipe' } }).policy.retire, 'wipe');
  });

  it('refuses an unknown member, one named twice, every member, and a bad retire policy, naming the field', () => {
    refuses({ spec, remove: ['etcd9'] }, /remove\[0\]: "etcd9" is not a member of cluster c \(members: etcd1, etcd2, etcd3\)/);
    refuses({ spec, remove: ['etcd2', 'etcd2'] }, /remove\[1\]: "etcd2" is named twice/);
    refuses({ spec, remove: ['etcd1', 'etcd2', 'etcd3'] }, /remove: names every member of cluster c .*cannot remove its last member/);
    refuses({ spec, remove: [] }, /remove: must name at least one member to remove/);
    refuses({ spec, remove: ['etcd3'], policy: { retire: 'shred' } }, /policy\.retire: must be one of: keep, wipe/);
  });
});

describe('replacement order', () => {
  it('knows which etcd versions refuse any MemberAdd while a voter is unreachable', () => {
    for (const v of ['3.4.23', '3.5.0', '3.5.29', '3.6.0', '3.6.10', 'unknown', '']) assert.equal(refusesAddWhileVoterDown(v), true, v);
    for (const v of ['3.5.30', '3.5.35', '3.6.11', '3.6.16', '3.7.3']) assert.equal(refusesAddWhileVoterDown(v), false, v);
  });

  it('auto: add first when the old member answers, remove first when it is down or replaced in place', () => {
    const healthy = decideReplace(cluster(3), 'etcd2', 'etcd4', false, 'auto');
    assert.equal(healthy.strategy, 'add-first');
    assert.match(healthy.why, /etcd2 answers: etcd4 joins and is promoted before etcd2 leaves/);
    const down = decideReplace(cluster(3, { down: [2] }), 'etcd2', 'etcd4', false, 'auto');
    assert.equal(down.strategy, 'remove-first');
    assert.match(down.why, /etcd 3\.4\.23 refuses any MemberAdd, learners included, while a voting member is unreachable/);
    assert.match(decideReplace(cluster(3, { down: [2], version: '3.6.16' }), 'etcd2', 'etcd4', false, 'auto').why, /removing it first restores the failure tolerance at once/);
    assert.equal(decideReplace(cluster(3), 'etcd2', 'etcd2', true, 'auto').strategy, 'remove-first');
    assert.deepEqual(down.problems, []);
    assert.equal(down.version, '3.4.23');
  });

  it('refuses add-first with the old member down on a strict version; warns where it works but costs tolerance', () => {
    assert.match(decideReplace(cluster(3, { down: [2] }), 'etcd2', 'etcd4', false, 'add-first').problems[0]!, /add-first cannot work while etcd2 does not answer: etcd 3\.4\.23 refuses/);
    const relaxed = decideReplace(cluster(3, { down: [2], version: '3.5.35' }), 'etcd2', 'etcd4', false, 'add-first');
    assert.deepEqual(relaxed.problems, []);
    assert.match(relaxed.warnings[0]!, /etcd2 does not answer and is removed only after etcd4 is promoted/);
    assert.match(decideReplace(cluster(3), 'etcd2', 'etcd4', false, 'remove-first').warnings[0]!, /etcd2 answers, yet it is removed before etcd4 joins/);
  });

  it('remove-first is refused when the members that stay would not keep a healthy quorum', () => {
    const d = decideReplace(cluster(3, { down: [1, 3] }), 'etcd2', 'etcd4', false, 'remove-first');
    assert.match(d.problems.join(), /removing etcd2 would leave 2 voting member\(s\) .* of which 0 answer/);
  });
});

describe('replace request', () => {
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2l0sQh2x8vV0rjYv1U9C6m5q5Q0g5l2W5mYd2s1bq';
  const spec = { name: 'c', ca: { host: 'etcd1' }, members: [1, 2, 3].map((i) => ({ name: `etcd${i}`, address: `127.0.0.${i}`, ssh: { hostKey: key } })) };
  const refuses = (input: unknown, re: RegExp) =>
    assert.throws(
      () => parseReplaceMemberInput(input),
      (e: unknown) => e instanceof SpecError && re.test(e.message),
    );

  it('takes the member to replace and the new one; the old name on a rebuilt host is allowed', () => {
    const r = parseReplaceMemberInput({ spec, replace: 'etcd2', with: { name: 'etcd4', address: '127.0.0.4', ssh: { hostKey: key } } });
    assert.equal(r.replace, 'etcd2');
    assert.deepEqual(r.with.peerURLs, ['https://127.0.0.4:2380']);
    assert.equal(r.policy.strategy, 'auto');
    assert.equal(parseReplaceMemberInput({ spec, replace: 'etcd2', with: { name: 'etcd2', address: '127.0.0.2', ssh: { hostKey: key } } }).with.name, 'etcd2');
  });

  it("refuses an unknown member, a new member that takes another member's name or address, and add-first in place", () => {
    refuses({ spec, replace: 'etcd9', with: { name: 'etcd4', address: '127.0.0.4', ssh: { hostKey: key } } }, /replace: "etcd9" is not a member of cluster c/);
    refuses({ spec, replace: 'etcd2', with: { name: 'etcd3', address: '127.0.0.4', ssh: { hostKey: key } } }, /with\.name: "etcd3" is already the name of spec\.members\[2\]/);
    refuses({ spec, replace: 'etcd2', with: { name: 'etcd4', address: '127.0.0.3', ssh: { hostKey: key } } }, /with: URL https:\/\/127\.0\.0\.3:2380 is already used by spec\.members\[2\] \(etcd3\)/);
    refuses({ spec, replace: 'etcd2', with: { name: 'etcd2', address: '127.0.0.2', ssh: { hostKey: key } }, policy: { strategy: 'add-first' } }, /policy\.strategy: add-first needs the new member to have its own name and peer URL .* use remove-first or auto/);
    refuses({ spec, replace: 'etcd2', with: { name: 'etcd4', address: '127.0.0.4', ssh: { hostKey: key } }, policy: { strategy: 'sideways' } }, /policy\.strategy: must be one of: auto, remove-first, add-first/);
  });
});

describe('etcd versions in a cluster', () => {
  it('orders versions numerically and finds the lowest an answering member reports', () => {
    assert.ok(compareVersions('3.4.23', '3.5.0') < 0);
    assert.ok(compareVersions('3.10.0', '3.9.9') > 0);
    assert.equal(compareVersions('3.6.16', '3.6.16'), 0);
    const o = cluster(3, { version: '3.6.16' });
    o.statuses[1] = { ...o.statuses[1]!, version: '3.5.35' };
    assert.equal(lowestVersion(o), '3.5.35');
    assert.equal(lowestVersion(cluster(3, { down: [1, 2, 3] })), 'unknown');
  });

  it('warns when the members run mixed versions, naming who runs what; says nothing otherwise', () => {
    const o = cluster(3, { version: '3.6.16' });
    o.statuses[0] = { ...o.statuses[0]!, version: '3.5.35' };
    assert.equal(mixedVersionsWarning(o), 'the members run mixed etcd versions: 3.5.35 (etcd1), 3.6.16 (etcd2, etcd3); decisions that depend on the version follow the oldest, 3.5.35');
    assert.equal(mixedVersionsWarning(cluster(3)), null);
  });

  it('refuses every operation on a member older than 3.4 (no learners), naming it', () => {
    const o = cluster(3);
    o.statuses[2] = { ...o.statuses[2]!, version: '3.3.27' };
    assert.match(oldestVersionProblem(o) ?? '', /^etcd3 run\(s\) etcd 3\.3\.27: etcd-steward drives etcd 3\.4\.0 or later/);
    assert.equal(oldestVersionProblem(cluster(3)), null);
  });
});

describe('rolling upgrade: which binary changes etcd supports', () => {
  const running = (v: string, n = 3) => Array.from({ length: n }, (_, i) => ({ member: `etcd${i + 1}`, version: v }));
  const to = (v: string, from: string, n = 3) => Array.from({ length: n }, (_, i) => ({ member: `etcd${i + 1}`, running: from, target: v }));

  it('allows one minor up from a patch release the guide accepts, and a patch upgrade', () => {
    const up = checkBinaryChange({ clusterVersion: '3.5.0', running: running('3.5.35'), targets: to('3.6.16', '3.5.35') });
    assert.deepEqual(up, { problems: [], warnings: [], targetVersion: '3.6.16' });
    assert.deepEqual(checkBinaryChange({ clusterVersion: '3.4.0', running: running('3.4.23'), targets: to('3.4.35', '3.4.23') }).problems, []);
    assert.deepEqual(checkBinaryChange({ clusterVersion: '3.6.0', running: running('3.6.16'), targets: to('3.7.3', '3.6.16') }).problems, []);
  });

  it('refuses a skipped minor (3.4 → 3.6), naming the minor to go through', () => {
    const r = checkBinaryChange({ clusterVersion: '3.4.0', running: running('3.4.23'), targets: to('3.6.16', '3.4.23') });
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!, /the cluster runs etcd 3\.4 and the new binaries are 3\.6\.16: that skips 3\.5; etcd upgrades one minor version at a time/);
  });

  it('refuses 3.5 → 3.6 while a 3.5 member is older than the 3.6 guide requires (3.5.32), naming each and the guide', () => {
    const now = running('3.5.35');
    now[1] = { member: 'etcd2', version: '3.5.21' };
    const r = checkBinaryChange({ clusterVersion: '3.5.0', running: now, targets: to('3.6.16', '3.5.35') });
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0]!, /^etcd2 runs 3\.5\.21: etcd's 3\.6 upgrade guide \(https:\/\/etcd\.io\/docs\/v3\.6\/upgrades\/upgrade_3_6\/\) requires every 3\.5 member at 3\.5\.32 or later first/);
    // 3.6 → 3.7 needs 3.6.11
    assert.match(checkBinaryChange({ clusterVersion: '3.6.0', running: running('3.6.5'), targets: to('3.7.3', '3.6.5') }).problems[0] ?? '', /requires every 3\.6 member at 3\.6\.11 or later/);
  });

  it('refuses a downgrade of the cluster version and binaries of different minors; an unreadable version', () => {
    assert.match(checkBinaryChange({ clusterVersion: '3.6.0', running: running('3.6.16'), targets: to('3.5.35', '3.6.16') }).problems[0] ?? '', /a downgrade, which etcd does only through its downgrade API/);
    const mixed = to('3.6.16', '3.5.35');
    mixed[2] = { member: 'etcd3', running: '3.5.35', target: '3.5.35' };
    assert.match(checkBinaryChange({ clusterVersion: '3.5.0', running: running('3.5.35'), targets: mixed }).problems[0] ?? '', /different minor versions \(etcd1: 3\.6\.16, etcd2: 3\.6\.16, etcd3: 3\.5\.35\)/);
    const bad = to('3.6.16', '3.5.35');
    bad[0] = { member: 'etcd1', running: '3.5.35', target: 'banana' };
    assert.match(checkBinaryChange({ clusterVersion: '3.5.0', running: running('3.5.35'), targets: bad }).problems[0] ?? '', /etcd1: the new binary reports version "banana"/);
  });

  it('goes on from a half-done upgrade (the cluster still at 3.5, some members on 3.6) and warns about members left behind', () => {
    const now = running('3.5.35');
    now[0] = { member: 'etcd1', version: '3.6.16' };
    const r = checkBinaryChange({ clusterVersion: '3.5.0', running: now, targets: to('3.6.16', '3.5.35', 2) });
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.warnings, ['etcd3 keep(s) running 3.5: the cluster stays at version 3.5 (no 3.6 features) until every member runs 3.6']);
  });
});
