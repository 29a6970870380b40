/**
 * Operation inputs (what a client asks for), validated with errors that name the field.
 * Durations may be given as strings ("10 minutes", "90s") or milliseconds; validated inputs
 * carry milliseconds, so workflows do no parsing.
 */
import { msToNumber } from '@temporalio/common/lib/time';
import { z } from 'zod';
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

export const scaleOutPolicySchema = z.strictObject({
  /** When the gate waits for an operator's `approve`: never, before every batch, or before the first only. */
  approval: z.enum(approvalPolicies, { error: `must be one of: ${approvalPolicies.join(', ')}` }).default('never'),
  /** (ms once validated) How long the gate may wait for the cluster to be healthy before the operation fails (nothing changed in that batch). */
  gateTimeout: duration('gateTimeout').default(10 * 60_000),
  /** How long a learner may take to catch up before it is rolled back. */
  catchUpTimeout: duration('catchUpTimeout').default(30 * 60_000),
  /** Deadline of each other step (cert, join, config-sync, start, promote) including its retries. */
  stepTimeout: duration('stepTimeout').default(5 * 60_000),
  /** A learner is promoted once its applied index is within this many entries of the leader's. */
  maxCatchUpLag: z.number().int().min(0).default(100),
  /** The gate wants the voters' applied indexes within this spread (converged). */
  maxIndexSpread: z.number().int().min(0).default(1000),
});
export type ScaleOutPolicy = z.output<typeof scaleOutPolicySchema>;
export type ScaleOutPolicyInput = z.input<typeof scaleOutPolicySchema>;

export interface ScaleOutInput {
  spec: ClusterSpec;
  add: Member[];
  policy: ScaleOutPolicy;
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
  const add = r.data.add.map(normalizeMember);
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
