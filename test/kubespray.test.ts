// Kubespray inventories (spec/kubespray.ts, spec/knownHosts.ts): read by Ansible's own
// ansible-inventory (ansible-core, installed by the set-up), mapped by Kubespray's rules, host
// keys pinned from known_hosts (hashed, ports, revoked). Inventories shaped like Kubespray's
// samples (comments, :children, vars sections, group_vars, both forms) and bad ones, each answered
// with the file:line and the fix. Then the CLI with --inventory on a real bed (etcd, sshd, TLS,
// Temporal): health, a scale-out that finds the members to add itself, a scale-in by hostname.
// Its own addresses, ports and directories (127.22.0.x, 27243/28243), like the CLI suite.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpecError } from '../spec/cluster';
import { hostKeysFor } from '../spec/knownHosts';
import { clusterNameOf, loadInventory } from '../spec/kubespray';
import { Bed } from '../testbed';
import { startStack, type Stack } from './helpers';

const ROOT = resolve(__dirname, '..');
const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
const ED2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvkY0Vx6hs6pXLZWmN4d8oqR3+9y1r+MZ1q2c2xkB7F';
const RSA = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDmadeupkeyforpinningtestsonly';

/** Hashes a known_hosts file in place as `HashKnownHosts yes` does (OpenSSH's ssh-keygen -H). */
function hashKnownHosts(file: string): void {
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  rmSync(`${file}.old`, { force: true });
}

