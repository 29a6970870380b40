// Integration: the test bed itself — real TLS etcd, real sshd with pinned host keys, clean teardown.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { etcdClient, observeCluster } from '../activities/etcd';
import { SshError, sshExec, sshRun } from '../activities/ssh';
import { Bed } from '../testbed';
import { isOurs } from '../testbed/procs';

describe('test bed: 3-member TLS etcd cluster on loopback hosts', () => {
  let bed: Bed;
  before(async () => {
    bed = await Bed.up({ hosts: 4, members: 3 });
  });
  after(async () => {
    await bed?.down();
  });

  it('etcd3 with a client certificate sees 3 healthy voting members and a leader', async () => {
    const o = await bed.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.healthy, true);
    assert.equal(o.voters, 3);
    assert.equal(o.learners, 0);
    assert.deepEqual(o.members.map((m) => m.name).sort(), ['etcd1', 'etcd2', 'etcd3']);
    assert.ok(o.leaderId && o.members.some((m) => m.id === o.leaderId), 'the leader is one of the members');
    for (const s of o.statuses) assert.equal(s.ok, true, `${s.name}: ${s.error}`);
    assert.ok(o.statuses.every((s) => s.endpoint?.startsWith('https://')), 'client URLs are TLS');
  });

  it('a put/get round-trips through every member', async () => {
    for (const m of bed.spec.members) {
      const c = etcdClient(m.clientURLs, bed.etcdCredentials);
      try {
        await c.put(`bed-test/${m.name}`).value(`hello from ${m.name}`);
        assert.equal(await c.get(`bed-test/${m.name}`).string(), `hello from ${m.name}`);
      } finally {
        c.close();
      }
    }
  });

  it('a client without a certificate is refused (client-cert auth is on)', async () => {
    const c = new Etcd3({ hosts: bed.endpoints[0]!, credentials: { rootCertificate: bed.etcdCredentials.caCert }, dialTimeout: 3000, defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) });
    try {
      await assert.rejects(c.get('bed-test/etcd1').string());
    } finally {
      c.close();
    }
  });

  it('the layout is Kubespray-style and the CA key stays on the CA host', async () => {
    const etcd1 = bed.host('etcd1');
    const env = await sshRun(etcd1.ssh, bed.sshIdentity, `cat ${bed.spec.layout.envFile.replace('{name}', 'etcd1')}`);
    assert.match(env, /^ETCD_NAME=etcd1$/m);
    assert.match(env, /^ETCD_INITIAL_CLUSTER=etcd1=https:\/\/127\.10\.0\.1:2380,etcd2=https:\/\/127\.10\.0\.2:2380,etcd3=https:\/\/127\.10\.0\.3:2380$/m);
    assert.match(env, /^ETCD_CERT_FILE=.*\/etc\/ssl\/etcd\/ssl\/member-etcd1\.pem$/m);
    assert.match(env, /^ETCD_CLIENT_CERT_AUTH=true$/m);
    assert.match(env, /^ETCD_PEER_CLIENT_CERT_AUTH=true$/m);
    const sans = await sshRun(bed.host('etcd2').ssh, bed.sshIdentity, `openssl x509 -noout -ext subjectAltName -in ${bed.spec.layout.certDir.replace('{name}', 'etcd2')}/member-etcd2.pem`);
    assert.match(sans, /IP Address:127\.10\.0\.2/);
    assert.doesNotMatch(sans, /127\.10\.0\.1|127\.10\.0\.3/, 'a member certificate names only its own addresses');
    const caKeys = await sshRun(etcd1.ssh, bed.sshIdentity, `ls ${bed.dir}/hosts/*/etc/ssl/etcd/ssl/ca-key.pem`);
    assert.deepEqual(caKeys.trim().split('\n'), [`${bed.dir}/hosts/etcd1/etc/ssl/etcd/ssl/ca-key.pem`]);
  });

  it('ssh2 reaches every host (members and spare) with its pinned host key', async () => {
    for (const h of bed.hosts) {
      const r = await sshExec(h.ssh, bed.sshIdentity, 'echo "$(id -un) ok"');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, / ok\n$/);
    }
  });

  it('a wrong pinned host key is refused with a clear error, before any command runs', async () => {
    const wrongPin = bed.host('etcd2').hostKey; // another host's real key
    const target = { ...bed.host('etcd1').ssh, hostKey: wrongPin };
    const marker = `${bed.dir}/hosts/etcd1/should-not-exist`;
    await assert.rejects(sshExec(target, bed.sshIdentity, `touch ${marker}`), (e: unknown) => {
      assert.ok(e instanceof SshError);
      assert.equal(e.kind, 'host-key-mismatch');
      assert.match(e.message, /etcd1 .*host key does not match its pin: the host presented SHA256:\S+, the cluster spec pins SHA256:\S+/);
      return true;
    });
    const check = await sshExec(bed.host('etcd1').ssh, bed.sshIdentity, `test -e ${marker}`);
    assert.equal(check.code, 1, 'the command must not have run');
  });

  it('an unreachable host is reported as such', async () => {
    const target = { ...bed.host('etcd1').ssh, port: 1 };
    await assert.rejects(sshExec(target, bed.sshIdentity, 'true', { timeoutMs: 5000 }), (e: unknown) => e instanceof SshError && e.kind === 'unreachable' && /cannot reach sshd/.test(e.message));
  });

  it('the service commands drive etcd like systemctl: stop, is-active, mainPid, logs, start', async () => {
    const h = bed.host('etcd3');
    const svc = (cmd: string) => cmd.replaceAll('{name}', 'etcd3');
    assert.equal((await sshExec(h.ssh, bed.sshIdentity, svc(bed.spec.service.isActive))).code, 0);
    assert.equal((await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.mainPid))).trim(), String(bed.etcdPid('etcd3')));
    assert.equal((await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.logs))).trim().split('\n').length, 20);
    await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.stop));
    assert.equal((await sshExec(h.ssh, bed.sshIdentity, svc(bed.spec.service.isActive))).code, 3);
    assert.equal(bed.etcdPid('etcd3'), null);
    assert.equal((await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.mainPid))).trim(), '0');

    // start returns once etcd itself listens on its client port: another process there does not count
    const squatter = createServer();
    await new Promise<void>((res) => squatter.listen(2379, h.address, res));
    try {
      const r = await sshExec(h.ssh, bed.sshIdentity, svc(bed.spec.service.start));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /etcd exited right after start[^]*address already in use/);
      assert.equal(bed.etcdPid('etcd3'), null);
    } finally {
      await new Promise((res) => squatter.close(res));
    }
    const degraded = await bed.observe();
    assert.equal(degraded.healthy, false);
    assert.ok(degraded.problems.some((p) => p.includes('etcd3 does not answer')), degraded.problems.join('; '));
    await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.start));
    await sshRun(h.ssh, bed.sshIdentity, svc(bed.spec.service.start)); // starting a running service is a no-op
    await bed.waitHealthy(30_000);
  });
});

