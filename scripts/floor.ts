/**
 * The floor case of `npm run bench`: the same scale-out as etcd-steward's scaleOut workflow —
 * for each new member, certificate → learner add → env files → start → catch-up → promote —
 * done by a straight-line script with no Temporal, no preflight, no gates and no retries beyond
 * waiting out etcd's own refusals. It is what the operation costs when the plumbing costs
 * (almost) nothing, so `steward ÷ floor` says how much of the steward's time is its own.
 *
 * - SSH: ONE connection per host, opened at the start and kept open for the whole run; every
 *   command is an exec channel on it. It is the worker's own pool code (activities/ssh-pool.ts)
 *   in an instance of the floor's own, so the host key is checked against the spec's pin exactly
 *   as the activities check it, and the connection and command counts are the floor's.
 * - Certificates as the activities make them (activities/certs.ts): key and CSR on the new host
 *   (the key never leaves it), signed on the CA host, certificate and ca.pem written on the new host.
 * - Env files as the activities render them (activities/envfile.ts, carriedSettings): existing
 *   members get ETCD_INITIAL_CLUSTER rewritten in place (read once at the start: this script is
 *   the only writer), the new member gets a whole file rendered from an existing member's;
 *   all hosts of one config-sync written in parallel, one exec each.
 * - etcd: one client for membership calls (no client-side retry), one per member for Status.
 *   Catch-up: the learner's applied index within `maxCatchUpLag` of the leader's on two samples
 *   in a row (the workflow's criterion), sampled every `pollMs`. "unhealthy cluster" on the add
 *   and "not in sync" on the promote are waited out every `pollMs`: that time is etcd's.
 *
 * It ends in the state the workflow ends in: every new member a voter, every env file listing
 * the final membership, no existing member restarted. Usable on its own:
 * `floorScaleOut({ spec, add, ssh, etcd })`.
 */
import type { Etcd3 } from 'etcd3';
import { atomicWriteScript, keyAndCsrScript, memberSans, signCsrScript } from '../activities/certs';
import { type EtcdCredentials, etcdClient } from '../activities/etcd';
import { initialClusterValue, memberEnv, parseEnvFile, renderEnvFile, setEnvVar } from '../activities/envfile';
import { carriedSettings } from '../activities/host';
import { type SshIdentity, SshPool, type SshTarget, runOn, shq } from '../activities/ssh';
import { type ClusterSpec, type Member, expand, findMember, memberPaths } from '../spec/cluster';
import { sleep } from '../testbed/procs';

export const FLOOR_STEPS = ['connect', 'cert', 'join', 'config-sync', 'start', 'catch-up', 'promote'] as const;
export type FloorStep = (typeof FLOOR_STEPS)[number];

export interface FloorInput {
  /** The running cluster (its members are the voters at the start). */
  spec: ClusterSpec;
  /** The members to add, in order. */
  add: Member[];
  ssh: SshIdentity;
  etcd: EtcdCredentials;
  /** The workflow's default: 100. */
  maxCatchUpLag?: number;
  /** Sampling interval of catch-up and of waiting out etcd's refusals; default 100 ms. */
  pollMs?: number;
  /** Limit on one member's catch-up; default 30 minutes (the workflow's default catchUpTimeout). */
  catchUpLimitMs?: number;
  log?: (line: string) => void;
}

export interface FloorMember {
  name: string;
  /** From the start command's return to the second in-sync sample. */
  catchUpMs: number;
  /** Time etcd refused the learner add ("unhealthy cluster": a voter connected for less than 5 s). */
  addRefusedMs: number;
  /** Time etcd refused the promotion ("not in sync with leader"). */
  promoteRefusedMs: number;
  /** When each step began and ended for this member, ms since epoch. */
  at: Record<Exclude<FloorStep, 'connect'>, [number, number]>;
}

export interface FloorReport {
  totalMs: number;
  /** Time per step, summed over members ('connect': opening the SSH connections and reading the env files and ca.pem once). */
  steps: Record<FloorStep, number>;
  members: FloorMember[];
  /** SSH connections opened (one per host) and commands run over them. */
  sshConnections: number;
  sshExecs: number;
}


