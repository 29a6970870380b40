/**
 * Operation inputs (what a client asks for), validated with errors that name the field.
 * Durations may be given as strings ("10 minutes", "90s") or milliseconds; validated inputs
 * carry milliseconds, so workflows do no parsing.
 */
import { msToNumber } from '@temporalio/common/lib/time';
import { z } from 'zod';
import type { RestartRecord } from '../workflows/rollingRestart';
import type { KernelCarry } from '../workflows/kernel';
import { type ClusterSpec, type Member, SpecError, formatIssues, memberSchema, normalizeMember, parseClusterSpec } from './cluster';

const duration = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    try {
      const n = typeof v === 'number' ? v : msToNumber(v as Parameters<typeof msToNumber>[0]);
      if (!Number.isFinite(n) || n <= 0) throw new Error('not positive');
      return n;
    } catch {
      ctx.addIssue({ code: 'custom', message: `${what} must be a positive duration such as "10 minutes", "90s" or a number of milliseconds, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
  });

export const approvalPolicies = ['never', 'each-batch', 'first-batch'] as const;
export type ApprovalPolicy = (typeof approvalPolicies)[number];

/** What every operation's quorum gate and steps are bounded by. */
const basePolicyShape = {
  /** When the gate waits for an operator's `approve`: never, before every batch, or before the first only. */
  approval: z.enum(approvalPolicies, { error: `must be one of: ${approvalPolicies.join(', ')}` }).default('never'),
  /** (ms once validated) How long the gate may wait for the cluster to be healthy before the operation fails (nothing changed in that batch). */
  gateTimeout: duration('gateTimeout').default(10 * 60_000),
  /** Deadline of each host or membership step (cert, join, config-sync, start, promote, restart) including its retries. */
  stepTimeout: duration('stepTimeout').default(5 * 60_000),
  /** The gate wants the voters' applied indexes within this spread (converged). */
  maxIndexSpread: z.number().int().min(0).default(1000),
  /**
   * At a gate, a run whose history has this many events continues as new (its progress carried
   * over), so a long wait with monitoring verdicts coming in never nears Temporal's history limits.
   */
  continueAsNewAfterEvents: z.number().int().min(100, 'must be at least 100').max(40_000, 'must be at most 40000 (Temporal refuses histories past 50000 events)').default(10_000),
};

/** What bounds a new member's join (scaleOut, replaceMember). */
const joinPolicyShape = {
  /** How long a learner may take to catch up before it is rolled back. */
  catchUpTimeout: duration('catchUpTimeout').default(30 * 60_000),
  /** A learner is promoted once its applied index is within this many entries of the leader's. */
  maxCatchUpLag: z.number().int().min(0).default(100),
};

export const scaleOutPolicySchema = z.strictObject({ ...basePolicyShape, ...joinPolicyShape });
export type ScaleOutPolicy = z.output<typeof scaleOutPolicySchema>;
export type ScaleOutPolicyInput = z.input<typeof scaleOutPolicySchema>;

export interface ScaleOutInput {
  spec: ClusterSpec;
  add: Member[];
  policy: ScaleOutPolicy;
  /** Set by the workflow itself when it continues as new: what the runs before did. */
  continued?: ScaleOutCarry;
}

/** A scale-out's progress, handed from one run to the next (workflows/kernel.ts KernelCarry). */
export interface ScaleOutCarry {
  kernel: KernelCarry;
  /** Members added (promoted) so far, in order. */
  added: string[];
  catchUpMs: Record<string, number>;
  /** New members whose certificate is in place. */
  certified: string[];
}

const scaleOutSchema = z.strictObject({
  spec: z.unknown(),
  add: z.array(memberSchema).min(1, 'must name at least one member to add'),
  policy: scaleOutPolicySchema.default(scaleOutPolicySchema.parse({})),
});

/**
 * Validates a scale-out request: the spec, the members to add, the policy, and that no new
 * member's name, peer URL or client URL is already used by the spec or by another new member.
 */
export function parseScaleOutInput(input: unknown): ScaleOutInput {
  const r = scaleOutSchema.safeParse(input);
  if (!r.success) throw new SpecError('scale-out request', formatIssues(r.error));
  const spec = parseClusterSpec(r.data.spec, 'scale-out request: spec');
  const add = r.data.add.map((m) => normalizeMember(m, spec.ssh));
  const issues: string[] = [];
  const taken = new Map<string, string>();
  const note = (key: string, owner: string, path: string) => {
    const prev = taken.get(key);
    if (prev) issues.push(`${path}: ${key} is already used by ${prev}`);
    else taken.set(key, owner);
  };
  spec.members.forEach((m, i) => {
    taken.set(`name "${m.name}"`, `spec.members[${i}] (${m.name})`);
    for (const u of [...m.peerURLs, ...m.clientURLs]) taken.set(`URL ${u}`, `spec.members[${i}] (${m.name})`);
  });
  add.forEach((m, i) => {
    note(`name "${m.name}"`, `add[${i}] (${m.name})`, `add[${i}].name`);
    m.peerURLs.forEach((u, j) => note(`URL ${u}`, `add[${i}] (${m.name})`, `add[${i}].peerURLs[${j}]`));
    m.clientURLs.forEach((u, j) => note(`URL ${u}`, `add[${i}] (${m.name})`, `add[${i}].clientURLs[${j}]`));
  });
  if (issues.length) throw new SpecError('scale-out request', issues);
  return { spec, add, policy: r.data.policy };
}

// ---- rollingRestart -----------------------------------------------------------------------

export const rollingRestartPolicySchema = z.strictObject({
  ...basePolicyShape,
  /**
   * At most this many members down at once. The batch before each step is
   * min(maxUnavailable, failureTolerance(voters) - members already unhealthy), from live health.
   */
  maxUnavailable: z.number().int().min(1, 'must be at least 1').default(1),
  /** How long a restarted member may take to answer and catch up with the leader (a 2 GB member reloads for minutes). */
  readyTimeout: duration('readyTimeout').default(15 * 60_000),
});
export type RollingRestartPolicy = z.output<typeof rollingRestartPolicySchema>;
export type RollingRestartPolicyInput = z.input<typeof rollingRestartPolicySchema>;

/**
 * Variables that identify a member or only matter when it bootstraps: a rolling restart must
 * not change them (a wrong ETCD_NAME or data dir would make the member a stranger to the cluster).
 */
export const RESTART_FORBIDDEN_VARS = [
  'ETCD_NAME',
  'ETCD_DATA_DIR',
  'ETCD_INITIAL_CLUSTER',
  'ETCD_INITIAL_CLUSTER_STATE',
  'ETCD_INITIAL_CLUSTER_TOKEN',
  'ETCD_INITIAL_ADVERTISE_PEER_URLS',
] as const;

const envName = z.string().regex(/^ETCD_[A-Z0-9_]+$/, 'must be an etcd environment variable name (ETCD_ followed by capitals, digits, "_")');
const envValue = z.string().refine((v) => !/[\n\r\0]/.test(v), 'must be a single line');

/** Env-file variables to set or unset on each member just before its restart; checked in the running process after. */
export const envChangeSchema = z
  .strictObject({
    set: z.record(envName, envValue).default({}),
    unset: z.array(envName).default([]),
  })
  .superRefine((c, ctx) => {
    for (const k of [...Object.keys(c.set), ...c.unset]) {
      if ((RESTART_FORBIDDEN_VARS as readonly string[]).includes(k)) {
        ctx.addIssue({ code: 'custom', path: [k], message: `${k} identifies the member or is read only at bootstrap; a rolling restart does not change it` });
      }
    }
    for (const k of c.unset) if (k in c.set) ctx.addIssue({ code: 'custom', path: ['unset'], message: `${k} is both set and unset` });
  });
export type EnvChange = z.output<typeof envChangeSchema>;

export interface RollingRestartInput {
  spec: ClusterSpec;
  /** Members to restart, by name (every member of the spec when the request named none). */
  members: string[];
  /** Why (shown in the status, the Web UI and the result). */
  reason: string;
  policy: RollingRestartPolicy;
  /** Applied to each member's env file while it is stopped; absent for a plain restart. */
  change?: EnvChange;
  /**
   * A rolling upgrade: the new etcd binary, already on each member's host at this path (`{name}`
   * is the member's name). While the member is stopped it is installed at layout.etcdBinary,
   * the one there kept beside it (`<etcdBinary>.steward-previous`) for the undo; the restarted
   * member must report the new binary's version.
   */
  binary?: string;
  /** Set by the workflow itself when it continues as new: what the runs before did. */
  continued?: RollingRestartCarry;
}

/** A rolling restart's progress, handed from one run to the next. */
export interface RollingRestartCarry {
  kernel: KernelCarry;
  restarted: RestartRecord[];
  leaderMoves: { from: string; to: string }[];
  largestBatch: number;
  /** The batch the next run starts at (0-based). */
  nextBatch: number;
}

const rollingRestartSchema = z.strictObject({
  spec: z.unknown(),
  members: z.array(z.string().min(1)).min(1, 'names no member: leave it out to restart every member').optional(),
  reason: z.string().trim().min(1, 'must say why the members are restarted (shown to operators)').max(500),
  policy: rollingRestartPolicySchema.default(rollingRestartPolicySchema.parse({})),
  change: envChangeSchema.optional(),
  binary: z
    .string()
    .startsWith('/', 'must be an absolute path on the members\' hosts (where the new etcd binary was put, e.g. /opt/etcd-v3.6.16/etcd)')
    .refine((v) => !/[\n\r\0]/.test(v), 'must be a single line')
    .optional(),
});

/** Validates a rolling-restart request: the spec, which members (default all, each named once and in the spec), the policy, the env change. */
export function parseRollingRestartInput(input: unknown): RollingRestartInput {
  const r = rollingRestartSchema.safeParse(input);
  if (!r.success) throw new SpecError('rolling-restart request', formatIssues(r.error));
  const spec = parseClusterSpec(r.data.spec, 'rolling-restart request: spec');
  const names = spec.members.map((m) => m.name);
  const members = r.data.members ?? names;
  const issues: string[] = [];
  members.forEach((n, i) => {
    if (!names.includes(n)) issues.push(`members[${i}]: "${n}" is not a member of cluster ${spec.name} (members: ${names.join(', ')})`);
    if (members.indexOf(n) !== i) issues.push(`members[${i}]: "${n}" is named twice`);
  });
  if (issues.length) throw new SpecError('rolling-restart request', issues);
  const change = r.data.change && (Object.keys(r.data.change.set).length || r.data.change.unset.length) ? r.data.change : undefined;
  return { spec, members, reason: r.data.reason, policy: r.data.policy, ...(change ? { change } : {}), ...(r.data.binary ? { binary: r.data.binary } : {}) };
}

// ---- scaleIn ------------------------------------------------------------------------------

export const retirePolicies = ['keep', 'wipe'] as const;
export type RetirePolicy = (typeof retirePolicies)[number];

/** What becomes of a removed member's host (scaleIn, replaceMember). */
const leavePolicyShape = {
  /**
   * What becomes of a removed member's data dir on its host: `keep` moves it aside as
   * `<dataDir>.removed-<time>` (with its env file, so the service cannot start it again), `wipe`
   * deletes it. Best effort: a host that cannot be reached is reported, not waited for.
   */
  retire: z.enum(retirePolicies, { error: `must be one of: ${retirePolicies.join(', ')}` }).default('keep'),
};

export const scaleInPolicySchema = z.strictObject({ ...basePolicyShape, ...leavePolicyShape });
export type ScaleInPolicy = z.output<typeof scaleInPolicySchema>;
export type ScaleInPolicyInput = z.input<typeof scaleInPolicySchema>;

export interface ScaleInInput {
  spec: ClusterSpec;
  /** Members to remove, by name, one per batch (the order is decided from live health: down members first, the leader last). */
  remove: string[];
  policy: ScaleInPolicy;
  /** Set by the workflow itself when it continues as new: what the runs before did. */
  continued?: ScaleInCarry;
}

/** What became of a removed member's host. */
export interface RetiredHost {
  member: string;
  /** Its service was stopped and its data dir dealt with per policy. */
  cleaned: boolean;
  /** Where its data dir went (`keep`), or that it was wiped; or why the host was not cleaned. */
  note: string;
}

/** A scale-in's progress, handed from one run to the next. */
export interface ScaleInCarry {
  kernel: KernelCarry;
  removed: string[];
  hosts: RetiredHost[];
  leaderMoves: { from: string; to: string }[];
  /** The batch the next run starts at (0-based). */
  nextBatch: number;
}

const scaleInSchema = z.strictObject({
  spec: z.unknown(),
  remove: z.array(z.string().min(1, 'must not be empty')).min(1, 'must name at least one member to remove'),
  policy: scaleInPolicySchema.default(scaleInPolicySchema.parse({})),
});

/**
 * Validates a scale-in request: the spec, the members to remove (each a member of the spec,
 * named once, and at least one member left), the policy. Whether the removal keeps a healthy
 * quorum depends on live health: preflight decides that.
 */
export function parseScaleInInput(input: unknown): ScaleInInput {
  const r = scaleInSchema.safeParse(input);
  if (!r.success) throw new SpecError('scale-in request', formatIssues(r.error));
  const spec = parseClusterSpec(r.data.spec, 'scale-in request: spec');
  const names = spec.members.map((m) => m.name);
  const remove = r.data.remove.map((n) => n.trim());
  const issues: string[] = [];
  remove.forEach((n, i) => {
    if (!names.includes(n)) issues.push(`remove[${i}]: "${n}" is not a member of cluster ${spec.name} (members: ${names.join(', ')})`);
    if (remove.indexOf(n) !== i) issues.push(`remove[${i}]: "${n}" is named twice`);
  });
  if (issues.length === 0 && names.every((n) => remove.includes(n))) {
    issues.push(`remove: names every member of cluster ${spec.name} (${names.join(', ')}): a cluster cannot remove its last member; keep at least one`);
  }
  if (issues.length) throw new SpecError('scale-in request', issues);
  return { spec, remove, policy: r.data.policy };
}

// ---- replaceMember ------------------------------------------------------------------------

export const replaceStrategies = ['auto', 'remove-first', 'add-first'] as const;
export type ReplaceStrategy = (typeof replaceStrategies)[number];

export const replaceMemberPolicySchema = z.strictObject({
  ...basePolicyShape,
  /**
   * `auto` (the default) decides from live health and the request: remove first when the old
   * member is down or the new one takes its name or peer URL (a rebuilt host), add first
   * otherwise (tolerance never drops during the swap). Either may be asked for; preflight
   * refuses one that cannot work (see common/replacePlan.ts).
   */
  strategy: z.enum(replaceStrategies, { error: `must be one of: ${replaceStrategies.join(', ')}` }).default('auto'),
  ...joinPolicyShape,
  ...leavePolicyShape,
});
export type ReplaceMemberPolicy = z.output<typeof replaceMemberPolicySchema>;
export type ReplaceMemberPolicyInput = z.input<typeof replaceMemberPolicySchema>;

export interface ReplaceMemberInput {
  spec: ClusterSpec;
  /** The member to replace, by name. */
  replace: string;
  /** The new member (its name may be the old one's, on a rebuilt host). */
  with: Member;
  policy: ReplaceMemberPolicy;
  /** Set by the workflow itself when it continues as new: what the runs before did. */
  continued?: ReplaceMemberCarry;
}

/** A replacement's progress, handed from one run to the next. */
export interface ReplaceMemberCarry {
  kernel: KernelCarry;
  /** The strategy preflight chose (kept for the rest of the operation). */
  strategy: Exclude<ReplaceStrategy, 'auto'>;
  removed: boolean;
  added: boolean;
  certified: boolean;
  hosts: RetiredHost[];
  leaderMoves: { from: string; to: string }[];
  catchUpMs: number | null;
}

const replaceMemberSchema = z.strictObject({
  spec: z.unknown(),
  replace: z.string().trim().min(1, 'must name the member to replace'),
  with: memberSchema,
  policy: replaceMemberPolicySchema.default(replaceMemberPolicySchema.parse({})),
});

/** The new member reuses the old one's name or peer URL (a rebuilt host): the old one must go first. */
export function replacesInPlace(old: Pick<Member, 'name' | 'peerURLs'>, neu: Pick<Member, 'name' | 'peerURLs'>): boolean {
  return old.name === neu.name || neu.peerURLs.some((u) => old.peerURLs.includes(u));
}

/**
 * Validates a replacement: the spec, the member to replace (a member of the spec), the new member
 * (its name, peer and client URLs not used by any other member; the old member's own may be
 * reused, which makes it a replacement in place), and the policy (add-first cannot replace in place).
 */
export function parseReplaceMemberInput(input: unknown): ReplaceMemberInput {
  const r = replaceMemberSchema.safeParse(input);
  if (!r.success) throw new SpecError('replace request', formatIssues(r.error));
  const spec = parseClusterSpec(r.data.spec, 'replace request: spec');
  const neu = normalizeMember(r.data.with, spec.ssh);
  const names = spec.members.map((m) => m.name);
  const old = spec.members.find((m) => m.name === r.data.replace);
  const issues: string[] = [];
  if (!old) issues.push(`replace: "${r.data.replace}" is not a member of cluster ${spec.name} (members: ${names.join(', ')})`);
  else {
    spec.members.forEach((m, i) => {
      if (m.name === old.name) return;
      if (m.name === neu.name) issues.push(`with.name: "${neu.name}" is already the name of spec.members[${i}]`);
      for (const u of [...neu.peerURLs, ...neu.clientURLs]) if ([...m.peerURLs, ...m.clientURLs].includes(u)) issues.push(`with: URL ${u} is already used by spec.members[${i}] (${m.name})`);
    });
    if (r.data.policy.strategy === 'add-first' && replacesInPlace(old, neu)) {
      issues.push(
        `policy.strategy: add-first needs the new member to have its own name and peer URL while the old one is still there, but ${neu.name} ${old.name === neu.name ? `takes ${old.name}'s name` : `takes ${old.name}'s peer URL`} (a rebuilt host): use remove-first or auto`,
      );
    }
  }
  if (issues.length) throw new SpecError('replace request', issues);
  return { spec, replace: old!.name, with: neu, policy: r.data.policy };
}