describe('test bed teardown', () => {
  it('leaves no process of the bed and removes its files', async () => {
    const bed = await Bed.up({ hosts: 3, members: 3 });
    const pids = bed.livePids();
    assert.equal(pids.length, 6, 'three sshd and three etcd');
    await bed.down();
    for (const pid of pids) assert.equal(isOurs(pid, ''), false, `pid ${pid} still runs`);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(bed.dir), false);
  });
});

describe('test beds sharing one worker identity (secretsFrom)', () => {
  it('one SSH key and one etcd client certificate reach both clusters; each keeps its members and its CA on host 1', async () => {
    const { existsSync, mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const root = mkdtempSync(join(tmpdir(), 'etcd-steward-shared-'));
    const secrets = join(root, 'worker');
    const beds: Bed[] = [];
    try {
      const made = await Bed.sharedSecrets(secrets);
      const again = await Bed.sharedSecrets(secrets); // made once, reused after
      assert.deepEqual(again, made);
      for (const i of [1, 2]) beds.push(await Bed.up({ hosts: 2, members: 1, net: `127.10.${20 + i}`, dir: join(root, `bed${i}`), name: `shared-${i}`, secretsFrom: secrets }));
      const [a, b] = beds as [Bed, Bed];
      assert.equal(a.spec.name, 'shared-1');
      assert.deepEqual(a.secretFiles, b.secretFiles);
      assert.equal(a.secretFiles.sshKey, join(secrets, 'id_ed25519'));
      for (const bed of beds) {
        // the shared identity logs in to every host and passes etcd's client-cert auth
        for (const h of bed.hosts) assert.equal((await sshExec(h.ssh, a.sshIdentity, 'true')).code, 0);
        const o = await observeWith(bed, a);
        assert.equal(o.healthy, true, o.problems.join('; '));
        // the CA (certificate and key) on host 1 is the shared one; the member's own certificate is signed by it
        const caDir = bed.spec.layout.certDir.replace('{name}', 'etcd1');
        assert.deepEqual(readFileSync(join(caDir, 'ca-key.pem')), readFileSync(made.caKey));
        assert.equal(existsSync(join(bed.spec.layout.certDir.replace('{name}', 'etcd2'), 'ca-key.pem')), false);
        await sshRun(bed.host('etcd1').ssh, a.sshIdentity, `openssl verify -CAfile ${made.caCert} ${caDir}/member-etcd1.pem`);
      }
      await b.down();
      assert.equal(existsSync(secrets), true, "a bed's down() leaves the shared secrets");
    } finally {
      for (const bed of beds) await bed.down();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** `bed`'s cluster observed with `other`'s etcd credentials. */
function observeWith(bed: Bed, other: Bed) {
  return observeCluster(other.etcdCredentials, { endpoints: bed.endpoints });
}
