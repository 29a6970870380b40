/**
 * Worker configuration, from the environment. The worker alone holds the secrets: the SSH
 * identity it logs in to hosts with and the etcd client certificate; they are read from files
 * and never written to workflow inputs, results or logs. The connection to Temporal is read as
 * the Temporal CLI reads it (TEMPORAL_ADDRESS, TEMPORAL_TLS_*, a profile: client/connection.ts).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatIssues } from '../spec/cluster';
import type { ActivityDeps } from '../activities';
import { type TemporalConnection, temporalConnection } from '../client/connection';

import { DEFAULT_TASK_QUEUE } from '../common/ids';
import { DEFAULT_SSH_MAX_CONNECTIONS } from '../activities/ssh-pool';

export { DEFAULT_TASK_QUEUE } from '../common/ids';

/**
 * An optional whole number from the environment (unset or empty: the SDK's default), at least
 * `min` (or exactly 0 when `zero` says what 0 means). The message says what the variable is for;
 * formatIssues puts its name in front.
 */
const limit = (what: string, min: number, zero?: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .refine((v) => v === undefined || (/^\d+$/.test(v) && (Number(v) >= min || (zero !== undefined && Number(v) === 0))), {
      error: (i) => `is "${String(i.input)}": must be a whole number ≥ ${min}${zero ? ` (or 0: ${zero})` : ''}, ${what}`,
    })
    .transform((v) => (v === undefined ? undefined : Number(v)));

/**
 * The worker's concurrency limits, each optional: unset means the Temporal TypeScript SDK's own
 * default (1.24: `maxConcurrentActivityTaskExecutions` 100, `maxConcurrentWorkflowTaskExecutions`
 * 40, `maxCachedWorkflows` max(10, ⌊(V8 heap limit in MiB − 200) × 600 / 1024⌋), about 2,300 with
 * Node's default heap limit of ~4 GiB on a 64-bit machine).
 */
export const WORKER_LIMIT_DEFAULTS = {
  maxConcurrentActivityTaskExecutions: 100,
  maxConcurrentWorkflowTaskExecutions: 40,
  maxCachedWorkflows: 'max(10, ⌊(V8 heap limit MiB − 200) × 600 / 1024⌋)',
} as const;

const schema = z.object({
  STEWARD_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  STEWARD_SSH_KEY: z.string({ error: 'is not set: the path of the private key the worker logs in to member hosts with' }).min(1),
  STEWARD_ETCD_CA: z.string({ error: "is not set: the path of the etcd cluster's CA certificate (ca.pem)" }).min(1),
  STEWARD_ETCD_CERT: z.string({ error: 'is not set: the path of an etcd client certificate (clientAuth) signed by that CA' }).min(1),
  STEWARD_ETCD_KEY: z.string({ error: "is not set: the path of that client certificate's private key" }).min(1),
  /** Optional: a workflow bundle made ahead of time with `npm run bundle`; without it the worker bundles workflows/ at start. */
  STEWARD_WORKFLOW_BUNDLE: z.string().min(1).optional(),
  /** Optional: activities running at once in this worker (maxConcurrentActivityTaskExecutions; SDK default 100). */
  STEWARD_MAX_CONCURRENT_ACTIVITIES: limit('the activities this worker runs at once (unset: 100)', 1),
  /** Optional: workflow tasks processed at once (maxConcurrentWorkflowTaskExecutions; SDK default 40, at most STEWARD_MAX_CACHED_WORKFLOWS). */
  STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: limit('the workflow tasks this worker processes at once (unset: 40)', 2),
  /** Optional: workflows kept in this worker's cache between tasks (maxCachedWorkflows; SDK default from the V8 heap size). */
  STEWARD_MAX_CACHED_WORKFLOWS: limit('the workflows this worker keeps cached between tasks (unset: from the heap size, ~2,300 with a 4 GiB heap)', 2, 'no cache'),
  /** Optional: where the worker serves Prometheus metrics (host:port, path /metrics); unset: none. */
  STEWARD_METRICS_ADDRESS: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .refine((v) => v === undefined || /^([^\s:[\]]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/.test(v), { error: (i) => `is "${String(i.input)}": must be host:port (e.g. 127.0.0.1:9464, or [::]:9464 for every address), where the worker serves /metrics` }),
  /** Optional: SSH connections this worker keeps open at once, all hosts together (unset: 256). */
  STEWARD_SSH_MAX_CONNECTIONS: limit(`the SSH connections this worker keeps open at once, all hosts together (unset: ${DEFAULT_SSH_MAX_CONNECTIONS}; give it at least the hosts of the clusters it operates at once)`, 1),
}).superRefine((c, ctx) => {
  // The SDK would lower the task limit to the cache size with only a log line; say it here instead.
  const tasks = c.STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS;
  const cached = c.STEWARD_MAX_CACHED_WORKFLOWS;
  if (tasks !== undefined && cached !== undefined && cached > 0 && tasks > cached) {
    ctx.addIssue({ code: 'custom', path: ['STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS'], message: `is ${tasks}: must not exceed STEWARD_MAX_CACHED_WORKFLOWS (${cached}) while the cache is on` });
  }
});

export interface WorkerConfig {
  /** How to reach Temporal: the Temporal environment and config profile (client/connection.ts). */
  temporal: TemporalConnection;
  taskQueue: string;
  files: { sshKey: string; etcdCa: string; etcdCert: string; etcdKey: string };
  workflowBundle?: string;
  /** Worker limits set in the environment; absent ones take the SDK's defaults (WORKER_LIMIT_DEFAULTS). */
  limits: WorkerLimits;
  /** The SSH pool's cap on open connections (STEWARD_SSH_MAX_CONNECTIONS, else DEFAULT_SSH_MAX_CONNECTIONS). */
  sshMaxConnections: number;
  /** Where to serve Prometheus metrics (STEWARD_METRICS_ADDRESS); none when unset. */
  metricsAddress?: string;
}

export interface WorkerLimits {
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  maxCachedWorkflows?: number;
}

export function workerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const r = schema.safeParse(env);
  if (!r.success) throw new Error(`worker configuration is not valid:\n${formatIssues(r.error).map((i) => `  - ${i}`).join('\n')}`);
  const c = r.data;
  return {
    temporal: temporalConnection({ env }),
    taskQueue: c.STEWARD_TASK_QUEUE,
    files: { sshKey: c.STEWARD_SSH_KEY, etcdCa: c.STEWARD_ETCD_CA, etcdCert: c.STEWARD_ETCD_CERT, etcdKey: c.STEWARD_ETCD_KEY },
    ...(c.STEWARD_WORKFLOW_BUNDLE ? { workflowBundle: c.STEWARD_WORKFLOW_BUNDLE } : {}),
    limits: {
      ...(c.STEWARD_MAX_CONCURRENT_ACTIVITIES !== undefined ? { maxConcurrentActivityTaskExecutions: c.STEWARD_MAX_CONCURRENT_ACTIVITIES } : {}),
      ...(c.STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS !== undefined ? { maxConcurrentWorkflowTaskExecutions: c.STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS } : {}),
      ...(c.STEWARD_MAX_CACHED_WORKFLOWS !== undefined ? { maxCachedWorkflows: c.STEWARD_MAX_CACHED_WORKFLOWS } : {}),
    },
    sshMaxConnections: c.STEWARD_SSH_MAX_CONNECTIONS ?? DEFAULT_SSH_MAX_CONNECTIONS,
    ...(c.STEWARD_METRICS_ADDRESS ? { metricsAddress: c.STEWARD_METRICS_ADDRESS } : {}),
  };
}

/** Reads the secret files; an unreadable one is named in the error. */
export function loadSecrets(files: WorkerConfig['files']): ActivityDeps {
  const read = (what: string, p: string) => {
    try {
      return readFileSync(p);
    } catch (e) {
      throw new Error(`${what} (${p}) cannot be read: ${(e as Error).message}`);
    }
  };
  return {
    ssh: { privateKey: read('STEWARD_SSH_KEY', files.sshKey) },
    etcd: { caCert: read('STEWARD_ETCD_CA', files.etcdCa), cert: read('STEWARD_ETCD_CERT', files.etcdCert), key: read('STEWARD_ETCD_KEY', files.etcdKey) },
  };
}
