/**
 * `npm run worker`: runs a worker until SIGINT/SIGTERM. Configuration comes from the
 * environment (see worker/config.ts and the README).
 */
import { NativeConnection } from '@temporalio/worker';
import { loadSecrets, workerConfigFromEnv } from './config';
import { createWorker } from './index';

async function main(): Promise<void> {
  const config = workerConfigFromEnv();
  const deps = loadSecrets(config.files);
  const connection = await NativeConnection.connect({ address: config.address });
  try {
    const worker = await createWorker({ connection, namespace: config.namespace, taskQueue: config.taskQueue, deps });
    process.stderr.write(`etcd-steward worker polling task queue "${config.taskQueue}" on ${config.address} (namespace ${config.namespace})\n`);
    await worker.run(); // the SDK shuts down gracefully on SIGINT/SIGTERM
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
