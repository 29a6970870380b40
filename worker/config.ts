/**
 * Worker configuration, from the environment. The worker alone holds the secrets: the SSH
 * identity it logs in to hosts with and the etcd client certificate; they are read from files
 * and never written to workflow inputs, results or logs.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatIssues } from '../spec/cluster';
import type { ActivityDeps } from '../activities';

import { DEFAULT_TASK_QUEUE } from '../common/ids';

export { DEFAULT_TASK_QUEUE } from '../common/ids';

const schema = z.object({
  STEWARD_TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port').default('127.0.0.1:7233'),
  STEWARD_NAMESPACE: z.string().min(1).default('default'),
  STEWARD_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  STEWARD_SSH_KEY: z.string({ error: 'is not set: the path of the private key the worker logs in to member hosts with' }).min(1),
  STEWARD_ETCD_CA: z.string({ error: "is not set: the path of the etcd cluster's CA certificate (ca.pem)" }).min(1),
  STEWARD_ETCD_CERT: z.string({ error: 'is not set: the path of an etcd client certificate (clientAuth) signed by that CA' }).min(1),
  STEWARD_ETCD_KEY: z.string({ error: "is not set: the path of that client certificate's private key" }).min(1),
  /** Optional: a workflow bundle made ahead of time with `npm run bundle`; without it the worker bundles workflows/ at start. */
  STEWARD_WORKFLOW_BUNDLE: z.string().min(1).optional(),
});

export interface WorkerConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  files: { sshKey: string; etcdCa: string; etcdCert: string; etcdKey: string };
  workflowBundle?: string;
}

export function workerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const r = schema.safeParse(env);
  if (!r.success) throw new Error(`worker configuration is not valid:\n${formatIssues(r.error).map((i) => `  - ${i}`).join('\n')}`);
  const c = r.data;
  return {
    address: c.STEWARD_TEMPORAL_ADDRESS,
    namespace: c.STEWARD_NAMESPACE,
    taskQueue: c.STEWARD_TASK_QUEUE,
    files: { sshKey: c.STEWARD_SSH_KEY, etcdCa: c.STEWARD_ETCD_CA, etcdCert: c.STEWARD_ETCD_CERT, etcdKey: c.STEWARD_ETCD_KEY },
    ...(c.STEWARD_WORKFLOW_BUNDLE ? { workflowBundle: c.STEWARD_WORKFLOW_BUNDLE } : {}),
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
