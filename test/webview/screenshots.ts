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
import type { PanelKind } from '../../src/protocol/messages';
import type { Browser } from 'playwright-core';
import { askScreenshot, makeAskFixture } from './askFixture';
import { Fixtures, makeFixtures } from './fixtures';
import { launchChromium, openPanel, REPO, startServer } from './harness';

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
        await p.page.waitForTimeout(150);
        const problems = await p.problems();
        if (problems.length) throw new Error(`${panel}/${theme}: ${problems.join('; ')}`);
        const file = path.join(outDir, `${prefix}${panel}-${theme}.png`);
        await p.page.screenshot({ path: file, fullPage: true });
        written.push(file);
        await p.page.close();
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

if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  takeScreenshots(process.argv[2], process.argv[3], process.argv[4]).then(
    (files) => console.log(files.map((f) => path.relative(REPO, f)).join('\n')),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
