// Unit tests of pure logic: cluster spec validation and quorum arithmetic.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClusterSpec, SpecError, memberPaths } from '../spec/cluster';
import { parseScaleOutInput } from '../spec/operations';
import { failureTolerance, quorum } from '../common/quorum';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initialClusterValue, parseEnvFile, parseSetEnvVarOutput, renderEnvFile, setEnvVar, setEnvVarScript } from '../activities/envfile';
import { memberSans, signCsrScript } from '../activities/certs';
import { fingerprint, pinFingerprint } from '../activities/ssh';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8nE1b2Ohg3E0n9m8S0Jw1vVbWfQ0Yb2lq4d1uYvJpA';
const member = (name: string, address: string) => ({ name, address, ssh: { hostKey: KEY } });

function issuesOf(input: unknown): string[] {
  try {
    parseClusterSpec(input);
  } catch (e) {
    assert.ok(e instanceof SpecError, `expected SpecError, got ${String(e)}`);
    return e.issues;
  }
  assert.fail('expected the spec to be refused');
}

describe('cluster spec', () => {
  it('fills in the Kubespray layout, systemd service commands and default URLs', () => {
    const spec = parseClusterSpec({ name: 'prod', members: [member('etcd1', '127.10.0.1')] });
    assert.deepEqual(spec.layout, { envFile: '/etc/etcd.env', certDir: '/etc/ssl/etcd/ssl', dataDir: '/var/lib/etcd', etcdBinary: '/usr/local/bin/etcd' });
    assert.equal(spec.service.restart, 'systemctl restart etcd');
    assert.deepEqual(spec.members[0]!.peerURLs, ['https://127.10.0.1:2380']);
    assert.deepEqual(spec.members[0]!.clientURLs, ['https://127.10.0.1:2379']);
    assert.equal(spec.members[0]!.ssh.host, '127.10.0.1');
    assert.equal(spec.members[0]!.ssh.port, 22);
    assert.deepEqual(spec.ca, { host: 'etcd1', dir: '/etc/ssl/etcd/ssl' });
    assert.equal(memberPaths(spec, 'etcd1').cert, '/etc/ssl/etcd/ssl/member-etcd1.pem');
    assert.equal(memberPaths(spec, 'etcd1').key, '/etc/ssl/etcd/ssl/member-etcd1-key.pem');
  });

  it('ssh: root and direct by default; cluster-wide user, become and via; a member\'s own settings win (via: [] is direct); added members take the defaults', () => {
    const bastion = { host: '192.0.2.254', hostKey: KEY };
    const plain = parseClusterSpec({ name: 'p', members: [member('etcd1', '192.0.2.1')] }).members[0]!.ssh;
    assert.deepEqual(plain, { host: '192.0.2.1', port: 22, user: 'root', hostKey: KEY }, 'no become, no via when not used');
    const spec = parseClusterSpec({
      name: 'fleet',
      ssh: { user: 'ops', become: 'sudo', via: [bastion] },
      members: [
        member('etcd1', '192.0.2.1'),
        { name: 'etcd2', address: '192.0.2.2', ssh: { hostKey: KEY, user: 'root', become: 'none', via: [] } },
        { name: 'etcd3', address: '192.0.2.3', ssh: { hostKey: KEY, via: [{ ...bastion, port: 2200, user: 'jump' }] } },
      ],
    });
    assert.deepEqual(spec.members[0]!.ssh, { host: '192.0.2.1', port: 22, user: 'ops', hostKey: KEY, become: 'sudo', via: [{ host: '192.0.2.254', port: 22, user: 'ops', hostKey: KEY }] }, 'the jump host\'s user defaults to the member\'s');
    assert.deepEqual(spec.members[1]!.ssh, { host: '192.0.2.2', port: 22, user: 'root', hostKey: KEY, become: 'none', via: [] }, 'opting out of the defaults is written out');
    assert.deepEqual(spec.members[2]!.ssh.via, [{ host: '192.0.2.254', port: 2200, user: 'jump', hostKey: KEY }]);
    assert.deepEqual(parseClusterSpec(spec).members, spec.members, 'a normalized spec parses to itself (workflows pass it on)');
    const added = parseScaleOutInput({ spec, add: [member('etcd4', '192.0.2.4')] }).add[0]!;
    assert.deepEqual(added.ssh, { ...spec.members[0]!.ssh, host: '192.0.2.4' });
    const issues = issuesOf({ name: 'p', ssh: { become: 'su', via: [{ host: 'bastion..x', hostKey: 'nope' }] }, members: [member('etcd1', '192.0.2.1')] });
    assert.ok(issues.some((i) => /^ssh\.become: .*"none" \| "sudo"|^ssh\.become: .*'none' \| 'sudo'|^ssh\.become: Invalid option/.test(i)), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('ssh.via[0].host: must be an IP address or a DNS name')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('ssh.via[0].hostKey: must be an OpenSSH public key')), issues.join('\n'));
  });

  it('expands {name} in layout templates', () => {
    const spec = parseClusterSpec({ name: 'x', members: [member('a', '127.0.0.2')], layout: { envFile: '/srv/{name}/etcd.env' } });
    assert.equal(memberPaths(spec, 'a').envFile, '/srv/a/etcd.env');
  });

  it('names each bad field and says what is expected', () => {
    const issues = issuesOf({
      name: 'prod',
      members: [
        { name: 'etcd1', address: '127.10.0.1', ssh: { hostKey: 'not-a-key' } },
        { name: 'etcd1', address: '127.10.0.2', ssh: { hostKey: KEY, port: 70000 } },
      ],
    });
    assert.ok(issues.some((i) => i.startsWith('members[0].ssh.hostKey:') && i.includes('ssh-keyscan')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('members[1].ssh.port:')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('members[1]:') && i.includes('name etcd1 is also used by members[0]')), issues.join('\n'));
  });

  it('refuses a duplicate peer URL, an unknown CA host, an unknown field and a URL with a path', () => {
    const issues = issuesOf({
      name: 'prod',
      members: [member('a', '127.10.0.1'), { ...member('b', '127.10.0.2'), peerURLs: ['https://127.10.0.1:2380'] }, { ...member('c', '127.10.0.3'), clientURLs: ['https://127.10.0.3:2379/x'] }],
      ca: { host: 'nope' },
      extra: 1,
    });
    assert.ok(issues.some((i) => i.includes('peer URL https://127.10.0.1:2380 is also used by members[0]')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('ca.host:') && i.includes('a, b, c')), issues.join('\n'));
    assert.ok(issues.some((i) => i.includes('extra')), issues.join('\n'));
    assert.ok(issues.some((i) => i.startsWith('members[2].clientURLs[0]:')), issues.join('\n'));
  });
});

