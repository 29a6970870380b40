/**
 * `npm run worker`: runs a worker until SIGINT/SIGTERM. Configuration comes from the
 * environment (see worker/config.ts and the README).
 */
import { NativeConnection } from '@temporalio/worker';
import { closeSshPool, sshPool, sshPoolStats } from '../activities/ssh';
import { loadSecrets, workerConfigFromEnv } from './config';
import { holdAround, parseFaultHold } from './fault-injection';
import { createWorker } from './index';
import { installWorkerRuntime } from './runtime';
import { startTracing, tracingWanted } from './tracing';

async function main(): Promise<void> {
  const config = workerConfigFromEnv();
  const deps = loadSecrets(config.files);
  const log = installWorkerRuntime({ ...(config.metricsAddress ? { metricsAddress: config.metricsAddress } : {}) });
  sshPool.setMaxConnections(config.sshMaxConnections);
  const tracing = tracingWanted() ? startTracing() : undefined;
  const connection = await NativeConnection.connect(config.temporal.options).catch((e: unknown) => {
    throw new Error(`cannot connect to Temporal at ${config.temporal.description}: ${(e as Error).message}`);
  });
  try {
    const hold = parseFaultHold(process.env.STEWARD_TEST_FAULT_HOLD);
    if (hold) log.warn(`TEST FIXTURE: fault injection on: the first ${hold.activity} holds ${hold.point} its work`);
    const worker = await createWorker({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.taskQueue,
      deps,
      around: holdAround(hold),
      limits: config.limits,
      ...(tracing ? { tracing: tracing.workerOptions } : {}),
      ...(config.workflowBundle ? { workflowBundle: { codePath: config.workflowBundle } } : {}),
    });
    const limits = Object.entries(config.limits).map(([k, v]) => `${k}=${v}`);
    log.info(
      `etcd-steward worker polling task queue "${config.taskQueue}" on ${config.temporal.description} (${limits.length ? limits.join(', ') : "the SDK's default limits"}; at most ${config.sshMaxConnections} SSH connections; ${config.metricsAddress ? `metrics on http://${config.metricsAddress}/metrics` : 'no metrics endpoint (STEWARD_METRICS_ADDRESS)'}; ${tracing ? 'tracing to OTLP' : 'no tracing (OTEL_TRACES_EXPORTER)'})`,
      { taskQueue: config.taskQueue, namespace: config.temporal.namespace, temporal: config.temporal.description, ...(config.metricsAddress ? { metrics: config.metricsAddress } : {}) },
    );
    await worker.run(); // the SDK shuts down gracefully on SIGINT/SIGTERM
  } finally {
    const s = sshPoolStats();
    log.info(
      `etcd-steward worker stopped; SSH: ${s.commands} commands, ${s.connections} connections opened, ${s.reused} commands on a reused one, ${s.queued} waited for a channel or connection, ${s.evicted} evicted at the pool's cap, ${s.dropped} dropped`,
      { ssh: { ...s } },
    );
    await closeSshPool(); // the activities' pooled SSH connections (every activity has ended)
    await tracing?.shutdown(); // the spans still buffered
    await connection.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
