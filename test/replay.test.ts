// Replay safety: every recorded history of a real run (test/histories/*.json, recorded with
// `npm run record-histories`) must replay against the current workflow code. A change that would
// break workflows already running in production fails here; see README "Changing workflow code".
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../worker';

const DIR = join(__dirname, 'histories');

describe('replay of recorded histories', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

  it('there are recorded histories of real runs to replay', () => {
    for (const kind of ['scaleOut-3-to-5', 'approval', 'abort', 'compensation', 'gate-holds', 'crash-and-resume', 'rollingRestart-3-members', 'rollingRestart-updates', 'rollingRestart-refused-change', 'continue-as-new-run-1', 'continue-as-new-run-2', 'scaleIn-5-to-3-with-leader', 'scaleIn-dead-member', 'scaleIn-refused-quorum', 'scaleIn-abort-at-approval', 'replaceMember-dead-member-remove-first', 'replaceMember-healthy-add-first', 'replaceMember-refused-add-first', 'replaceMember-abort-at-approval']) {
      assert.ok(files.some((f) => f.includes(kind)), `no recorded history for "${kind}" in ${DIR}: ${files.join(', ')}`);
    }
  });

  it('each one replays against the current workflow code without nondeterminism', async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const histories = files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: JSON.parse(readFileSync(join(DIR, f), 'utf8')) as unknown }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH, replayName: 'recorded-histories' }, histories)) {
      replayed++;
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    assert.equal(replayed, files.length);
    assert.deepEqual(failures, []);
  });
});
