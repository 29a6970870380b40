/**
 * `npm run bench:access`: what root-less access costs, per SSH command and per preflight, against
 * root logging in directly, measured in the same run on two identical beds (3 hosts each):
 *
 * - root, direct (the baseline);
 * - etcd-steward, direct, without and with `sudo -n` (a bed whose hosts refuse root);
 * - etcd-steward with `sudo -n`, through a bastion (the bastion the only way in).
 *
 * For each: a cold command on every host at once (new connections: for the bastion path two
 * handshakes per host, one of them shared), then `--n` warm commands one after another on one host
 * (the pooled connection: what each step of an operation pays), and the scale-out preflight
 * activity (one script per host, all at once) run `--preflights` times. Figures are medians of
 * wall-clock times observed here; each ratio is against the access it differs from by one thing,
 * in the same run.
 */
import { Command } from 'commander';
import { createActivities } from '../activities';
import { sshTarget } from '../activities/host';
import { SshPool, closeSshPool } from '../activities/ssh';
import { parseScaleOutInput } from '../spec/operations';
import { Bed } from '../testbed';
import { activityRunner } from '../testbed/run-activity';
import { MockActivityEnvironment } from '@temporalio/testing';

const opts = new Command('bench:access')
  .description('cost of SSH as a sudo user through a bastion, against root directly (two identical 3-host beds)')
  .option('--n <n>', 'warm commands in a row on one host', (v) => Number(v), 200)
  .option('--preflights <n>', 'scale-out preflights run on each bed', (v) => Number(v), 20)
  .parse()
  .opts<{ n: number; preflights: number }>();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const ms = (x: number) => `${x.toFixed(2)} ms`;

interface Figures {
  coldMs: number;
  warmMs: number;
  warmP99Ms: number;
  /** Null where the access cannot run the preflight (no sudo: the CA key is root's). */
  preflightMs: number | null;
  connections: number;
}

type Access = { label: string; bed: 'root' | 'sudo' | 'sudo+bastion'; sudo: boolean };

const ACCESSES: Access[] = [
  { label: 'root, direct', bed: 'root', sudo: false },
  { label: 'etcd-steward, direct, no sudo', bed: 'sudo', sudo: false },
  { label: 'etcd-steward, direct, sudo -n', bed: 'sudo', sudo: true },
  { label: 'etcd-steward, via bastion, sudo -n', bed: 'sudo+bastion', sudo: true },
];

async function measure(a: Access, bed: Bed): Promise<Figures> {
  const pool = new SshPool();
  // The spec as this access reaches the hosts (become none: the same user without sudo).
  const spec = a.sudo || a.bed === 'root' ? bed.spec : { ...bed.spec, ssh: { ...bed.spec.ssh, become: 'none' as const }, members: bed.spec.members.map((m) => ({ ...m, ssh: { ...m.ssh, become: 'none' as const } })) };
  try {
    const targets = spec.members.map(sshTarget);
    let t = performance.now();
    const cold = await Promise.all(targets.map((x) => pool.exec(x, bed.sshIdentity, 'true')));
    const coldMs = performance.now() - t;
    if (cold.some((r) => r.code !== 0)) throw new Error(`${a.label}: a cold command failed`);
    const warm: number[] = [];
    for (let i = 0; i < opts.n; i++) {
      t = performance.now();
      const r = await pool.exec(targets[0]!, bed.sshIdentity, 'true');
      warm.push(performance.now() - t);
      if (r.code !== 0) throw new Error(`${a.label}: a warm command failed`);
    }
    const connections = pool.stats().connections;
    let preflightMs: number | null = null;
    if (a.sudo || a.bed === 'root') {
      // The preflight through the worker's own pool, as an activity runs it.
      const acts = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
      const run = activityRunner(() => acts, new MockActivityEnvironment());
      const input = parseScaleOutInput({ spec, add: [Bed.memberInput(bed.host('etcd4'))] });
      await run('preflightScaleOut', input); // warms the worker's connections
      const pre: number[] = [];
      for (let i = 0; i < opts.preflights; i++) {
        t = performance.now();
        await run('preflightScaleOut', input);
        pre.push(performance.now() - t);
      }
      preflightMs = median(pre);
      await closeSshPool();
    }
    const sorted = [...warm].sort((x, y) => x - y);
    const f = { coldMs, warmMs: median(warm), warmP99Ms: sorted[Math.floor(sorted.length * 0.99)]!, preflightMs, connections };
    console.log(
      `${a.label}: cold command on 3 hosts ${ms(f.coldMs)} (${connections} connections), warm command p50 ${ms(f.warmMs)} p99 ${ms(f.warmP99Ms)} (${opts.n})${preflightMs === null ? '' : `, scale-out preflight p50 ${ms(preflightMs)} (${opts.preflights})`}`,
    );
    return f;
  } finally {
    await pool.closeAll();
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const figures = new Map<string, Figures>();
  for (const kind of ['root', 'sudo', 'sudo+bastion'] as const) {
    const bed = await Bed.up({ hosts: 4, members: 3, net: '127.24.0', dir: '/tmp/etcd-steward-bench-access', ...(kind === 'root' ? {} : { access: 'sudo' as const, bastion: kind === 'sudo+bastion' }) });
    try {
      for (const a of ACCESSES.filter((x) => x.bed === kind)) figures.set(a.label, await measure(a, bed));
    } finally {
      await bed.down();
    }
  }
  const f = (label: string) => figures.get(label)!;
  const r = (x: number, y: number) => `${(x / y).toFixed(2)} (${x - y >= 0 ? '+' : ''}${ms(x - y)})`;
  const [root, plain, sudo, bastion] = ACCESSES.map((a) => f(a.label));
  console.log('\nratios, each against the line before it in the same run (warm command p50):');
  console.log(`  user etcd-steward ÷ root (their login shells' rc files differ: Debian's bash reads ~/.bashrc for commands sshd runs): ${r(plain!.warmMs, root!.warmMs)}`);
  console.log(`  sudo -n ÷ no sudo (same user): ${r(sudo!.warmMs, plain!.warmMs)}`);
  console.log(`  via bastion ÷ direct (both sudo): ${r(bastion!.warmMs, sudo!.warmMs)}; cold, 3 hosts at once: ${r(bastion!.coldMs, sudo!.coldMs)}`);
  console.log(`  scale-out preflight, via bastion with sudo ÷ root direct: ${r(bastion!.preflightMs!, root!.preflightMs!)}; ÷ direct with sudo: ${r(bastion!.preflightMs!, sudo!.preflightMs!)}`);
  console.log(`bench:access: total ${((Date.now() - t0) / 1000).toFixed(1)} s (${new Date().toISOString()})`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench:access failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
