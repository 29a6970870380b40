// Integration: a real worker runs a real workflow + activity on a real Temporal dev server
// against the real bed, and the dev server's Web UI answers (operators approve operations there).
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { StewardClient } from '../client';
import { Bed } from '../testbed';
import { startTemporal, type TemporalServer } from '../testbed/temporal';
import { createWorker } from '../worker';
import { DEFAULT_TASK_QUEUE } from '../worker/config';

Runtime.install({ logger: new DefaultLogger('WARN') });

describe('Temporal: worker, workflow and Web UI', () => {
  let bed: Bed;
  let temporal: TemporalServer;
  let connection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let steward: StewardClient;

  before(async () => {
    [bed, temporal] = await Promise.all([Bed.up({ hosts: 3, members: 3 }), startTemporal({ dir: join(tmpdir(), 'etcd-steward-temporal') })]);
    connection = await NativeConnection.connect({ address: temporal.address });
    worker = await createWorker({ connection, namespace: temporal.namespace, taskQueue: DEFAULT_TASK_QUEUE, deps: { ssh: bed.sshIdentity, etcd: bed.etcdCredentials } });
    running = worker.run();
    steward = await StewardClient.connect({ address: temporal.address });
  });
  after(async () => {
    await steward?.close();
    if (worker) {
      worker.shutdown();
      await running;
    }
    await connection?.close();
    await temporal?.stop();
    await bed?.down();
  });

  it('the clusterHealth workflow reports the real cluster through its activity', async () => {
    const report = await steward.clusterHealth(bed.spec);
    assert.equal(report.cluster, 'bed');
    assert.equal(report.healthy, true, report.problems.join('; '));
    assert.equal(report.voters, 3);
    assert.equal(report.learners, 0);
    assert.equal(report.quorum, 2);
    assert.equal(report.failureTolerance, 1);
    assert.ok(report.leader && ['etcd1', 'etcd2', 'etcd3'].includes(report.leader));
    assert.deepEqual(report.members.map((m) => m.name).sort(), ['etcd1', 'etcd2', 'etcd3']);
    assert.ok(report.members.every((m) => m.answers && /^3\.\d+\.\d+$/.test(m.version ?? '')), JSON.stringify(report.members));
  });

  it('the report tells an unhealthy cluster apart: a stopped member lowers the tolerance to 0', async () => {
    const h = bed.host('etcd2');
    const { sshRun } = await import('../activities/ssh');
    await sshRun(h.ssh, bed.sshIdentity, bed.spec.service.stop.replaceAll('{name}', 'etcd2'));
    try {
      const report = await steward.clusterHealth(bed.spec);
      assert.equal(report.healthy, false);
      assert.equal(report.failureTolerance, 0);
      assert.ok(report.problems.some((p) => p.includes('etcd2 does not answer')), report.problems.join('; '));
      assert.equal(report.members.find((m) => m.name === 'etcd2')?.answers, false);
    } finally {
      await sshRun(h.ssh, bed.sshIdentity, bed.spec.service.start.replaceAll('{name}', 'etcd2'));
      await bed.waitHealthy(30_000);
    }
  });

  it("the Web UI answers on its port with the UI's page and lists the workflows", async () => {
    const page = await fetch(`${temporal.uiUrl}/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<!doctype html>/i);
    assert.match(html, /_app\/immutable\/entry\/start/, "the Temporal UI's SvelteKit entry point");
    const settings = (await (await fetch(`${temporal.uiUrl}/api/v1/settings`)).json()) as { Version?: string };
    assert.match(settings.Version ?? '', /^\d+\.\d+\.\d+/);
    const list = (await (await fetch(`${temporal.uiUrl}/api/v1/namespaces/default/workflows?query=${encodeURIComponent('WorkflowType="clusterHealth"')}`)).json()) as {
      executions?: { type?: { name?: string } }[];
    };
    assert.ok((list.executions ?? []).some((e) => e.type?.name === 'clusterHealth'), `the UI's API lists the clusterHealth runs: ${JSON.stringify(list).slice(0, 300)}`);
  });
});
