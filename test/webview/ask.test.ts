// The "Ask both models" page in headless Chromium, under the extension's CSP, in Light+ and
// Dark+, fed a real answer of the tiny VLM and a pruned copy (answers that differ): the form
// asks with what the user chose, Cancel is offered while asking, both answers and every step's
// top-k and KL are shown as the engine computed them, hovering a token switches the step, and
// nothing outside the page is fetched. The calibration picker never shows an answer.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { Browser } from 'playwright-core';
import { calibrationImages } from '../../src/host/askImages';
import type { AskResult } from '../../src/protocol/engineApi';
import { AskFixture, makeAskFixture } from './askFixture';
import { CHROMIUM, Harness, launchChromium, openPanel, pngDataUri, REPO, startServer } from './harness';

const pct = (p: number) => (p >= 0.001 ? `${(100 * p).toFixed(1)} %` : null);

test('calibration images carry the question, never the answer', () => {
  const file = path.join(REPO, 'data', 'tiny-vqa', 'calib.json');
  const recs = JSON.parse(fs.readFileSync(file, 'utf8')) as { image: string; conversations: { from: string; value: string }[] }[];
  const imgs = calibrationImages(file, 30);
  assert.equal(imgs.length, 30);
  imgs.forEach((img, i) => {
    const r = recs.find((x) => path.resolve(path.dirname(file), x.image) === img.path)!;
    const q = r.conversations[0].value.replace('<image>\n', '');
    assert.equal(img.question, q);
    assert.equal(img.label, `${r.image} — ${q}`, `item ${i}: the label is the image and the question only`);
    assert.ok(fs.existsSync(img.path));
  });
});

