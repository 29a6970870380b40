// The operator's path through the Temporal Web UI, in a real browser: Debian's chromium driven by
// playwright-core (headless, no browser download), against the dev server's UI, a real worker and
// a real bed. Find the cluster's operation by its search attribute, read what it waits for in the
// Current Details, approve it through the UI's signal dialog and see it go on; send the `approve`
// Update with nothing waiting and see the validator's refusal in the UI; abort a scale-out whose
// learner is catching up and see the learner rolled back. Screenshots go to
// $STEWARD_TEST_ARTIFACTS (default /tmp/etcd-steward-artifacts). Its own addresses and ports
// (127.23.0.x, 27253/28253), like the CLI suite.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { Bed } from '../testbed';
import { WriteLoad } from '../testbed/load';
import { pidOnceListening, startStack, type Stack, waitFor } from './helpers';

const TEMPORAL = { dir: '/tmp/etcd-steward-ui-temporal', port: 27253, uiPort: 28253 };
const CHROMIUM = process.env.STEWARD_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.STEWARD_TEST_ARTIFACTS ?? '/tmp/etcd-steward-artifacts';

describe('the Temporal Web UI, in a browser', { timeout: 600_000 }, () => {
  let stack: Stack;
  let bed: Bed;
  let browser: Browser;
  let page: Page;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: the set-up installs Debian's chromium (or set STEWARD_CHROMIUM)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    [stack, bed] = await Promise.all([startStack(TEMPORAL), Bed.up({ hosts: 5, members: 3, net: '127.23.0', dir: '/tmp/etcd-steward-ui-bed' })]);
    await stack.startWorker(bed);
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(30_000);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    await bed?.down();
  });

  const ui = () => stack.temporal.uiUrl;
  /** The page has a second, hidden copy of some controls (for narrow screens): the visible one. */
  const moreActions = () => page.getByRole('button', { name: 'More Actions' }).filter({ visible: true }).first();
  const specOf = (names: string[]) => ({ ...bed.spec, members: bed.hosts.filter((h) => names.includes(h.name)).map((h) => Bed.memberInput(h)) });

  /** Opens the operation's page from the workflow list filtered by the cluster's search attribute. */
  async function openFromList(cluster: string): Promise<void> {
    await page.goto(`${ui()}/namespaces/default/workflows?query=${encodeURIComponent(`EtcdCluster="${cluster}" AND ExecutionStatus="Running"`)}`);
    await page.getByRole('link', { name: `etcd-steward-${cluster}`, exact: true }).first().click();
    await moreActions().waitFor();
  }

  /** The page's text, with the frames' (the UI renders summaries and details as Markdown in sandboxed iframes). */
  async function pageText(): Promise<string> {
    const parts: string[] = [];
    for (const f of page.frames()) parts.push(await f.locator('body').innerText({ timeout: 5_000 }).catch(() => ''));
    return parts.join('\n');
  }

  /** The Current Details panel's text (User Metadata tab), once it shows `expected`. */
  async function currentDetails(expected: RegExp): Promise<string> {
    await page.getByText('User Metadata', { exact: true }).click();
    let text = '';
    await waitFor(`Current Details showing ${expected}`, async () => {
      await page.keyboard.press('r'); // the UI's "press R for freshness"
      text = await pageText();
      return expected.test(text);
    }, 30_000, 500);
    return text;
  }

  /** Opens "More Actions" → `item` and fills the dialog: the message by name, its JSON input; then Submit. */
  async function sendFromDialog(kind: 'signal' | 'update', name: string, input: unknown): Promise<void> {
    await moreActions().click();
    await page.getByTestId(`${kind}-button`).filter({ visible: true }).click();
    const visible = <T extends ReturnType<Page['locator']>>(l: T) => l.filter({ visible: true }).first();
    const dialog = visible(page.getByTestId(`${kind}-confirmation-modal`));
    await visible(dialog.getByTestId(`${kind}-select-button`)).click();
    await visible(dialog.getByRole('option').filter({ hasText: new RegExp(`^\\s*${name}\\b`) })).click();
    await visible(dialog.locator('[contenteditable="true"][role="textbox"]')).click();
    await page.keyboard.insertText(JSON.stringify(input));
    await page.keyboard.press('Tab'); // the editor hands its text to the form when it loses focus
    await visible(dialog.getByRole('button', { name: 'Submit' })).click();
  }

  it('finds the waiting scale-out by EtcdCluster, shows what the gate waits for, and an approve signal sent from the dialog lets it go on', async () => {
    await stack.terminateRunning('bed');
    const op = await stack.steward.startScaleOut({ spec: specOf(['etcd1', 'etcd2', 'etcd3']), add: [Bed.memberInput(bed.host('etcd4'))], policy: { approval: 'each-batch' } });
    await waitFor('the gate to wait for approval', async () => (await op.status()).waitingFor.some((w) => w.startsWith('approval of batch 1')));
    await openFromList('bed');
    const details = await currentDetails(/waiting for:.*approval of batch 1 \(etcd4\)/);
    assert.match(details, /scaleOut bed — gate — batch/);
    assert.match(details, /members: etcd1 \(voter\), etcd2 \(voter\), etcd3 \(voter\), etcd4 \(planned\)/);
    await page.screenshot({ path: join(ARTIFACTS, 'webui-waiting-for-approval.png') });
    assert.equal((await bed.observe()).voters, 3, 'nothing added before the approval');

    await sendFromDialog('signal', 'approve', { by: 'webui-test', comment: 'looks fine' });
    await page.screenshot({ path: join(ARTIFACTS, 'webui-approve-sent.png') });
    await waitFor('the approval to reach the workflow', async () => (await op.status()).events.some((e) => /approved by webui-test/.test(e.message)), 30_000, 250);
    const r = await op.result();
    assert.equal(r.outcome, 'completed');
    assert.deepEqual(r.added, ['etcd4']);
    assert.equal((await bed.observe()).voters, 4);
    const s = await op.status();
    assert.ok(s.events.some((e) => /approved by webui-test/.test(e.message)), `no approval by webui-test among the events:\n${s.events.map((e) => e.message).join('\n')}`);
  });

  it("an approve Update with nothing waiting: the UI shows the workflow's refusal, and nothing changes", async () => {
    await stack.terminateRunning('bed');
    const op = await stack.steward.startScaleOut({ spec: specOf(['etcd1', 'etcd2', 'etcd3', 'etcd4']), add: [Bed.memberInput(bed.host('etcd5'))], policy: { approval: 'never' } });
    await op.pause({ by: 'test', reason: 'held for the UI test' });
    await waitFor('the operation held at its gate', async () => (await op.status()).waitingFor.some((w) => /paused/.test(w)));
    await openFromList('bed');
    await sendFromDialog('update', 'approve', { by: 'webui-test' });
    let text = '';
    await waitFor("the validator's refusal on the page", async () => {
      text = await pageText();
      return /no batch is waiting for approval/i.test(text);
    }, 30_000, 500);
    await page.screenshot({ path: join(ARTIFACTS, 'webui-approve-rejected.png') });
    assert.equal((await op.status()).phase, 'gate', 'the refused approve moved the operation');
    await op.resume({ by: 'test' });
    assert.equal((await op.result()).outcome, 'completed');
  });

  it('abort from the signal dialog while the learner catches up: the learner is rolled back, and the UI shows the aborted result', async () => {
    await stack.terminateRunning('bed');
    // back to three members, with data to catch up on so the abort lands in catch-up
    const shrink = await stack.steward.startScaleIn({ spec: specOf(['etcd1', 'etcd2', 'etcd3', 'etcd4', 'etcd5']), remove: ['etcd4', 'etcd5'], policy: { retire: 'wipe' } });
    assert.equal((await shrink.result()).outcome, 'completed');
    const load = new WriteLoad({ endpoints: bed.endpoints, credentials: bed.etcdCredentials });
    await load.prefill(10);
    await load.stop();
    const op = await stack.steward.startScaleOut({ spec: specOf(['etcd1', 'etcd2', 'etcd3']), add: [Bed.memberInput(bed.host('etcd4'))] });
    // freeze the learner once it listens (before it has caught up), so the abort lands in catch-up
    const pid = await pidOnceListening(bed, 'etcd4');
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor('the catch-up step', async () => (await op.status()).phase === 'catch-up');
      await openFromList('bed');
      await currentDetails(/scaleOut bed — catch-up/);
      await sendFromDialog('signal', 'abort', { reason: 'changed our mind in the UI', by: 'webui-test' });
      await waitFor('the abort to be seen', async () => (await op.status()).abort !== null);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const r = await op.result();
    assert.equal(r.outcome, 'aborted');
    assert.deepEqual(r.rolledBack, ['etcd4']);
    assert.equal(r.abort?.by, 'webui-test');
    const o = await bed.observe();
    assert.equal(o.voters, 3);
    assert.equal(o.learners, 0);
    // the UI shows the result: the outcome and the member rolled back
    await page.goto(`${ui()}/namespaces/default/workflows/${op.workflowId}`);
    let text = '';
    await waitFor('the result on the workflow page', async () => {
      text = await pageText();
      return /"outcome": "aborted"/.test(text) && /"rolledBack": \[\s*"etcd4"\s*\]/.test(text);
    }, 30_000, 500);
    await page.screenshot({ path: join(ARTIFACTS, 'webui-aborted.png') });
  });
});
