// Unit tests of the write load's bookkeeping (pure logic, with a fake client): the figures every
// demo and bench line rests on must not flatter. A write past its deadline is failed however the
// client retried it; an outage at the start or the end of a window counts; a load that stopped
// itself says so.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LoadClient, WriteLoad } from '../testbed/load';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Answers each write after `delay(n)` ms (n = write number), failing it when `fail(n)`. */
function fake(delay: (n: number) => number, fail: (n: number) => boolean = () => false): LoadClient & { writes: number } {
  const c = {
    writes: 0,
    put: async () => {
      const n = c.writes++;
      await sleep(delay(n));
      if (fail(n)) throw new Error('etcdserver: request timed out');
    },
    close: () => undefined,
  };
  return c;
}

const base = { endpoints: [], credentials: { caCert: Buffer.alloc(0), cert: Buffer.alloc(0), key: Buffer.alloc(0) } };

describe('WriteLoad', () => {
  it('a write that succeeds after its deadline (the client retried it) counts as failed, and says why', async () => {
    const client = fake((n) => (n === 3 ? 400 : 1));
    const load = new WriteLoad({ ...base, client, rate: 100, timeoutMs: 200 });
    load.start();
    await sleep(300);
    const r = await load.stop();
    assert.ok(client.writes >= 20, `only ${client.writes} writes issued`);
    assert.equal(r.failed, 1);
    assert.equal(r.late, 1);
    assert.equal(r.ok, client.writes - 1);
    assert.match(r.errors.join(), /succeeded only after 4\d\d ms, past its 200 ms deadline/);
    assert.ok(r.maxMs < 200, `a late write's latency must not count as a success's: max ${r.maxMs}`);
  });

  it('failed writes are counted with their error', async () => {
    const load = new WriteLoad({ ...base, client: fake(() => 1, (n) => n % 2 === 0), rate: 100 });
    load.start();
    await sleep(200);
    const r = await load.stop();
    assert.ok(r.failed > 0 && r.ok > 0);
    assert.ok(Math.abs(r.failed - r.ok) <= 1, `${r.failed} failed vs ${r.ok} ok`);
    assert.deepEqual(r.errors, ['etcdserver: request timed out']);
  });

  it('an outage at the start and at the end of a window counts toward its longest gap', async () => {
    // every write fails from the start: the gap is the whole window, not 0
    const down = new WriteLoad({ ...base, client: fake(() => 1, () => true), rate: 100 });
    down.start();
    await sleep(300);
    const r = await down.stop();
    assert.equal(r.ok, 0);
    assert.ok(r.longestGapMs >= 280, `gap ${r.longestGapMs} ms for a 300 ms outage from the start`);

    // writes fine, then a window whose last 250 ms fail
    let failing = false;
    const load = new WriteLoad({ ...base, client: fake(() => 1, () => failing), rate: 100 });
    load.start();
    await sleep(100);
    const w = load.window();
    await sleep(150);
    failing = true;
    await sleep(250);
    const inWindow = await w.close();
    await load.stop();
    assert.ok(inWindow.ok > 5 && inWindow.failed > 5);
    assert.ok(inWindow.longestGapMs >= 230, `gap ${inWindow.longestGapMs} ms for an outage at the end of the window`);
  });

  it('a window counts the writes issued while it was open, including those that fail after it closed', async () => {
    const client = fake((n) => (n === 10 ? 150 : 1), (n) => n === 10);
    const load = new WriteLoad({ ...base, client, rate: 100 });
    load.start();
    await sleep(80);
    const w = load.window();
    await waitUntil(() => client.writes > 10);
    const r = await w.close(); // write 10 is still in flight: close waits for it
    await load.stop();
    assert.equal(r.failed, 1);
  });

  it('keeps its rate when its process is held up: the writes that fell due meanwhile are issued, not skipped', async () => {
    const client = fake(() => 1);
    const load = new WriteLoad({ ...base, client, rate: 100 });
    load.start();
    await sleep(100);
    const until = Date.now() + 400;
    while (Date.now() < until) {
      /* the event loop held up, as on a CPU-starved machine: no timer fires */
    }
    await sleep(100);
    const r = await load.stop();
    const expected = (100 * r.durationMs) / 1000;
    assert.ok(r.ok + r.failed >= expected * 0.9, `${r.ok + r.failed} writes issued in ${r.durationMs} ms at 100/s (${expected.toFixed(0)} due)`);
    assert.ok(r.ok + r.failed <= expected + 1, `${r.ok + r.failed} writes issued in ${r.durationMs} ms: more than were due`);
  });

  it('a load that hits maxDurationMs stops itself and says so; one stopped by its caller does not', async () => {
    const self = new WriteLoad({ ...base, client: fake(() => 1), rate: 100, maxDurationMs: 100 });
    self.start();
    await sleep(250);
    const r = await self.stop();
    assert.equal(r.stoppedItself, true);
    assert.ok(r.durationMs < 200, `ran ${r.durationMs} ms`);
    const caller = new WriteLoad({ ...base, client: fake(() => 1), rate: 100, maxDurationMs: 10_000 });
    caller.start();
    await sleep(50);
    assert.equal((await caller.stop()).stoppedItself, false);
  });
});

async function waitUntil(f: () => boolean): Promise<void> {
  while (!f()) await sleep(5);
}