describe('ask page in Chromium', { skip: !fs.existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, () => {
  let server: Harness;
  let browser: Browser;
  let fx: AskFixture;
  before(async () => {
    [server, browser, fx] = await Promise.all([startServer(), launchChromium(), makeAskFixture()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  for (const theme of ['light', 'dark'] as const) {
    test(`asks with the user's choices, offers cancel, and shows both answers step by step (${theme})`, async () => {
      const r: AskResult = fx.result;
      assert.notEqual(r.original.text, r.pruned.text, 'the fixture item is one where the answers differ');
      const p = await openPanel(browser, server.origin, 'ask', theme, { width: 1024, height: 700 });
      const page = p.page;
      await p.send(fx.setup);
      await page.waitForSelector('#ask-question');
      // The first image is previewed on request.
      await page.waitForFunction((img) => (window as any).__harness.messages.some((m: any) => m.type === 'askPreview' && m.path === img), fx.image);
      await p.send({ type: 'askImage', path: fx.image, dataUri: pngDataUri(fx.image) });
      await page.waitForSelector('.ask-preview img');
      // A calibration image offers its question (never its answer) for the question box.
      const calib = fx.setup.images[1];
      await page.evaluate((v) => {
        const dd = document.getElementById('ask-image') as any;
        dd.value = v;
        dd.dispatchEvent(new Event('change'));
      }, calib.path);
      await page.waitForSelector('#ask-use-calib');
      assert.equal(await page.textContent('#ask-use-calib'), calib.question);
      await page.click('#ask-use-calib');
      assert.equal(await page.inputValue('#ask-question'), calib.question);
      // Back to the fixture's image and question; Enter asks.
      await page.evaluate((v) => {
        const dd = document.getElementById('ask-image') as any;
        dd.value = v;
        dd.dispatchEvent(new Event('change'));
      }, fx.image);
      await page.fill('#ask-question', fx.question);
      await page.fill('#ask-top-k', '4');
      await page.dispatchEvent('#ask-top-k', 'change');
      await page.press('#ask-question', 'Enter');
      await page.waitForFunction(() => (window as any).__harness.messages.some((m: any) => m.type === 'ask'));
      const sent = (await p.messages()).find((m) => m.type === 'ask');
      assert.deepEqual(sent, { type: 'ask', image: fx.image, question: fx.question, maxNewTokens: 24, topK: 4 });
      assert.equal(await page.getAttribute('#ask-run', 'disabled'), '');
      assert.equal(await page.getAttribute('#ask-cancel', 'disabled'), null);
      await page.click('#ask-cancel');
      await page.waitForFunction(() => (window as any).__harness.messages.some((m: any) => m.type === 'askCancel'));
      await p.send({ type: 'askFailed', message: 'cancelled', cancelled: true });
      await page.waitForFunction(() => document.body.dataset.failures === '1');
      assert.equal(await page.textContent('#ask-status'), 'Cancelled.');
      assert.equal(await page.getAttribute('#ask-run', 'disabled'), null);
      // A failure is shown as its one line.
      await p.send({ type: 'askFailed', message: 'cannot read image /x/y.png: unsupported image format' });
      await page.waitForFunction(() => document.body.dataset.failures === '2');
      assert.equal(await page.textContent('#ask-status.ask-error'), 'cannot read image /x/y.png: unsupported image format');

      await p.send({ type: 'askAnswer', result: r });
      await page.waitForFunction(() => document.body.dataset.answers === '1');
      assert.equal(await page.textContent('#ask-original-text'), r.original.text.trim());
      assert.equal(await page.textContent('#ask-pruned-text'), r.pruned.text.trim());
      assert.equal(await page.locator('.ask-chip[data-side="original"]').count(), r.original.steps.length);
      assert.equal(await page.locator('.ask-chip[data-side="pruned"]').count(), r.pruned.steps.length);
      assert.match((await page.textContent('#ask-kl-first'))!, new RegExp(`^${String(Number(r.kl.first.toPrecision(3))).replace('.', '\\.')}`));
      assert.equal(await page.textContent('#ask-same'), 'no');
      assert.equal(await page.textContent('#ask-asked'), `Asked about eval_0258.png: “${fx.question}”`);
      // Every step of either answer: its top-k as the engine gave it, the other column in step.
      const tables = async () =>
        page.$$eval('#ask-detail table', (ts) => ts.map((t) => ({ caption: t.querySelector('caption')!.textContent, rows: Array.from(t.querySelectorAll('tbody tr')).map((tr) => Array.from(tr.querySelectorAll('td')).slice(0, 2).map((td) => td.textContent)) })));
      for (const side of ['original', 'pruned'] as const) {
        for (let i = 0; i < r[side].steps.length; i++) {
          await page.hover(`.ask-chip[data-side="${side}"][data-step="${i}"]`);
          await page.waitForSelector(`.ask-chip.current[data-side="${side}"][data-step="${i}"]`);
          const [left, right] = await tables();
          const shownTop = side === 'original' ? left : right;
          const want = r[side].steps[i].top;
          assert.equal(shownTop.rows.length, want.length);
          shownTop.rows.forEach(([, p], k) => {
            if (pct(want[k].p)) assert.equal(p, pct(want[k].p), `${side} step ${i + 1} row ${k}`);
          });
          if (side === 'original') {
            // The pruned column shows the pruned model on the original's context, with the step's KL.
            assert.match(right.caption!, i === 0 ? /on the same prompt/ : /after the original's tokens/);
            right.rows.forEach(([, p], k) => pct(r.prunedAlongOriginal[i][k].p) && assert.equal(p, pct(r.prunedAlongOriginal[i][k].p)));
            assert.match((await page.textContent('#ask-kl-step'))!, new RegExp(`at step ${i + 1}: `));
          }
        }
      }
      // A reload brings the answer back from the webview state.
      await page.reload();
      await page.waitForSelector('#ask-pruned-text');
      assert.equal(await page.textContent('#ask-pruned-text'), r.pruned.text.trim());
      const problems = await p.problems();
      assert.deepEqual(problems, [], 'no CSP violation or page error');
      assert.ok(p.requests.every((u) => u.startsWith(server.origin) || u.startsWith('data:')), `only the harness origin: ${p.requests.filter((u) => !u.startsWith(server.origin)).join(', ')}`);
      await page.close();
    });
  }
});
