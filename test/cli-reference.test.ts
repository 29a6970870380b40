// The CLI reference (docs/cli.md) is what the commands say about themselves: regenerated here
// and compared, so a command or option changed without `npm run docs:cli` fails the tests.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliReference } from '../scripts/cli-reference';

describe('CLI reference', () => {
  it('docs/cli.md matches the commands (run `npm run docs:cli` after changing one)', () => {
    const committed = readFileSync(join(__dirname, '..', 'docs', 'cli.md'), 'utf8');
    const now = cliReference();
    assert.ok(now.includes('## `etcd-steward plan scale-out`') && now.includes('--inventory <file>'), 'the reference misses commands');
    assert.equal(committed, now, 'docs/cli.md is out of date: run `npm run docs:cli`');
  });
});
