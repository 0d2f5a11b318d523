// The prune form in headless Chromium under the extension's CSP, its checks answered by the
// engine's real checkRun: the preview shows the decoder, family and calibration samples read
// from the files; invalid input (a value out of the option table's range, a calibration file
// with a missing image) disables Run and says why; valid input posts the run with the options
// chosen. Needs dist/ (npm run build) and Chromium.

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser } from 'playwright-core';
import { FormHost, serveForm } from './formHost';
import { CHROMIUM, Harness, launchChromium, openPanel, PanelPage, REPO, startServer } from './harness';

const MODEL = path.join(REPO, 'models', 'tiny-llava');
const CALIB = path.join(REPO, 'data', 'tiny-vqa', 'calib.json');

const runDisabled = (p: PanelPage) => p.page.evaluate(() => document.getElementById('run')!.hasAttribute('disabled'));
const reasons = (p: PanelPage) => p.page.evaluate(() => Array.from(document.querySelectorAll('#reasons li:not(.title)')).map((li) => li.textContent ?? ''));

/** Waits until the form has been answered for its current fields: no "Checking" reason left. */
async function settled(p: PanelPage): Promise<void> {
  await p.page.waitForFunction(() => {
    const items = Array.from(document.querySelectorAll('#reasons li')).map((li) => li.textContent ?? '');
    return !items.some((t) => t.startsWith('Checking'));
  });
}

async function type(p: PanelPage, field: string, text: string): Promise<void> {
  await p.page.locator(`#field-${field} input`).fill(text);
  await settled(p);
}

