// Screenshots of the four panels in Light+ and Dark+ for the README, from a real report of the
// tiny VLM: docs/screenshots/{redundancy,tokens,gap,benchmark,linked}-{light,dark}.png, ask-{light,dark}.png
// (the ask-both page of issue 15), and
// skipcost-{light,dark}.png: the redundancy panel of a greedy, quality-budget run (measured skip
// cost beside the cosines, the budget curve); with a model and a prefix, of another package
// (e.g. the Qwen2-VL miniature, Dark+ only):
//   npm run build && node out/test/webview/screenshots.js [outDir] [model prefix]
// (Not a test: it only runs when started directly, never under node --test.)

import * as fs from 'fs';
import * as path from 'path';
import { outputName, outputTag } from '../../src/protocol/files';
import type { PanelKind } from '../../src/protocol/messages';
import type { Browser } from 'playwright-core';
import { DEFAULT_PRUNE_OPTIONS } from '../../src/protocol/options';
import { askScreenshot, makeAskFixture } from './askFixture';
import { Fixtures, makeFixtures } from './fixtures';
import { serveForm } from './formHost';
import { launchChromium, openPanel, PanelPage, REPO, startServer } from './harness';

/** A full-page screenshot once the page has settled, refused if the page logged a problem. */
async function capture(p: PanelPage, what: string, file: string): Promise<string> {
  await p.page.waitForTimeout(150);
  const problems = await p.problems();
  if (problems.length) throw new Error(`${what}: ${problems.join('; ')}`);
  await p.page.screenshot({ path: file, fullPage: true });
  await p.page.close();
  return file;
}

/**
 * Linked selection (issue 15): the redundancy panel after a layer was selected elsewhere (the
 * host relays selectLayer from the Layers view or another panel): the layer's column outlined in
 * the chart, its row highlighted in the table (sorted by the TIS-kept cosine), the export buttons.
 */
async function linkedShot(browser: Browser, origin: string, fx: Fixtures, theme: 'light' | 'dark', outDir: string): Promise<string> {
  const p = await openPanel(browser, origin, 'redundancy', theme, { width: 1100, height: 1120 });
  await p.send({ type: 'show', panel: 'redundancy', report: fx.report });
  const layer = fx.report.removed[1] ?? fx.report.removed[0];
  await p.page.evaluate((l) => (window as any).__harness.send({ type: 'selectLayer', layer: l }), layer);
  await p.page.waitForFunction((l) => document.body.dataset.selectedLayer === String(l), layer);
  await p.page.locator('#layer-table thead th', { hasText: 'cos TIS-kept' }).click();
  await p.page.locator('#layer-table thead th', { hasText: 'cos TIS-kept' }).click();
  await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await p.page.waitForTimeout(150);
  const problems = await p.problems();
  if (problems.length) throw new Error(`linked/${theme}: ${problems.join('; ')}`);
  const file = path.join(outDir, `linked-${theme}.png`);
  await p.page.screenshot({ path: file, fullPage: false });
  await p.page.close();
  return file;
}

export async function takeScreenshots(outDir = path.join(REPO, 'docs', 'screenshots'), model?: string, prefix = ''): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const fx = await makeFixtures({ sweep: true, model, greedy: !model });
  const ask = model ? undefined : await makeAskFixture();
  const server = await startServer();
  const browser = await launchChromium();
  const written: string[] = [];
  try {
    for (const theme of model ? (['dark'] as const) : (['light', 'dark'] as const)) {
      for (const panel of ['redundancy', 'tokens', 'gap', 'benchmark'] as PanelKind[]) {
        const p = await openPanel(browser, server.origin, panel, theme, { width: 1100, height: 800, images: fx.images });
        await p.send({ type: 'show', panel, report: fx.report, benchmark: panel === 'benchmark' ? fx.benchmarkWithSweep : undefined });
        if (panel === 'tokens') await p.page.waitForSelector('#patch-figure.has-image');
        written.push(await capture(p, `${panel}/${theme}`, path.join(outDir, `${prefix}${panel}-${theme}.png`)));
      }
      const p = await openPanel(browser, server.origin, 'redundancy', theme, { width: 1100, height: 800, images: fx.images });
      await p.send({ type: 'show', panel: 'redundancy', report: fx.greedyReport! });
      await p.page.waitForSelector('#chart-quality-curve');
      await p.page.waitForTimeout(150);
      const problems = await p.problems();
      if (problems.length) throw new Error(`skip cost/${theme}: ${problems.join('; ')}`);
      const file = path.join(outDir, `skipcost-${theme}.png`);
      await p.page.screenshot({ path: file, fullPage: true });
      written.push(file);
      await p.page.close();
      if (!model) written.push(await linkedShot(browser, server.origin, fx, theme, outDir));
      // Issue 15: the ask-both page (docs/screenshots/ask-{light,dark}.png), bundled model only.
      if (ask) {
        const file = path.join(outDir, `ask-${theme}.png`);
        await askScreenshot(browser, server.origin, theme, file, ask);
        written.push(file);
      }
    }
  } finally {
    await browser.close();
    await server.close();
    fs.rmSync(fx.dir, { recursive: true, force: true });
    if (ask) fs.rmSync(ask.dir, { recursive: true, force: true });
  }
  return written;
}

// ---- issue 15: the prune form, light and dark (docs/screenshots/form-{light,dark}.png), its
// checks answered by the engine's checkRun:  node out/test/webview/screenshots.js --forms [outDir]
export async function takeFormScreenshots(outDir = path.join(REPO, 'docs', 'screenshots')): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const server = await startServer();
  const browser = await launchChromium();
  const written: string[] = [];
  try {
    for (const theme of ['light', 'dark'] as const) {
      const p = await openPanel(browser, server.origin, 'pruneForm', theme, { width: 1100, height: 900 });
      // Light: ready to run; dark: a ratio out of range, so Run is disabled and says why.
      const d = DEFAULT_PRUNE_OPTIONS;
      const fields = { model: path.join(REPO, 'models', 'tiny-llava'), calib: path.join(REPO, 'data', 'tiny-vqa', 'calib.json'), out: path.join(REPO, 'models', outputName('tiny-llava', outputTag(d))), target: 'ratio', targetValue: theme === 'light' ? String(d.ratio) : '0.6', method: d.method, scp: 'true', compensation: 'auto', samples: '' };
      const host = await serveForm(p, 'pruneForm', fields);
      await p.page.waitForFunction(() => document.querySelectorAll('.thumb img').length > 0 && !document.getElementById('reasons')!.textContent!.includes('Checking'));
      host.stop();
      written.push(await capture(p, `form/${theme}`, path.join(outDir, `form-${theme}.png`)));
    }
  } finally {
    await browser.close();
    await server.close();
  }
  return written;
}

if (require.main === module && !process.env.NODE_TEST_CONTEXT && process.argv[2] === '--forms') {
  takeFormScreenshots(process.argv[3]).then(
    (files) => console.log(files.map((f) => path.relative(REPO, f)).join('\n')),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
} else if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  takeScreenshots(process.argv[2], process.argv[3], process.argv[4]).then(
    (files) => console.log(files.map((f) => path.relative(REPO, f)).join('\n')),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
