// Integration: a fleet that refuses root logins and is reached only through a bastion. The bed's
// hosts refuse root (PermitRootLogin no), the worker logs in as `etcd-steward` and runs its
// commands with `sudo -n`, and a bastion at <net>.254 is the only way to the hosts' sshd (a
// firewall rule refuses every other user's connections to them). Real sshd, sudo, etcd, Temporal.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { sshTarget } from '../activities/host';
import { SshPool, sshExec } from '../activities/ssh';
import { type ClusterSpec, memberPaths } from '../spec/cluster';
import { BED_USERS, Bed } from '../testbed';
import { connectionsTo } from '../testbed/procs';
import { causeChain, recordHistory, stackAndBeds } from './helpers';

const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const uidOf = (user: string) => Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());

/** The bed's spec with every member's ssh left to the cluster-wide defaults, which `ssh` then replaces. */
function withSsh(spec: ClusterSpec, ssh: NonNullable<ClusterSpec['ssh']>) {
  return { ...spec, ssh, members: spec.members.map((m) => ({ ...m, ssh: { host: m.ssh.host, port: m.ssh.port, hostKey: m.ssh.hostKey } })) };
}

describe('root-less SSH through a bastion', () => {
  const suite = stackAndBeds();
  let bed: Bed;

  it('root logins are refused on the members, directly and through the bastion; etcd-steward with sudo gets root', async () => {
    bed = await suite.freshBed({ hosts: 5, members: 3, access: 'sudo', bastion: true });
    const m = bed.spec.members[0]!;
    const t = sshTarget(m);
    assert.equal(t.user, BED_USERS.sudo);
    assert.equal(t.become, 'sudo');
    await assert.rejects(sshExec({ ...t, user: 'root', become: undefined, via: undefined }, bed.sshIdentity, 'true', { timeoutMs: 10_000 }), new RegExp(`etcd1 \\(root@${re(t.host)}:2222\\): cannot reach sshd: connect ECONNREFUSED`));
    await assert.rejects(sshExec({ ...t, user: 'root', become: undefined }, bed.sshIdentity, 'true', { timeoutMs: 10_000 }), new RegExp(`via bastion ${re(bed.bastion!.address)}:2222\\): login refused \\(publickey\\).*PermitRootLogin`, 's'));
    await assert.rejects(sshExec({ ...t, via: undefined }, bed.sshIdentity, 'true', { timeoutMs: 10_000 }), /cannot reach sshd: connect ECONNREFUSED/, 'the bastion is the only way in');
    // Under sudo: root, the SSH user known to sudo, the script's standard input passed through, root's umask.
    const r = await sshExec(t, bed.sshIdentity, 'id -u; echo "$SUDO_USER"; cat; umask', { stdin: 'through sudo\n' });
    assert.deepEqual(r.stdout.split('\n'), ['0', BED_USERS.sudo, 'through sudo', '0022', '']);
  });

  it('one connection to the bastion carries every host: the pool opens hosts + 1 connections and reuses them all', async () => {
    const pool = new SshPool();
    try {
      const targets = bed.hosts.map((h) => h.ssh);
      for (let round = 0; round < 2; round++) {
        const out = await Promise.all(targets.map((t) => pool.exec(t, bed.sshIdentity, 'echo "$(id -u) $SUDO_USER"')));
        assert.deepEqual(out.map((r) => r.stdout.trim()), targets.map(() => `0 ${BED_USERS.sudo}`));
      }
      const st = pool.stats();
      assert.equal(st.connections, targets.length + 1, `${st.connections} connections for ${targets.length} hosts behind one bastion`);
      assert.equal(st.execs, targets.length * 2);
      assert.equal(st.reused, targets.length, 'the second round reused every host connection');
      assert.equal(connectionsTo(bed.bastion!.address, bed.bastion!.port).filter((uid) => uid === 0).length >= 1, true);
    } finally {
      await pool.closeAll();
    }
  });

  it('scale-out 3 → 4 completes as etcd-steward with sudo through the bastion: no member restarted, files as root writes them, every connection to a member from the bastion', async () => {
    const before = bed.etcdProcesses();
    const op = await suite.stack.steward.startScaleOut({ spec: bed.spec, add: [Bed.memberInput(bed.host('etcd4'))] });
    const result = await op.result();
    // The pooled connections are still open (idle for 20 s): who holds the ones to the members' sshd?
    const toMembers = bed.hosts.slice(0, 4).flatMap((h) => connectionsTo(h.address, h.ssh.port));
    const toBastion = connectionsTo(bed.bastion!.address, bed.bastion!.port);
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(result.added, ['etcd4']);
    const o = await bed.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, 4);
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.deepEqual(bed.etcdProcesses()[n], before[n], `${n} was restarted`);

    // The path, observed: the worker (root) holds connections to the bastion only; those to the members are the bastion's tunnels (its user's).
    assert.ok(toMembers.length >= 4, `${toMembers.length} established connections to the members' sshd (one per host expected)`);
    assert.deepEqual([...new Set(toMembers)], [uidOf(BED_USERS.jump)], 'every connection to a member comes from the bastion');
    assert.ok(toBastion.length >= 1 && toBastion.every((uid) => uid === 0), `connections to the bastion: uids ${toBastion.join(',')}`);

    // Preflight said how it reached each host, before any change.
    const events = (await op.status()).events.map((e) => e.message);
    for (const n of ['etcd1', 'etcd2', 'etcd3', 'etcd4']) assert.ok(events.includes(`access ${n}: user etcd-steward via bastion ${bed.bastion!.address}:2222, sudo -n works`), `no access line for ${n} in:\n${events.join('\n')}`);
    const firstChange = events.findIndex((e) => e.startsWith('etcd4: '));
    assert.ok(firstChange > 0 && events.every((e, i) => !e.startsWith('access ') || i < firstChange), `the access lines come before the first step:\n${events.join('\n')}`);

    // What sudo wrote is what root writes: etcd4's files (issued and written over SSH under sudo) against etcd1's (made by the bed as root).
    const [p1, p4] = [memberPaths(bed.spec, 'etcd1'), memberPaths(bed.spec, 'etcd4')];
    for (const k of ['key', 'cert', 'envFile', 'caCert'] as const) {
      const [a, b] = [statSync(p1[k]), statSync(p4[k])];
      assert.deepEqual({ mode: (b.mode & 0o7777).toString(8), uid: b.uid, gid: b.gid }, { mode: (a.mode & 0o7777).toString(8), uid: a.uid, gid: a.gid }, `${k}: etcd4's (under sudo) differs from etcd1's (as root)`);
    }
    assert.equal((statSync(p4.key).mode & 0o777).toString(8), '600');
    assert.equal(statSync(p4.key).uid, 0);
    await recordHistory(op.handle, 'scaleOut-nonroot-bastion', suite.stack.temporal.address);
  });

  it('sudo that asks for a password: preflight refuses naming each host and the sudoers line to add; nothing changed', async () => {
    const spec = withSsh({ ...bed.spec, members: bed.hosts.slice(0, 4).map((h) => Bed.memberInput(h)) }, { ...bed.spec.ssh, user: BED_USERS.sudoWithPassword });
    const before = await bed.observe();
    const etcd5 = Bed.memberInput(bed.host('etcd5'));
    // etcd5 too takes the cluster's ssh defaults (the user whose sudo asks for a password)
    const op = await suite.stack.steward.startScaleOut({ spec, add: [{ ...etcd5, ssh: { host: etcd5.ssh.host, port: etcd5.ssh.port, hostKey: etcd5.ssh.hostKey } }] });
    const err = await op.result().then(
      () => assert.fail('the scale-out completed'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const chain = causeChain(err);
    for (const n of ['etcd1', 'etcd2', 'etcd3', 'etcd4']) {
      assert.match(chain, new RegExp(`spec member ${n}: ${n} \\(etcd-steward-pw@${re(bed.host(n).address)}:2222 via bastion ${re(bed.bastion!.address)}:2222\\): sudo -n refused to run our command as root \\(sudo: a password is required\\)`));
    }
    assert.match(chain, /add\[0\] \(etcd5\): .*sudo -n refused/);
    assert.match(chain, /etcd-steward-pw ALL=\(root\) NOPASSWD: \/bin\/bash/);
    const after = await bed.observe();
    assert.deepEqual(after.members.map((m) => m.id).sort(), before.members.map((m) => m.id).sort());
    assert.equal(after.learners, 0);
  });

  it('a bastion with the wrong pinned key: refused before authentication, nothing changed', async () => {
    const bastionLog = `${bed.dir}/hosts/bastion/log/sshd.log`;
    const logins = () => (readFileSync(bastionLog, 'utf8').match(/Accepted publickey/g) ?? []).length;
    const loginsBefore = logins();
    const wrong = bed.host('etcd5').hostKey; // a real key, not the bastion's
    const spec = withSsh({ ...bed.spec, members: bed.hosts.slice(0, 4).map((h) => Bed.memberInput(h)) }, { ...bed.spec.ssh, via: [{ ...bed.spec.ssh!.via![0]!, hostKey: wrong }] });
    const before = await bed.observe();
    const op = await suite.stack.steward.startScaleOut({ spec, add: [Bed.memberInput(bed.host('etcd5'))] });
    const err = await op.result().then(
      () => assert.fail('the scale-out completed'),
      (e: unknown) => e,
    );
    const chain = causeChain(err);
    const b = re(bed.bastion!.address);
    assert.match(chain, new RegExp(`bastion ${b}:2222 \\(etcd-steward-jump@${b}:2222\\): host key does not match its pin: the host presented SHA256:\\S+, the cluster spec pins SHA256:\\S+\\. .*update ssh\\.via\\[0\\]\\.hostKey`, 's'));
    assert.equal(logins(), loginsBefore, 'the worker authenticated to a bastion whose key did not match');
    assert.ok(loginsBefore > 0, 'the bastion log shows no login at all: the check above could not fail');
    const after = await bed.observe();
    assert.deepEqual(after.members.map((m) => m.id).sort(), before.members.map((m) => m.id).sort());
  });
});