describe('the prune form in Chromium', () => {
  let server: Harness;
  let browser: Browser;
  let tmp: string;
  let p: PanelPage;
  let host: FormHost;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM}`);
    assert.ok(fs.existsSync(path.join(REPO, 'dist', 'forms.js')), 'dist/forms.js is missing: run `npm run build` first');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'form-test-'));
    [server, browser] = await Promise.all([startServer(), launchChromium()]);
    p = await openPanel(browser, server.origin, 'pruneForm', 'dark', { width: 1100, height: 1000 });
    host = await serveForm(p, 'pruneForm', { model: MODEL, calib: CALIB, out: path.join(tmp, 'out'), target: 'ratio', targetValue: '0.3', method: 'svl', scp: 'true', compensation: 'auto', samples: '' });
  });
  after(async () => {
    host?.stop();
    await browser?.close();
    await server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('valid defaults: the decoder, family and calibration preview are shown and Run is enabled', async () => {
    await settled(p);
    const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    const records = JSON.parse(fs.readFileSync(CALIB, 'utf8')) as { image: string; conversations: { value: string }[] }[];
    assert.deepEqual(await reasons(p), []);
    assert.equal(await runDisabled(p), false);
    const facts = await p.page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#model-facts dd')).map((d) => [(d as HTMLElement).dataset.fact, d.textContent])));
    assert.equal(facts['decoder pruned'], `${path.join('onnx', 'decoder_model_merged.onnx')} (fp32)`);
    assert.equal(facts.family, `${config.model_type} (LlavaForConditionalGeneration)`);
    assert.equal(facts.layers, String(config.text_config.num_hidden_layers));
    assert.equal(await p.page.textContent('#calib-count'), `${records.length} usable samples (JSON); the first 4:`);
    const thumbs = await p.page.evaluate(() => Array.from(document.querySelectorAll('.thumb')).map((f) => ({ src: f.querySelector('img')?.getAttribute('src'), caption: f.querySelector('figcaption')?.textContent })));
    assert.deepEqual(
      thumbs,
      records.slice(0, 4).map((r) => ({ src: `data:image/png;base64,${fs.readFileSync(path.resolve(path.dirname(CALIB), r.image)).toString('base64')}`, caption: r.conversations[0].value.replace('<image>\n', '') })),
    );
    const L = config.text_config.num_hidden_layers as number;
    assert.equal(await p.page.textContent('#target-hint'), `removes ${Math.round(0.3 * L)} of ${L} layers`);
    assert.equal(await p.page.textContent('#out-facts'), `writes ${path.join(tmp, 'out')}`);
  });

  test('invalid input disables Run and says why', async () => {
    await type(p, 'targetValue', '0.9');
    assert.equal(await runDisabled(p), true);
    assert.deepEqual(await reasons(p), ['Share of layers removed: must be a number in (0, 0.5], got "0.9"']);
    assert.equal(await p.page.textContent('#err-targetValue'), 'must be a number in (0, 0.5], got "0.9"');
    // A click on the disabled button posts nothing.
    await p.page.click('#run', { force: true });
    assert.equal((await p.messages()).filter((m) => m.type === 'run').length, 0);

    await type(p, 'targetValue', '0.25');
    const bad = path.join(tmp, 'bad.jsonl');
    const rec = JSON.parse(fs.readFileSync(CALIB, 'utf8'))[0];
    fs.writeFileSync(bad, [JSON.stringify({ ...rec, image: path.resolve(path.dirname(CALIB), rec.image) }), JSON.stringify({ ...rec, id: 'gone', image: 'gone.png' })].join('\n') + '\n');
    await type(p, 'calib', bad);
    const missing = `bad.jsonl line 2: image gone.png not found (looked in ${path.join(tmp, 'gone.png')})`;
    assert.equal(await runDisabled(p), true);
    assert.deepEqual(await reasons(p), [`Calibration data: ${missing}`]);
    assert.deepEqual(await p.page.evaluate(() => Array.from(document.querySelectorAll('#calib-problems li')).map((li) => li.textContent)), [missing]);
    assert.equal(await p.page.textContent('#calib-count'), '1 usable sample of 2 records (JSONL); the first 1:');

    fs.mkdirSync(path.join(tmp, 'taken'));
    await type(p, 'calib', CALIB);
    await type(p, 'out', path.join(tmp, 'taken'));
    assert.deepEqual(await reasons(p), [`Output folder: ${path.join(tmp, 'taken')} already exists; choose another folder`]);
    await type(p, 'model', path.join(tmp, 'nowhere'));
    assert.ok((await reasons(p)).includes(`Model: ${path.join(tmp, 'nowhere')}: no such file or folder`), (await reasons(p)).join('\n'));
    assert.equal(await runDisabled(p), true);
  });

  test('the target can be a quality budget (issue 10), parsed with its own bounds', async () => {
    await type(p, 'model', MODEL);
    await type(p, 'out', path.join(tmp, 'out3'));
    await p.page.evaluate(() => {
      const dd = document.getElementById('field-target') as HTMLElement & { value: string };
      dd.value = 'minAgreement';
      dd.dispatchEvent(new Event('change'));
    });
    await type(p, 'targetValue', '1.5');
    assert.deepEqual(await reasons(p), ['Quality budget: minimum agreement: must be a number in (0, 1], got "1.5"']);
    assert.equal(await p.page.textContent('label[for="field-targetValue"]'), 'Quality budget: minimum agreement');
    await type(p, 'targetValue', '0.9');
    assert.deepEqual(await reasons(p), []);
    assert.equal(await p.page.textContent('#target-hint'), '', 'no layer count for a budget');
    await p.page.evaluate(() => {
      const dd = document.getElementById('field-target') as HTMLElement & { value: string };
      dd.value = 'ratio';
      dd.dispatchEvent(new Event('change'));
    });
    await type(p, 'targetValue', '0.25');
  });

  test('valid input posts the run message with the options chosen', async () => {
    await type(p, 'model', path.join(MODEL, 'onnx', 'vision_encoder.onnx'));
    await type(p, 'out', path.join(tmp, 'out2'));
    await type(p, 'samples', '8');
    await p.page.evaluate(() => {
      const dd = document.getElementById('field-method') as HTMLElement & { value: string };
      dd.value = 'cosine';
      dd.dispatchEvent(new Event('change'));
    });
    // Without issue 10's compensation option the form has an SCP checkbox; with it, a dropdown.
    const hasCompensation = await p.page.evaluate(() => Boolean(document.getElementById('field-compensation')));
    if (hasCompensation) {
      await p.page.evaluate(() => {
        const dd = document.getElementById('field-compensation') as HTMLElement & { value: string };
        dd.value = 'none';
        dd.dispatchEvent(new Event('change'));
      });
    } else await p.page.click('[data-field=scp]');
    await settled(p);
    assert.deepEqual(await reasons(p), []);
    assert.equal(await runDisabled(p), false);
    await p.page.click('#run');
    await p.page.waitForFunction(() => (window as any).__harness.messages.some((m: { type: string }) => m.type === 'run'));
    const run = (await p.messages()).find((m) => m.type === 'run');
    assert.deepEqual(run, {
      type: 'run',
      request: {
        kind: 'prune',
        model: path.join(MODEL, 'onnx', 'vision_encoder.onnx'),
        calib: CALIB,
        out: path.join(tmp, 'out2'),
        options: { ratio: 0.25, method: 'cosine', ...(hasCompensation ? { compensation: 'none' } : { scp: false }), samples: 8 },
      },
    });
    // While it runs: inputs and Run disabled, Cancel enabled, progress shown.
    assert.equal(await runDisabled(p), true);
    assert.equal(await p.page.evaluate(() => document.getElementById('cancel')!.hasAttribute('disabled')), false);
    await p.send({ type: 'progress', progress: { stage: 'calibrate', done: 3, total: 8, etaSeconds: 12 } });
    await p.page.waitForFunction(() => document.getElementById('progress-text')?.textContent === 'calibrate 3/8, ETA 12s');
    await p.page.click('#cancel');
    assert.ok((await p.messages()).some((m) => m.type === 'cancel'));
    await p.send({ type: 'runEnded', outcome: 'cancelled', message: 'Cancelled.' });
    await p.page.waitForFunction(() => document.getElementById('run-outcome')?.textContent === 'Cancelled.');
    await settled(p);
    assert.equal(await runDisabled(p), false, 'Run is enabled again after a cancelled run');
    assert.deepEqual(await p.problems(), []);
  });

  test('the sweep form: ratios out of range and no method disable Run; valid input posts ratios and methods', async () => {
    const EVAL = path.join(REPO, 'data', 'tiny-vqa', 'eval.jsonl');
    const s = await openPanel(browser, server.origin, 'sweepForm', 'light', { width: 1100, height: 1000 });
    const sh = await serveForm(s, 'sweepForm', { model: MODEL, calib: CALIB, eval: EVAL, ratios: '0.1,0.6', methods: 'svl', samples: '', evalSamples: '12', randomSeeds: '1', exhaustiveLimit: '0' });
    try {
      await settled(s);
      assert.deepEqual(await reasons(s), ['Ratios: must be a number in (0, 0.5], got "0.6"']);
      assert.equal(await runDisabled(s), true);
      await type(s, 'ratios', '0.3, 0.1');
      // The methods come from the engine's answer; untick the only one.
      await s.page.click('#field-methods [data-method=svl]');
      await settled(s);
      assert.deepEqual(await reasons(s), ['Methods: choose at least one method']);
      await s.page.click('#field-methods [data-method=cosine]');
      await settled(s);
      assert.deepEqual(await reasons(s), []);
      assert.equal(await s.page.textContent('#eval-facts'), '12 evaluation items');
      await s.page.click('#run');
      await s.page.waitForFunction(() => (window as any).__harness.messages.some((m: { type: string }) => m.type === 'run'));
      assert.deepEqual((await s.messages()).find((m) => m.type === 'run'), {
        type: 'run',
        request: { kind: 'sweep', model: MODEL, calib: CALIB, eval: EVAL, options: {}, ratios: [0.1, 0.3], methods: ['cosine'], evalSamples: 12, randomSeeds: 1, exhaustiveLimit: 0 },
      });
      assert.deepEqual(await s.problems(), []);
    } finally {
      sh.stop();
    }
  });
});
