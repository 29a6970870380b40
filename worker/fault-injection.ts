/**
 * TEST FIXTURE — fault injection for the crash tests (test/faults/). Never set in production.
 *
 * STEWARD_TEST_FAULT_HOLD="<activityType>:<before|after>:<markerFile>" makes the first run of that
 * activity in this worker process stop at a point and stay there (heartbeating) so a test can
 * SIGKILL the worker exactly there:
 *   before — the activity has started but done nothing yet;
 *   after  — the activity has done its work but not reported it (the case idempotency is for).
 * On reaching the point it writes `markerFile`. A worker started without the variable runs
 * every activity normally.
 */
import { writeFileSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import type { ActivityWrapper } from '../activities';

export interface FaultHold {
  activity: string;
  point: 'before' | 'after';
  markerFile: string;
}

export function parseFaultHold(value: string | undefined): FaultHold | undefined {
  if (!value) return undefined;
  const m = /^([A-Za-z]+):(before|after):(\/.+)$/.exec(value);
  if (!m) throw new Error(`STEWARD_TEST_FAULT_HOLD="${value}" must look like "<activityType>:<before|after>:</absolute/marker/file>"`);
  return { activity: m[1]!, point: m[2] as 'before' | 'after', markerFile: m[3]! };
}

/** Wraps one activity so that its first run holds at the configured point. */
export function holdAround(hold: FaultHold | undefined): ActivityWrapper {
  let used = false;
  return (name, f) => {
    if (!hold || name !== hold.activity) return f;
    return (async (...args: Parameters<typeof f>) => {
      const stop = async () => {
        if (used) return;
        used = true;
        writeFileSync(hold.markerFile, `${name} ${hold.point} ${process.pid}\n`);
        await Context.current().sleep(600_000); // until the test kills this worker
      };
      if (hold.point === 'before') await stop();
      const result = await f(...args);
      if (hold.point === 'after') await stop();
      return result;
    }) as typeof f;
  };
}
