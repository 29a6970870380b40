// Unit: the worker's configuration from the environment, its optional concurrency limits above all.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { workerConfigFromEnv } from '../worker/config';

const SECRETS = { STEWARD_SSH_KEY: '/k', STEWARD_ETCD_CA: '/ca.pem', STEWARD_ETCD_CERT: '/c.pem', STEWARD_ETCD_KEY: '/c-key.pem' };

function rejects(env: Record<string, string>, pattern: RegExp): void {
  assert.throws(() => workerConfigFromEnv({ ...SECRETS, ...env }), (e: unknown) => {
    assert.match((e as Error).message, pattern);
    return true;
  });
}

describe('worker configuration from the environment', () => {
  it('leaves every limit to the SDK when none is set (or one is set empty)', () => {
    assert.deepEqual(workerConfigFromEnv(SECRETS).limits, {});
    assert.deepEqual(workerConfigFromEnv({ ...SECRETS, STEWARD_MAX_CONCURRENT_ACTIVITIES: '', STEWARD_MAX_CACHED_WORKFLOWS: ' ' }).limits, {});
  });

  it('maps each limit to its worker option', () => {
    const c = workerConfigFromEnv({ ...SECRETS, STEWARD_MAX_CONCURRENT_ACTIVITIES: '20', STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: '8', STEWARD_MAX_CACHED_WORKFLOWS: '200' });
    assert.deepEqual(c.limits, { maxConcurrentActivityTaskExecutions: 20, maxConcurrentWorkflowTaskExecutions: 8, maxCachedWorkflows: 200 });
    assert.deepEqual(workerConfigFromEnv({ ...SECRETS, STEWARD_MAX_CACHED_WORKFLOWS: '0', STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: '50' }).limits, {
      maxConcurrentWorkflowTaskExecutions: 50,
      maxCachedWorkflows: 0,
    });
  });

  it('refuses a limit that is not a whole number in range, naming the variable and the value', () => {
    rejects({ STEWARD_MAX_CONCURRENT_ACTIVITIES: 'lots' }, /STEWARD_MAX_CONCURRENT_ACTIVITIES: is "lots": must be a whole number ≥ 1/);
    rejects({ STEWARD_MAX_CONCURRENT_ACTIVITIES: '0' }, /STEWARD_MAX_CONCURRENT_ACTIVITIES: is "0"/);
    rejects({ STEWARD_MAX_CONCURRENT_ACTIVITIES: '-3' }, /STEWARD_MAX_CONCURRENT_ACTIVITIES: is "-3"/);
    rejects({ STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: '1.5' }, /STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: is "1.5": must be a whole number ≥ 2/);
    rejects({ STEWARD_MAX_CACHED_WORKFLOWS: '1' }, /STEWARD_MAX_CACHED_WORKFLOWS: is "1": must be a whole number ≥ 2 \(or 0: no cache\)/);
  });

  it('sizes the SSH pool from STEWARD_SSH_MAX_CONNECTIONS (unset: 256) and refuses a cap below 1', () => {
    assert.equal(workerConfigFromEnv(SECRETS).sshMaxConnections, 256);
    assert.equal(workerConfigFromEnv({ ...SECRETS, STEWARD_SSH_MAX_CONNECTIONS: '500' }).sshMaxConnections, 500);
    rejects({ STEWARD_SSH_MAX_CONNECTIONS: '0' }, /STEWARD_SSH_MAX_CONNECTIONS: is "0": must be a whole number ≥ 1, the SSH connections this worker keeps open at once/);
  });

  it('refuses more concurrent workflow tasks than cached workflows (the SDK would lower it quietly)', () => {
    rejects({ STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: '50', STEWARD_MAX_CACHED_WORKFLOWS: '10' }, /STEWARD_MAX_CONCURRENT_WORKFLOW_TASKS: is 50: must not exceed STEWARD_MAX_CACHED_WORKFLOWS \(10\)/);
  });

  it('names every missing secret', () => {
    assert.throws(() => workerConfigFromEnv({}), /STEWARD_SSH_KEY: is not set[\s\S]*STEWARD_ETCD_KEY: is not set/);
  });
});
