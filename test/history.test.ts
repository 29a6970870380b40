// Unit tests of testbed/history.ts, which the bench's "where the time goes" rests on: activity
// spans, attempts, decoded inputs and workflow tasks read from a recorded scale-out history.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { historyTimes, unionMs } from '../testbed/history';

const history = JSON.parse(readFileSync(join(__dirname, 'histories', 'scaleOut-3-to-5.json'), 'utf8')) as unknown;

describe('historyTimes', () => {
  const h = historyTimes(history);

  const memberOf = (a: { input: unknown[] }) => {
    const i = a.input[0] as { member?: { name?: string }; joining?: string } | undefined;
    return i?.member?.name ?? i?.joining;
  };

  it('reads every activity, closed after it started after it was scheduled, within the workflow', () => {
    assert.equal(h.activities[0]?.type, 'preflightScaleOut');
    for (const a of h.activities) {
      assert.equal(a.outcome, 'completed');
      assert.ok(a.started !== null && a.closed !== null && a.scheduled <= a.started && a.started <= a.closed, `${a.type}: ${a.scheduled} ${a.started} ${a.closed}`);
      assert.ok(a.scheduled >= h.workflowStarted && a.closed <= h.workflowClosed!);
    }
  });

  it('decodes the inputs: the steps about each new member, in order', () => {
    for (const m of ['etcd4', 'etcd5']) {
      assert.deepEqual(
        h.activities.filter((a) => memberOf(a) === m).map((a) => a.type),
        ['issueCert', 'addLearner', 'syncConfig', 'startMember', 'awaitCatchUp', 'promoteLearner'],
      );
    }
  });

  it('an activity retried says which attempt finished and why the one before failed', () => {
    for (const a of h.activities) {
      assert.ok(a.attempt >= 1);
      if (a.attempt > 1) assert.ok(a.lastFailure, `${a.type} took ${a.attempt} attempts but no last failure was read`);
    }
  });

  it('reads the workflow tasks', () => {
    assert.ok(h.workflowTasks.length >= h.activities.length);
    for (const t of h.workflowTasks) assert.ok(t.completed !== null && t.completed >= t.scheduled);
  });
});

describe('unionMs', () => {
  it('counts overlapping intervals once and ignores empty ones', () => {
    assert.equal(unionMs([[0, 10], [5, 15], [20, 25], [30, 30]]), 20);
    assert.equal(unionMs([]), 0);
  });
});