describe('known_hosts', () => {
  it('finds a host by plain, hashed and [host]:port names; prefers ed25519; never a revoked key; skips CA lines and negations', () => {
    const text = [
      '# comment',
      `203.0.113.1,node1 ${RSA}`,
      `203.0.113.1 ${ED}`,
      `[203.0.113.2]:2222 ${ED2}`,
      `@cert-authority *.example ${ED}`,
      `@revoked 203.0.113.3 ${ED}`,
      `203.0.113.3 ${ED}`,
      `203.0.113.* ${ED2}`,
      `!203.0.113.9,203.0.113.* ${RSA}`,
    ].join('\n');
    assert.deepEqual(hostKeysFor(text, '203.0.113.1').keys.map((k) => k.key), [ED, ED2, RSA], 'ed25519 first (file order among them), each key once');
    assert.deepEqual(hostKeysFor(text, 'node1').keys.map((k) => k.key), [RSA]);
    assert.deepEqual(hostKeysFor(text, '203.0.113.2', 2222).keys.map((k) => k.key), [ED2]);
    assert.deepEqual(hostKeysFor(text, '203.0.113.2').keys.map((k) => k.key), [ED2, RSA], 'port 22 is not [203.0.113.2]:2222; the wildcards match');
    assert.deepEqual(hostKeysFor(text, '203.0.113.3').keys.map((k) => k.key), [ED2, RSA], 'the revoked key is never returned');
    assert.equal(hostKeysFor(text, '203.0.113.3').revoked.length, 1);
    assert.deepEqual(hostKeysFor(text, '203.0.113.9').keys.map((k) => k.key), [ED2], 'a negated pattern excludes the host from that line');
    assert.deepEqual(hostKeysFor(text, 'host.example').keys, [], 'a @cert-authority line pins no host key');

    const dir = mkdtempSync(join(tmpdir(), 'etcd-steward-kh-'));
    try {
      writeFileSync(join(dir, 'kh'), `203.0.113.1 ${ED}\n[203.0.113.2]:2222 ${ED2}\n`);
      hashKnownHosts(join(dir, 'kh'));
      const hashed = execFileSync('cat', [join(dir, 'kh')], { encoding: 'utf8' });
      assert.match(hashed, /^\|1\|/m, 'ssh-keygen -H did not hash');
      assert.deepEqual(hostKeysFor(hashed, '203.0.113.1').keys.map((k) => k.key), [ED]);
      assert.deepEqual(hostKeysFor(hashed, '203.0.113.2', 2222).keys.map((k) => k.key), [ED2]);
      assert.deepEqual(hostKeysFor(hashed, '203.0.113.2').keys, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Kubespray inventories, read by ansible-inventory', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'etcd-steward-inventory-'));
    writeFileSync(join(dir, 'known_hosts'), [`192.0.2.11 ${ED}`, `192.0.2.12 ${RSA}`, `[192.0.2.13]:2222 ${ED2}`, `192.0.2.14 ${ED}`].join('\n') + '\n');
    hashKnownHosts(join(dir, 'known_hosts'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes `files` under dir/<name>/ and returns the inventory's path (the first file). */
  function inventory(name: string, files: Record<string, string>): string {
    const d = join(dir, name);
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(d, f, '..'), { recursive: true });
      writeFileSync(join(d, f), text);
    }
    return join(d, Object.keys(files)[0]!);
  }
  const load = (file: string) => loadInventory(file, { knownHosts: join(dir, 'known_hosts'), defaultUser: 'ops' });
  const rejects = (file: string, ...messages: RegExp[]) =>
    assert.throws(
      () => load(file),
      (e: unknown) => {
        assert.ok(e instanceof SpecError, String(e));
        for (const m of messages) assert.ok(e.issues.some((i) => m.test(i)), `no issue matches ${m}:\n${e.issues.join('\n')}`);
        return true;
      },
    );

  it('inventory.ini as Kubespray\'s sample shapes it: [etcd:children], vars sections, group_vars; names, addresses, SSH and layout by Kubespray\'s rules', () => {
    const file = inventory('prod-eu', {
      'inventory.ini': [
        '# ## Configure \'ip\' variable to bind kubernetes services on a',
        '# ## different ip than the default iface',
        '# ## We should set etcd_member_name for etcd cluster. The node that is not a etcd member do not need to set the value.',
        '[all]',
        'node1 ansible_host=192.0.2.11 ip=198.51.100.1 etcd_member_name=etcd1',
        'node2 ansible_host=192.0.2.12  ip=198.51.100.2   # the second control-plane node',
        'node3 ansible_host=192.0.2.13 ansible_port=2222 ansible_user=deploy ip=198.51.100.3 access_ip=203.0.113.33',
        'node4 ansible_host=192.0.2.14 ip=198.51.100.4',
        '',
        '[bastion]',
        '# bastion ansible_host=x.x.x.x ansible_user=some_user',
        '',
        '[kube_control_plane]',
        'node1',
        'node2',
        'node3',
        '',
        '[etcd:children]',
        'kube_control_plane',
        '',
        '[kube_node]',
        'node4',
        '',
        '[k8s_cluster:children]',
        'kube_control_plane',
        'kube_node',
        '',
        '[all:vars]',
        'etcd_data_dir=/srv/etcd',
      ].join('\n'),
      'group_vars/all/etcd.yml': 'etcd_cluster_token: prod-eu-etcd\netcd_deployment_type: host\n',
    });
    const { spec, hosts } = load(file);
    assert.equal(spec.name, 'prod-eu', 'the cluster name is the inventory directory\'s');
    assert.equal(spec.token, 'prod-eu-etcd', 'from group_vars/all');
    assert.deepEqual(hosts, [
      { host: 'node1', member: 'etcd1', line: 5 },
      { host: 'node2', member: 'etcd2', line: 6 },
      { host: 'node3', member: 'etcd3', line: 7 },
    ]);
    assert.deepEqual(
      spec.members.map((m) => [m.name, m.address, m.peerURLs[0], m.clientURLs[0], m.certName, `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}`, m.ssh.hostKey]),
      [
        ['etcd1', '198.51.100.1', 'https://198.51.100.1:2380', 'https://198.51.100.1:2379', 'node1', 'ops@192.0.2.11:22', ED],
        ['etcd2', '198.51.100.2', 'https://198.51.100.2:2380', 'https://198.51.100.2:2379', 'node2', 'ops@192.0.2.12:22', RSA],
        ['etcd3', '203.0.113.33', 'https://203.0.113.33:2380', 'https://203.0.113.33:2379', 'node3', 'deploy@192.0.2.13:2222', ED2],
      ],
    );
    assert.deepEqual(spec.layout, { envFile: '/etc/etcd.env', certDir: '/etc/ssl/etcd/ssl', dataDir: '/srv/etcd', etcdBinary: '/usr/local/bin/etcd' });
    assert.deepEqual(spec.ca, { host: 'etcd1', dir: '/etc/ssl/etcd/ssl' });
    assert.equal(spec.service.start, 'systemctl start etcd');
  });

  it('hosts.yaml (all.hosts + children.etcd.hosts): member names by position unless etcd_member_name says', () => {
    const file = inventory('lab', {
      'hosts.yaml': [
        'all:',
        '  hosts:',
        '    cp-a:',
        '      ansible_host: 192.0.2.11',
        '      ip: 203.0.113.1',
        '    cp-b:',
        '      ansible_host: 192.0.2.12',
        '      etcd_member_name: etcd-b',
        '    cp-c:',
        '      ansible_host: 192.0.2.14',
        '  children:',
        '    kube_control_plane:',
        '      hosts:',
        '        cp-a:',
        '        cp-b:',
        '        cp-c:',
        '    etcd:',
        '      hosts:',
        '        cp-a:',
        '        cp-b:',
        '        cp-c:',
      ].join('\n'),
    });
    const { spec, hosts } = load(file);
    assert.equal(clusterNameOf(file), 'lab');
    assert.deepEqual(hosts.map((h) => [h.host, h.member]), [['cp-a', 'etcd1'], ['cp-b', 'etcd-b'], ['cp-c', 'etcd3']]);
    assert.deepEqual(spec.members.map((m) => m.address), ['203.0.113.1', '192.0.2.12', '192.0.2.14'], 'ip, else ansible_host');
  });

  it('bad inventories: each problem with its file:line and the fix', () => {
    rejects(inventory('no-etcd', { 'inventory.ini': '[kube_control_plane]\nnode1 ansible_host=192.0.2.11\n' }), /has no etcd group: .*add an \[etcd\] section listing them, or \[etcd:children\]/);
    const noAddress = inventory('no-address', { 'inventory.ini': '[etcd]\n# the first\nnode1 ansible_host=192.0.2.11\nnode2 ansible_port=22\n' });
    rejects(noAddress, new RegExp(`^${noAddress.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: node2 has no address: set ip= .* or ansible_host=`));
    const dup = inventory('dup', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.11 etcd_member_name=etcd1\nnode2 ansible_host=192.0.2.12 etcd_member_name=etcd1\n' });
    rejects(dup, /dup\/inventory\.ini:2, .*dup\/inventory\.ini:3: node1 and node2 are both etcd member "etcd1": give each its own etcd_member_name/);
    rejects(
      inventory('unknown-key', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.99\n' }),
      /inventory\.ini:2: no host key for 192\.0\.2\.99 \(node1\) in .*known_hosts: add it after checking it out of band .*never trusts a key on first use/,
    );
    rejects(inventory('kubeadm', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.11\n[etcd:vars]\netcd_deployment_type=kubeadm\n' }), /node1 has etcd_deployment_type=kubeadm; etcd-steward drives the systemd etcd/);
    rejects(inventory('templated', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.11 ip="{{ hostvars[inventory_hostname].x }}"\n' }), /node1's ip is a Jinja template .*set it to its value/);
    rejects(inventory('broken', { 'inventory.ini': '[etcd\nnode1\n' }), /ansible-inventory cannot parse it/);
  });

  it('become and the bastion: ansible_become (else sudo for a user other than root, as Kubespray runs with --become), the [bastion] host as every etcd host\'s jump host, its key pinned from known_hosts', () => {
    const file = inventory('behind-bastion', {
      'inventory.ini': [
        '[all]',
        'node1 ansible_host=192.0.2.11 ansible_user=ubuntu',
        'node2 ansible_host=192.0.2.12 ansible_user=root',
        'node3 ansible_host=192.0.2.13 ansible_port=2222 ansible_user=ubuntu ansible_become=false',
        'bastion ansible_host=192.0.2.14 ansible_user=jump',
        '[bastion]',
        'bastion',
        '[etcd]',
        'node1',
        'node2',
        'node3',
      ].join('\n'),
    });
    const { spec } = load(file);
    assert.deepEqual(
      spec.members.map((m) => [m.name, m.ssh.user, m.ssh.become ?? 'none', m.ssh.via]),
      ['ubuntu', 'root', 'ubuntu'].map((user, i) => [`etcd${i + 1}`, user, i === 0 ? 'sudo' : 'none', [{ host: '192.0.2.14', port: 22, user: 'jump', hostKey: ED }]]),
    );
    rejects(
      inventory('su', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.11 ansible_user=ubuntu ansible_become_method=su ansible_become_user=postgres\n' }),
      /inventory\.ini:2: node1's ansible_become_method is "su": etcd-steward becomes root with sudo only/,
      /inventory\.ini:2: node1's ansible_become_user is "postgres": etcd-steward's commands run as root/,
    );
    rejects(
      inventory('unknown-bastion', { 'inventory.ini': '[etcd]\nnode1 ansible_host=192.0.2.11\n[bastion]\nbastion ansible_host=192.0.2.99\n' }),
      /inventory\.ini:4: no host key for the bastion 192\.0\.2\.99 \(bastion\) in .*known_hosts/,
    );
  });
});

describe('the CLI with --inventory, on a real bed', () => {
  const TEMPORAL = { dir: '/tmp/etcd-steward-inv-temporal', port: 27243, uiPort: 28243 };
  let stack: Stack;
  let bed: Bed;
  let files: string;
  const f = (name: string) => join(files, 'bed-cluster', name);

  function cli(args: string[], timeoutMs = 180_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${TEMPORAL.port}` };
    for (const k of ['STEWARD_TEMPORAL_ADDRESS', 'STEWARD_NAMESPACE', 'TEMPORAL_NAMESPACE', 'TEMPORAL_PROFILE', 'TEMPORAL_CONFIG_FILE', 'STEWARD_TASK_QUEUE', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS']) delete env[k];
    return new Promise((res) => {
      // the package's bin, as `npx etcd-steward` runs it
      execFile(process.execPath, [join(ROOT, 'bin', 'etcd-steward.cjs'), ...args], { cwd: ROOT, env, timeout: timeoutMs }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string }) | null;
        res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr });
      });
    });
  }
  const show = (r: { code: number | null; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
  const inventoryArgs = () => ['--inventory', f('inventory.ini'), '--known-hosts', f('known_hosts'), '--overlay', f('overlay.json')];

  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'etcd-steward-inv-files-'));
    mkdirSync(join(files, 'bed-cluster'));
    [stack, bed] = await Promise.all([startStack(TEMPORAL), Bed.up({ hosts: 5, members: 3, net: '127.22.0', dir: '/tmp/etcd-steward-inv-bed' })]);
    await stack.startWorker(bed);
    // Kubespray's shape: hosts node1..node5, the first three named etcd1..etcd3 (as the bed bootstrapped them), node4 and node5 new
    const line = (i: number) => {
      const h = bed.host(`etcd${i}`);
      return `node${i} ansible_host=${h.ssh.host} ansible_port=${h.ssh.port} ansible_user=${h.ssh.user} ip=${h.address}${i <= 3 ? ` etcd_member_name=etcd${i}` : ''}`;
    };
    writeFileSync(
      f('inventory.ini'),
      ['[all]', ...[1, 2, 3, 4, 5].map(line), '', '[kube_control_plane]', 'node1', 'node2', 'node3', 'node4', 'node5', '', '[etcd:children]', 'kube_control_plane', '', '[kube_node]', 'node5', ''].join('\n'),
    );
    writeFileSync(f('known_hosts'), bed.hosts.map((h) => `[${h.ssh.host}]:${h.ssh.port} ${h.hostKey}`).join('\n') + '\n');
    hashKnownHosts(f('known_hosts'));
    // the bed keeps each host under its own directory and runs etcd without systemd: its layout and service commands over Kubespray's
    writeFileSync(f('overlay.json'), JSON.stringify({ name: bed.spec.name, layout: bed.spec.layout, service: bed.spec.service, ca: { dir: bed.spec.ca.dir } }, null, 2));
  });
  after(async () => {
    await stack?.stop();
    await bed?.down();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  it('health --inventory: the members of the etcd group that run, by their names', async () => {
    const r = await cli(['health', ...inventoryArgs()]);
    // node4 and node5 are not members yet: they do not answer, so the report names them as problems (exit 1)
    assert.match(r.stdout, /^cluster bed: /m, show(r));
    for (const n of ['etcd1', 'etcd2', 'etcd3']) assert.match(r.stdout, new RegExp(`^\\s+${n}\\s+[0-9a-f]+\\s+voter\\s+yes\\s`, 'm'), show(r));
  });

  it('scale-out --inventory, no --add: adds the etcd hosts the cluster does not have (node4, node5), one learner at a time, certificates named after the hosts; --wait on a terminal redraws the members in place', async () => {
    // on a terminal (script(1) gives it one): the live view, members and the gate redrawn in place
    const cmd = [process.execPath, join(ROOT, 'bin', 'etcd-steward.cjs'), 'scale-out', ...inventoryArgs(), '--wait'].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
      const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${TEMPORAL.port}`, TERM: 'xterm' };
      for (const k of ['NODE_TEST_CONTEXT', 'NODE_OPTIONS']) delete env[k];
      execFile('script', ['-q', '-e', '-c', cmd, '/dev/null'], { cwd: ROOT, env, timeout: 180_000 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string }) | null;
        res({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout: stdout.replaceAll('\r', ''), stderr });
      });
    });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /── scaleOut of bed · \S+/, `no live view:\n${show(r)}`);
    assert.match(r.stdout, new RegExp(`${String.fromCharCode(27)}\\[\\d+A${String.fromCharCode(27)}\\[J`), `the view is not redrawn in place (cursor up, clear):\n${show(r)}`);
    assert.match(r.stdout, /^ {3}etcd5 +(added|catching-up|promoting|starting|learner) +\d+ s$/m, `no member line for etcd5:\n${show(r)}`);
    assert.match(r.stdout, /^from .*inventory\.ini: members etcd1 \(node1\), etcd2 \(node2\), etcd3 \(node3\); adding etcd4 \(node4\), etcd5 \(node5\)$/m, show(r));
    assert.match(r.stdout, /^completed: 5 voting members \(etcd1, etcd2, etcd3, etcd4, etcd5\); added etcd4, etcd5$/m, show(r));
    const o = await bed.observe();
    assert.deepEqual(o.problems, []);
    assert.equal(o.voters, 5);
    // Kubespray's file names: member-<inventory hostname>.pem
    const certDir = bed.spec.layout.certDir.replaceAll('{name}', 'etcd4');
    assert.ok(execFileSync('ls', [certDir], { encoding: 'utf8' }).split('\n').includes('member-node4.pem'), `no member-node4.pem in ${certDir}`);
    const again = await cli(['scale-out', ...inventoryArgs()]);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stderr, /nothing to add: every etcd host of .* is a member of bed already/, show(again));
  });

  it('scale-in --inventory --remove node5 (by inventory hostname): 5 → 4, the others untouched', async () => {
    const pids = ['etcd1', 'etcd2', 'etcd3', 'etcd4'].map((n) => bed.etcdPid(n));
    const r = await cli(['scale-in', ...inventoryArgs(), '--remove', 'node5', '--wait']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^completed: 4 voting members \(etcd1, etcd2, etcd3, etcd4\); removed etcd5$/m, show(r));
    assert.deepEqual(['etcd1', 'etcd2', 'etcd3', 'etcd4'].map((n) => bed.etcdPid(n)), pids, 'a member that stays was restarted');
  });

  it('scale-in --inventory EDITED --from-inventory DEPLOYED: removes the etcd hosts the edit took out (node4), 4 → 3', async () => {
    const text = (hosts: number[]) => {
      const all = execFileSync('cat', [f('inventory.ini')], { encoding: 'utf8' }).split('\n');
      return all.filter((l) => !hosts.some((i) => new RegExp(`^node${i}\\b`).test(l))).join('\n');
    };
    writeFileSync(f('deployed.ini'), text([5])); // as the cluster runs now: node1..node4
    writeFileSync(f('edited.ini'), text([4, 5])); // node4 taken out
    const pids = ['etcd1', 'etcd2', 'etcd3'].map((n) => bed.etcdPid(n));
    const args = ['--known-hosts', f('known_hosts'), '--overlay', f('overlay.json')];
    const backwards = await cli(['scale-in', '--inventory', f('deployed.ini'), '--from-inventory', f('edited.ini'), ...args]);
    assert.equal(backwards.code, 2, show(backwards));
    assert.match(backwards.stderr, /etcd4 is in it but not in .*edited\.ini: a scale-in adds nothing \(scale-out --inventory does\)/, show(backwards));
    const r = await cli(['scale-in', '--inventory', f('edited.ini'), '--from-inventory', f('deployed.ini'), ...args, '--wait']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^completed: 3 voting members \(etcd1, etcd2, etcd3\); removed etcd4$/m, show(r));
    assert.deepEqual(['etcd1', 'etcd2', 'etcd3'].map((n) => bed.etcdPid(n)), pids, 'a member that stays was restarted');
  });

  it('bad option combinations exit 2 naming the fix', async () => {
    const both = await cli(['health', '--spec', 'x.yaml', ...inventoryArgs()]);
    assert.equal(both.code, 2, show(both));
    assert.match(both.stderr, /--spec and --inventory: give one of them/, show(both));
    const none = await cli(['health']);
    assert.equal(none.code, 2, show(none));
    assert.match(none.stderr, /give --spec FILE \(a cluster spec\) or --inventory FILE \(a Kubespray inventory\)/, show(none));
    const stray = await cli(['health', '--spec', 'x.yaml', '--known-hosts', 'kh']);
    assert.equal(stray.code, 2, show(stray));
    assert.match(stray.stderr, /--known-hosts goes with --inventory/, show(stray));
  });
});
