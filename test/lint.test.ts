// The lint rules that keep workflow code deterministic (eslint.config.mjs) really bite: snippets
// linted as if they were files in workflows/ or common/, with the project's own config.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ESLint } from 'eslint';

// The probe files do not exist on disk, so the TypeScript project service (typed linting) must be
// allowed to give them a default project (with tsconfig.json's compiler options).
const PROBES = ['workflows/__probe.ts', 'common/__probe.ts'];

let eslint: ESLint;

/** Rule ids of the errors in `code` linted as `file` (a fatal parse error counts as rule "fatal"). */
async function errors(code: string, file = 'workflows/__probe.ts'): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: file });
  assert.ok(result);
  return result.messages.filter((m) => m.severity === 2).map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

const IMPORTS = '@typescript-eslint/no-restricted-imports';

describe('lint rules for deterministic workflow code', () => {
  before(() => {
    eslint = new ESLint({
      cwd: join(__dirname, '..'),
      overrideConfig: { files: PROBES, languageOptions: { parserOptions: { projectService: { allowDefaultProject: PROBES } } } },
    });
  });

  it('forbids Node built-ins, with or without node:', async () => {
    assert.deepEqual(await errors(`import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import { execFile } from 'child_process';\nexport const e = execFile;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import { readFile } from 'fs/promises';\nexport const r = readFile;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n`, 'common/__probe.ts'), [IMPORTS]);
  });

  it('forbids value imports from activities/ and spec/, allows `import type`', async () => {
    assert.deepEqual(await errors(`import { createActivities } from '../activities';\nexport const c = createActivities;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import { parseClusterSpec } from '../spec/cluster';\nexport const p = parseClusterSpec;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import type { Activities } from '../activities';\nexport type A = Activities;\n`), []);
    assert.deepEqual(await errors(`import { type ClusterObservation } from '../activities/etcd';\nexport type O = ClusterObservation;\n`), []);
    assert.deepEqual(await errors(`import type { ClusterSpec } from '../spec/cluster';\nexport type S = ClusterSpec;\n`), []);
  });

  it('allows value imports from common/ and @temporalio/workflow; forbids I/O packages', async () => {
    assert.deepEqual(await errors(`import { quorum } from '../common/quorum';\nimport { sleep } from '@temporalio/workflow';\nexport const q = [quorum, sleep];\n`), []);
    assert.deepEqual(await errors(`import { Connection } from '@temporalio/client';\nexport const c = Connection;\n`), [IMPORTS]);
    assert.deepEqual(await errors(`import { z } from 'zod';\nexport const s = z.string();\n`), [IMPORTS]);
  });

  it('forbids Node-only globals but not Date, Math.random or setTimeout', async () => {
    assert.deepEqual(await errors(`export const e = process.env.HOME;\n`), ['no-restricted-globals']);
    assert.deepEqual(await errors(`export const b = Buffer.from('x');\n`), ['no-restricted-globals']);
    assert.deepEqual(await errors(`export const t = [Date.now(), Math.random(), setTimeout];\n`), []);
  });

  it('forbids floating promises', async () => {
    const f = `async function f(): Promise<void> {}\n`;
    assert.deepEqual(await errors(`${f}f();\n`), ['@typescript-eslint/no-floating-promises']);
    assert.deepEqual(await errors(`${f}export async function g(): Promise<void> {\n  await f();\n}\n`), []);
  });
});
