/**
 * Runs the project's activities outside a worker, as a worker would (heartbeats and cancellation
 * through the SDK's MockActivityEnvironment), waiting out BENIGN failures ("unhealthy cluster" for
 * 5 s after a start, a learner not yet in sync) as the workflows' retry policies do. For the
 * idempotency tests and the bench's Kubespray-style procedures.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Activities } from '../activities';

export type ActivityRunner = <K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>) => Promise<Awaited<ReturnType<Activities[K]>>>;

export function activityRunner(acts: () => Activities, env: MockActivityEnvironment = new MockActivityEnvironment(), waitOutMs = 30_000): ActivityRunner {
  return async function run<K extends keyof Activities>(name: K, ...args: Parameters<Activities[K]>): Promise<Awaited<ReturnType<Activities[K]>>> {
    const deadline = Date.now() + waitOutMs;
    for (;;) {
      try {
        return (await (env.run as (f: unknown, ...a: unknown[]) => Promise<unknown>)(acts()[name], ...args)) as Awaited<ReturnType<Activities[K]>>;
      } catch (e) {
        if (!(e instanceof ApplicationFailure && e.category === 'BENIGN') || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  };
}
