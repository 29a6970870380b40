// `npm run lint`. About correctness, not style: no formatting rules (and no prettier).
//
// 1. Everywhere (TypeScript, typed linting): promises must be awaited or handled
//    (no-floating-promises, no-misused-promises, await-thenable), on top of a modest recommended set.
// 2. workflows/** and common/** must stay deterministic and sandbox-safe: Temporal replays workflow
//    code, and bundles it into a V8 isolate without Node. So no Node built-ins, no I/O packages, no
//    value imports of activities/, spec/ (it reads files) or the worker/client/testbed/scripts side,
//    and no Node-only globals. The sandbox does make Date, Math.random and setTimeout deterministic,
//    so those stay allowed. common/ (pure code that workflows and activities share) follows the same
//    rules, so that workflows may import it as values.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

const WHY = 'workflows/ and common/ must be deterministic and run in the Temporal workflow sandbox';
const noNodeApis = `${WHY}: no Node APIs — do I/O in an activity.`;

const ioPackages = [
  'etcd3',
  'ssh2',
  '@temporalio/worker',
  '@temporalio/client',
  '@temporalio/activity',
  '@temporalio/testing',
  'cockatiel',
  'yaml',
  'commander',
  'tsx',
];
const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
// A package or any of its subpaths: 'yaml', '@temporalio/worker/lib/x'.
const packageRegex = (names) => `^(${names.map(escapeRegex).join('|')})(/|$)`;
// A relative path through one of the given directories: '../activities', '../../activities/etcd', './activities'.
const dirRegex = (dirs) => `^\\.\\.?(/.*)?/(${dirs.join('|')})(/|$)`;
// Every Node built-in with the node: prefix, or bare (fs, fs/promises, child_process, ...).
const nodeBuiltins = [...new Set(builtinModules.filter((m) => !m.startsWith('_')).map((m) => m.replace(/^node:/, '').split('/')[0]))];

/** no-restricted-imports patterns shared by workflows/** and common/**. */
const deterministicImportPatterns = [
  { regex: `^node:|${packageRegex(nodeBuiltins)}`, message: noNodeApis },
  {
    regex: dirRegex(['activities']),
    allowTypeImports: true,
    message: `${WHY}: activities do I/O and are called through proxyActivities — use \`import type\` for their types.`,
  },
  {
    regex: dirRegex(['spec']),
    allowTypeImports: true,
    message: `${WHY}: spec/ reads files and uses node:fs/node:net — use \`import type\`, or move the pure part to common/.`,
  },
  {
    regex: dirRegex(['worker', 'client', 'testbed', 'scripts', 'test']),
    message: `${WHY}: worker/, client/, testbed/, scripts/ and test/ run outside the workflow sandbox and do I/O.`,
  },
  {
    regex: packageRegex(ioPackages),
    message: `${WHY}: this package does I/O or needs Node — use it from an activity, the worker or the client.`,
  },
  {
    regex: packageRegex(['zod']),
    allowTypeImports: true,
    message: `${WHY}: validate input outside the workflow (client or activity); workflows and common/ may import zod's types only.`,
  },
];

const restrictedGlobals = {
  checkGlobalObject: true, // globalThis.process too
  globals: [
    ...['process', 'Buffer', 'require', 'module', 'exports', '__dirname', '__filename', 'setImmediate', 'clearImmediate'].map(
      (name) => ({ name, message: noNodeApis }),
    ),
    { name: 'fetch', message: `${WHY}: no network I/O — do it in an activity.` },
    { name: 'crypto', message: `${WHY}: use uuid4() from @temporalio/workflow for ids; do cryptography in an activity.` },
    ...['WeakRef', 'FinalizationRegistry'].map((name) => ({
      name,
      message: `${WHY}: garbage collection timing is not deterministic.`,
    })),
  ],
};

export default defineConfig([
  globalIgnores(['**/node_modules/', 'dist/', '.bed/', 'secrets/', 'test/histories/', 'test/fixtures/', 'docker/']),

  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // bin/: the CommonJS launchers package.json names (they load tsx, then the TypeScript).
    files: ['bin/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { process: 'readonly', console: 'readonly', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      // Typed linting (the rules about promises need types), with tsconfig.json's files and options.
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/describe() return promises that the runner itself tracks.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
      '@typescript-eslint/await-thenable': 'error',
      // Off: an error re-thrown with a better message must not carry `cause` here. Temporal
      // serializes the cause chain into the failure, and common/errors.ts innermostMessage() shows
      // the deepest message, so a cause would replace "cannot read the member list from …: x" with "x".
      'preserve-caught-error': 'off',
      // Unused names: `_`-prefixed ones are deliberate; a caught error may go unused.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
    },
  },

  {
    files: ['workflows/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: deterministicImportPatterns }],
      'no-restricted-globals': ['error', restrictedGlobals],
      'no-restricted-syntax': [
        'error',
        { selector: 'ImportExpression', message: `${WHY}: no dynamic import() — import statically so the bundler sees it.` },
      ],
    },
  },
  {
    // common/ is also loaded by activities, the worker and the client, outside the sandbox, where
    // @temporalio/workflow's functions throw: take ApplicationFailure & co. from @temporalio/common.
    // And it must not pull workflow code (which imports @temporalio/workflow) into those processes.
    files: ['common/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            ...deterministicImportPatterns,
            {
              regex: packageRegex(['@temporalio/workflow']),
              allowTypeImports: true,
              message:
                "common/ is shared with activities and the client, where @temporalio/workflow's functions throw (no workflow context): import from @temporalio/common, or `import type`.",
            },
            {
              regex: dirRegex(['workflows']),
              allowTypeImports: true,
              message: 'common/ is shared with activities and the client: do not pull workflow code into it — move the pure part to common/.',
            },
          ],
        },
      ],
    },
  },
]);