describe('quorum arithmetic', () => {
  it('quorum is a strict majority', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorum), [1, 2, 2, 3, 3, 4, 4]);
  });
  it('tolerance is floor((n-1)/2) less the unhealthy, never floor(n/2)', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => failureTolerance(n)), [0, 0, 1, 1, 2, 2, 3]);
    assert.equal(failureTolerance(5, 1), 1);
    assert.equal(failureTolerance(3, 2), 0);
  });
  it('refuses nonsense counts', () => {
    assert.throws(() => quorum(0), RangeError);
  });
});

describe('etcd.env', () => {
  it('renders and parses back, with ETCD_INITIAL_CLUSTER listing every peer URL', () => {
    const v = initialClusterValue([
      { name: 'a', peerURLs: ['https://127.0.0.2:2380'] },
      { name: 'b', peerURLs: ['https://127.0.0.3:2380'] },
    ]);
    assert.equal(v, 'a=https://127.0.0.2:2380,b=https://127.0.0.3:2380');
    const text = renderEnvFile({ ETCD_NAME: 'a', ETCD_INITIAL_CLUSTER: v });
    assert.deepEqual(parseEnvFile(text), { ETCD_NAME: 'a', ETCD_INITIAL_CLUSTER: v });
    assert.throws(() => renderEnvFile({ ETCD_NAME: 'a\nETCD_X=1' }), /line break/);
  });

  it('setEnvVarScript (on the host, one round trip) ends with the same text as setEnvVar, and says whether it wrote', () => {
    const dir = mkdtempSync(join(tmpdir(), 'steward-envset-'));
    try {
      const file = join(dir, 'etcd.env');
      const value = 'a=https://127.0.0.2:2380,b=https://[::1]:2380&x|y\\z';
      const cases = [
        'ETCD_NAME=a\nETCD_INITIAL_CLUSTER=old\nETCD_DATA_DIR=/var/lib/etcd\n',
        '# header\n  export ETCD_INITIAL_CLUSTER=old\nETCD_INITIAL_CLUSTER=again\n',
        'ETCD_NAME=a\nETCD_INITIAL_CLUSTER=old', // no final newline
        'ETCD_NAME=a\n', // missing: appended
        'ETCD_NAME=a', // missing, no final newline
        '', // empty file
        'ETCD_INITIAL_CLUSTER_STATE=existing\nMY_ETCD_INITIAL_CLUSTER=keep\n', // similar names untouched
        `ETCD_INITIAL_CLUSTER=${value}\n`, // already so
      ];
      for (const before of cases) {
        writeFileSync(file, before);
        chmodSync(file, 0o600);
        const out = execFileSync('bash', ['-c', setEnvVarScript(file, 'ETCD_INITIAL_CLUSTER', value, '0640')], { encoding: 'utf8' });
        const expected = setEnvVar(before, 'ETCD_INITIAL_CLUSTER', value);
        const r = parseSetEnvVarOutput(out);
        assert.equal(readFileSync(file, 'utf8'), expected, `file after, from ${JSON.stringify(before)}`);
        assert.equal(r.before, before, `printed text before, from ${JSON.stringify(before)}`);
        assert.equal(r.changed, expected !== before, `changed, from ${JSON.stringify(before)}`);
        assert.equal(statSync(file).mode & 0o777, expected !== before ? 0o640 : 0o600, `mode, from ${JSON.stringify(before)}`);
      }
      rmSync(file);
      assert.throws(() => execFileSync('bash', ['-c', setEnvVarScript(file, 'ETCD_INITIAL_CLUSTER', value)], { stdio: 'pipe' }), (e: { status?: number }) => e.status === 2);
      assert.throws(() => parseSetEnvVarOutput('no marker'), /unexpected output/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('certificates and host keys', () => {
  it('a member certificate names only its own addresses plus loopback', () => {
    assert.deepEqual(memberSans({ address: '127.10.0.4', peerURLs: ['https://127.10.0.4:2380'], clientURLs: ['https://127.10.0.4:2379'] }), ['IP:127.10.0.4', 'IP:127.0.0.1', 'DNS:localhost']);
    assert.throws(() => signCsrScript('/ca', ['IP:1.2.3.4, DNS:evil']), /not valid/);
  });
  it('a pin in either form stands for the same fingerprint', () => {
    const blob = Buffer.from(KEY.split(' ')[1]!, 'base64');
    assert.equal(pinFingerprint(KEY), fingerprint(blob));
    assert.equal(pinFingerprint(fingerprint(blob)), fingerprint(blob));
  });
});