const errText = (e: unknown) => (e instanceof Error ? e.message.split('\n')[0]! : String(e));

/** Calls `f` every `pollMs` while it throws an error matching `waitOut`, at most `limitMs`; returns its value and the time waited. */
async function waitingOut<T>(f: () => Promise<T>, waitOut: RegExp, pollMs: number, limitMs: number, what: string): Promise<{ value: T; waitedMs: number }> {
  const t0 = Date.now();
  for (;;) {
    const t = Date.now();
    try {
      return { value: await f(), waitedMs: t - t0 };
    } catch (e) {
      if (!waitOut.test(errText(e))) throw e;
      if (Date.now() - t0 > limitMs) throw new Error(`${what}: etcd still refuses after ${limitMs} ms: ${errText(e)}`);
    }
    await sleep(pollMs);
  }
}

const tsIndex = (s: { raftAppliedIndex?: string; raftIndex: string }) => BigInt(s.raftAppliedIndex ?? s.raftIndex);

/** The floor scale-out (see the file comment). Every wait is bounded; connections and clients are closed on every path. */
export async function floorScaleOut(input: FloorInput): Promise<FloorReport> {
  const { spec, add, ssh, etcd } = input;
  const pollMs = input.pollMs ?? 100;
  const maxLag = input.maxCatchUpLag ?? 100;
  const catchUpLimitMs = input.catchUpLimitMs ?? 30 * 60_000;
  const log = input.log ?? (() => {});
  const steps = Object.fromEntries(FLOOR_STEPS.map((s) => [s, 0])) as Record<FloorStep, number>;
  /** Per new member, when each of its steps ran. */
  const atOf = new Map(add.map((m) => [m.name, {} as FloorMember['at']]));
  /** Times `f` as `step` (its wall time counts once however many members it serves), and as that member's step if it names one. */
  const timed = async <T>(step: FloorStep, f: () => Promise<T>, member?: string): Promise<T> => {
    const t = Date.now();
    try {
      return await f();
    } finally {
      const now = Date.now();
      steps[step] += now - t;
      if (member !== undefined && step !== 'connect') atOf.get(member)![step] = [t, now];
    }
  };

  const t0 = Date.now();
  // The floor's own SSH pool: one connection per host, verified against its pin when it is made
  // (the same code the worker uses), kept open for the whole run; its counts are the floor's own.
  const pool = new SshPool({ idleMs: 60 * 60_000 });
  const target = (m: Member): SshTarget => ({ name: m.name, host: m.ssh.host, port: m.ssh.port, user: m.ssh.user, hostKey: m.ssh.hostKey });
  const conn = (m: Member) => ({
    run: (command: string, opts: { stdin?: string; timeoutMs?: number } = {}) => runOn(pool, target(m), ssh, command, opts),
  });
  const statusClients = new Map<string, Etcd3>();
  const membership = etcdClient(
    spec.members.flatMap((m) => m.clientURLs),
    etcd,
    { retry: false, timeoutMs: 10_000 },
  );
  const statusOf = (url: string) => {
    let c = statusClients.get(url);
    if (!c) statusClients.set(url, (c = etcdClient([url], etcd, { retry: false, timeoutMs: 2_000 })));
    return c.maintenance.status();
  };
  try {
    const voters: Member[] = [...spec.members];
    const caMember = findMember(spec, spec.ca.host);
    const caDir = expand(spec.ca.dir, caMember.name);
    /** Each member's env file text as this run last wrote it (or read it at the start). */
    const envText = new Map<string, string>();
    const ids = new Map<string, string>(); // member id -> client URL
    let caPem = '';

    await timed('connect', async () => {
      // every host's connection opened (and its key checked) up front, as the floor's first step
      await Promise.all([...voters, ...add].map((m) => conn(m).run('true')));
      const [, ca] = await Promise.all([
        Promise.all(voters.map(async (m) => envText.set(m.name, await conn(m).run(`cat ${shq(memberPaths(spec, m).envFile)}`)))),
        conn(caMember).run(`cat ${shq(`${caDir}/ca.pem`)}`),
        membership.cluster.memberList({ linearizable: true }).then((r) => {
          for (const x of r.members ?? []) if (x.clientURLs?.[0]) ids.set(String(x.ID), x.clientURLs[0]);
        }),
      ]);
      caPem = ca;
    });
    log(`floor: ${pool.stats().connections} SSH connections open in ${steps.connect} ms`);

    // Every new member's certificate at once (as the steward does when no batch needs its own approval).
    await timed('cert', () =>
      Promise.all(
        add.map(async (m) => {
          const t = Date.now();
          const p = memberPaths(spec, m);
          const csr = await conn(m).run(keyAndCsrScript(p.key, `etcd-${m.name}`));
          const cert = await conn(caMember).run(signCsrScript(caDir, memberSans(m)), { stdin: csr });
          await conn(m).run(`${atomicWriteScript(p.cert, '0644')}\nprintf '%s' ${shq(caPem)} | (\n${atomicWriteScript(p.caCert, '0644')}\n)`, { stdin: cert });
          atOf.get(m.name)!.cert = [t, Date.now()];
        }),
      ),
    );

    const members: FloorMember[] = [];
    for (const m of add) {
      const at = atOf.get(m.name)!;
      const host = conn(m);
      const step = <T>(name: FloorStep, f: () => Promise<T>) => timed(name, f, m.name);

      const added = await step('join', () =>
        waitingOut(() => membership.cluster.memberAdd({ peerURLs: m.peerURLs, isLearner: true }), /unhealthy cluster/i, pollMs, 60_000, `adding ${m.name} as a learner`),
      );
      const id = String(added.value.member!.ID);
      ids.set(id, m.clientURLs[0]!);

      await step('config-sync', async () => {
        const target = [...voters, m];
        const value = initialClusterValue(target);
        const template = voters[0]!;
        const carried = carriedSettings(parseEnvFile(envText.get(template.name)!), template, m);
        envText.set(m.name, renderEnvFile(memberEnv(spec, m, target, 'existing', carried)));
        await Promise.all(
          target.map(async (x) => {
            const cur = envText.get(x.name)!;
            const next = x.name === m.name ? cur : setEnvVar(cur, 'ETCD_INITIAL_CLUSTER', value);
            await conn(x).run(atomicWriteScript(memberPaths(spec, x).envFile, '0640'), { stdin: next });
            envText.set(x.name, next);
          }),
        );
      });

      await step('start', () => host.run(`${expand(spec.service.start, m.name)} && ${expand(spec.service.isActive, m.name)}`, { timeoutMs: 90_000 }));

      const catchUpMs = await step('catch-up', async () => {
        const c0 = Date.now();
        let good = 0;
        let last = '';
        while (good < 2) {
          if (Date.now() - c0 > catchUpLimitMs) throw new Error(`${m.name} did not catch up within ${catchUpLimitMs} ms (${last})`);
          const s0 = Date.now();
          try {
            const mine = await statusOf(m.clientURLs[0]!);
            const leaderURL = ids.get(String(mine.leader));
            if (!leaderURL || String(mine.leader) === id) throw new Error('sees no leader yet');
            const lag = tsIndex(await statusOf(leaderURL)) - tsIndex(mine);
            last = `lag ${lag}`;
            good = lag <= BigInt(maxLag) ? good + 1 : 0;
          } catch (e) {
            last = errText(e);
            good = 0;
          }
          if (good < 2) await sleep(Math.max(0, pollMs - (Date.now() - s0)));
        }
        return Date.now() - c0;
      });

      const promoted = await step('promote', () =>
        waitingOut(() => membership.cluster.memberPromote({ ID: id }), /in sync with leader/i, pollMs, 60_000, `promoting ${m.name}`),
      );
      voters.push(m);
      members.push({ name: m.name, catchUpMs, addRefusedMs: added.waitedMs, promoteRefusedMs: promoted.waitedMs, at });
      log(`floor: ${m.name} added (caught up in ${catchUpMs} ms)`);
    }
    return {
      totalMs: Date.now() - t0,
      steps,
      members,
      sshConnections: pool.stats().connections,
      sshExecs: pool.stats().execs,
    };
  } finally {
    await pool.closeAll();
    for (const c of statusClients.values()) c.close();
    membership.close();
  }
}
