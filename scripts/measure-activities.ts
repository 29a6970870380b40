/**
 * `tsx scripts/measure-activities.ts [--cold] [--json]`: runs each host activity of a scale-out,
 * a rolling restart and a scale-out's compensation once on the real bed (outside a worker, as
 * the idempotency tests do) and prints, per activity, its wall time and what it cost over SSH:
 * connections opened and exec channels used, from the SSH pool's own counters.
 *
 * Default: the pool as a worker has it (connections reused from one activity to the next while
 * they are fresh). `--cold`: the pool is emptied before each activity, so each one pays for its
 * own connections (a worker that sees a cluster for the first time, or after the idle expiry).
 *
 * The bed is the usual one (STEWARD_BED_NET / STEWARD_BED_DIR move it beside another).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities, type Activities } from '../activities';
import { closeSshPool, sshPoolStats } from '../activities/ssh';
import type { Member } from '../spec/cluster';
import { parseRollingRestartInput, parseScaleOutInput } from '../spec/operations';
import { Bed } from '../testbed';
import { activityRunner } from '../testbed/run-activity';

interface Row {
  step: string;
  ms: number;
  connections: number;
  execs: number;
}

async function main(): Promise<void> {
  const cold = process.argv.includes('--cold');
  const json = process.argv.includes('--json');
  const bed = await Bed.up({ hosts: 5, members: 3 });
  const rows: Row[] = [];
  await closeSshPool(); // the bed's own set-up went through the pool: start from none
  try {
    const acts: Activities = createActivities({ ssh: bed.sshIdentity, etcd: bed.etcdCredentials });
    const run = activityRunner(() => acts, new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }));
    const voters: Member[] = [...bed.spec.members];
    const member = (n: string) => Bed.memberInput(bed.host(n));
    const spec = () => ({ ...bed.spec, members: [...voters] });
    const ref = (n: string) => ({ endpoints: voters.flatMap((m) => m.clientURLs), member: member(n) });

    /** Runs one activity and records its cost. */
    async function measure<K extends keyof Activities>(step: string, name: K, ...args: Parameters<Activities[K]>) {
      if (cold) await closeSshPool();
      const before = sshPoolStats();
      const t = process.hrtime.bigint();
      const r = await run(name, ...args);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const after = sshPoolStats();
      rows.push({ step, ms, connections: after.connections - before.connections, execs: after.execs - before.execs });
      return r;
    }

    // A scale-out adding etcd4 (each host step once, then again: a retry after the work was done).
    await measure('preflightScaleOut (3 members + 1 new)', 'preflightScaleOut', parseScaleOutInput({ spec: bed.spec, add: [member('etcd4')] }));
    await measure('issueCert etcd4 (issues)', 'issueCert', { spec: spec(), member: member('etcd4') });
    await measure('issueCert etcd4 (again: kept)', 'issueCert', { spec: spec(), member: member('etcd4') });
    await run('addLearner', ref('etcd4'));
    await measure('syncConfig 3 + joining etcd4', 'syncConfig', { spec: spec(), members: [...voters, member('etcd4')], joining: 'etcd4' });
    await measure('syncConfig (again: no change)', 'syncConfig', { spec: spec(), members: [...voters, member('etcd4')], joining: 'etcd4' });
    await measure('startMember etcd4 (starts)', 'startMember', { spec: spec(), member: member('etcd4') });
    await measure('startMember etcd4 (again: runs)', 'startMember', { spec: spec(), member: member('etcd4') });
    await run('awaitCatchUp', { ...ref('etcd4'), maxLag: 100 });
    await run('promoteLearner', ref('etcd4'));
    voters.push(member('etcd4'));
    await bed.waitHealthy(30_000);

    // A rolling restart's host steps, on etcd4.
    await measure('preflightRollingRestart (4 members)', 'preflightRollingRestart', parseRollingRestartInput({ spec: spec(), reason: 'measure' }));
    const { pid } = await measure('readMemberPid etcd4', 'readMemberPid', { spec: spec(), member: member('etcd4') });
    await measure('restartMember etcd4', 'restartMember', { spec: spec(), member: member('etcd4'), pidBefore: pid });
    await run('awaitMemberReady', { endpoints: voters.flatMap((m) => m.clientURLs), member: member('etcd4'), maxIndexSpread: 10 });

    // A scale-out of etcd5 rolled back: its host steps, then the compensation's.
    await measure('issueCert etcd5 (issues)', 'issueCert', { spec: spec(), member: member('etcd5') });
    await run('addLearner', ref('etcd5'));
    await measure('syncConfig 4 + joining etcd5', 'syncConfig', { spec: spec(), members: [...voters, member('etcd5')], joining: 'etcd5' });
    await measure('startMember etcd5 (starts)', 'startMember', { spec: spec(), member: member('etcd5') });
    await measure('stopMember etcd5', 'stopMember', { spec: spec(), member: member('etcd5') });
    await run('removeLearner', ref('etcd5'));
    await measure('retireHost etcd5', 'retireHost', { spec: spec(), member: member('etcd5') });
    await measure('syncConfig back to 4 members', 'syncConfig', { spec: spec(), members: voters });
  } finally {
    await closeSshPool();
    await bed.down();
  }

  const width = Math.max(...rows.map((r) => r.step.length));
  const total = rows.reduce((a, r) => ({ ms: a.ms + r.ms, connections: a.connections + r.connections, execs: a.execs + r.execs }), { ms: 0, connections: 0, execs: 0 });
  console.log(`host activities on the bed (${cold ? 'cold: pool emptied before each activity' : 'warm: the pool as a worker has it'}), one run:`);
  console.log(`${'activity'.padEnd(width)}  ${'wall ms'.padStart(8)}  ${'conns'.padStart(5)}  ${'execs'.padStart(5)}`);
  for (const r of [...rows, { step: 'total', ...total }]) console.log(`${r.step.padEnd(width)}  ${r.ms.toFixed(0).padStart(8)}  ${String(r.connections).padStart(5)}  ${String(r.execs).padStart(5)}`);
  if (json) console.log(`measure: ${JSON.stringify(rows.map((r) => ({ ...r, ms: Math.round(r.ms) })))}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
