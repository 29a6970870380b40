/**
 * The typed client for automation services: start operations, signal and query them.
 *
 *   const steward = await StewardClient.connect({ address: '127.0.0.1:7233' });
 *   const report = await steward.clusterHealth(loadClusterSpec('cluster.yaml'));
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { type ClusterSpec, parseClusterSpec } from '../spec/cluster';
import type { HealthReport } from '../workflows/health';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

export type { HealthReport } from '../workflows/health';
export { loadClusterSpec, parseClusterSpec, SpecError } from '../spec/cluster';

export interface StewardClientOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
}

export class StewardClient {
  private constructor(
    readonly temporal: Client,
    private readonly connection: Connection,
    readonly taskQueue: string,
  ) {}

  static async connect(opts: StewardClientOptions = {}): Promise<StewardClient> {
    const connection = await Connection.connect({ address: opts.address ?? '127.0.0.1:7233' });
    return new StewardClient(new Client({ connection, namespace: opts.namespace ?? 'default' }), connection, opts.taskQueue ?? DEFAULT_TASK_QUEUE);
  }

  /** Runs the read-only health workflow and returns its report. */
  async clusterHealth(spec: ClusterSpec): Promise<HealthReport> {
    const valid = parseClusterSpec(spec);
    return this.temporal.workflow.execute('clusterHealth', {
      taskQueue: this.taskQueue,
      workflowId: `etcd-steward-health-${valid.name}-${randomUUID()}`,
      args: [valid],
      workflowExecutionTimeout: '2 minutes',
    });
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
