/**
 * `npm run bundle [-- OUT]`: bundles workflows/ once, ahead of time (default dist/workflow-bundle.js).
 * A worker given STEWARD_WORKFLOW_BUNDLE=<that file> starts without bundling, in well under a
 * second, and runs exactly the workflow code that was bundled (what a deployment artifact wants).
 * The bundle must be made with the same @temporalio/worker version the worker runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../worker';

export async function writeWorkflowBundle(out: string): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} } });
  const file = resolve(out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, code);
  return file;
}

if (require.main === module) {
  writeWorkflowBundle(process.argv[2] ?? 'dist/workflow-bundle.js').then(
    (f) => console.log(`workflow bundle written: ${f}`),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
}
