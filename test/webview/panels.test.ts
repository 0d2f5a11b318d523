// The four webview panels rendered in headless Chromium from a real report of the tiny VLM
// (prune + bench + sweep through the CLI), in Light+ and Dark+ themes, under the extension's
// CSP: the charts must hold the report's numbers, the page must reach nothing outside the
// harness origin and log no CSP violation or error. Needs dist/ (npm run build) and
// /usr/bin/chromium (or CHROMIUM_PATH).

import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import type { Browser } from 'playwright-core';
import type { PanelKind } from '../../src/protocol/messages';
import { contentSecurityPolicy, webviewHtml } from '../../src/host/webviewHtml';
import { Fixtures, makeFixtures } from './fixtures';
import { CHROMIUM, Harness, launchChromium, openPanel, PanelPage, startServer } from './harness';
import { HarnessTheme, THEME_VARS } from './themes';

interface ChartInfo {
  type: string;
  labels?: string[];
  datasets: { label: string; data: any[]; borderColor: unknown; pointStyle: unknown }[];
  yType?: string;
  bands: any;
  drawn: boolean;
}

/** Reads a chart's datasets (data, labels, colours, point styles) and its options of interest. */
async function chart(p: PanelPage, id: string): Promise<ChartInfo | null> {
  return p.page.evaluate((cid) => {
    const canvas = document.getElementById(cid) as HTMLCanvasElement | null;
    const c = canvas && (window as any).Chart.getChart(canvas);
    if (!c) return null;
    return {
      type: c.config.type as string,
      labels: c.data.labels as string[] | undefined,
      datasets: c.data.datasets.map((d: any) => ({ label: d.label, data: d.data, borderColor: d.borderColor, pointStyle: d.pointStyle })),
      yType: c.options.scales?.y?.type as string | undefined,
      bands: c.options.plugins?.layerBands,
      drawn: c.chartArea ? c.chartArea.right - c.chartArea.left > 100 && c.chartArea.bottom - c.chartArea.top > 100 : false,
    };
  }, id);
}

async function choose(p: PanelPage, dropdownId: string, value: string) {
  const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
  await p.page.evaluate(
    ([id, v]) => {
      const dd = document.getElementById(id) as any;
      dd.value = v;
      dd.dispatchEvent(new Event('change'));
    },
    [dropdownId, value],
  );
  await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

async function setSlider(p: PanelPage, id: string, value: number) {
  const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
  await p.page.evaluate(
    ([sid, v]) => {
      const s = document.getElementById(sid as string) as HTMLInputElement;
      s.value = String(v);
      s.dispatchEvent(new Event('input'));
      s.dispatchEvent(new Event('change'));
    },
    [id, value] as const,
  );
  await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

describe('webview panels in Chromium', () => {
  let fx: Fixtures;
  let server: Harness;
  let browser: Browser;
  const pages: PanelPage[] = [];

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
    [fx, server] = await Promise.all([makeFixtures({ sweep: true }), startServer()]);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    if (fx?.dir) fs.rmSync(fx.dir, { recursive: true, force: true });
  });

  async function open(panel: PanelKind, theme: HarnessTheme, withImages = true): Promise<PanelPage> {
    const p = await openPanel(browser, server.origin, panel, theme, { images: withImages ? fx.images : {} });
    pages.push(p);
    return p;
  }

  async function assertClean(p: PanelPage) {
    const outside = p.requests.filter((u) => !u.startsWith(server.origin + '/') && !u.startsWith('data:'));
    assert.deepEqual(outside, [], 'requests outside the harness origin');
    assert.deepEqual(await p.problems(), [], 'CSP violations / console errors');
    await p.page.close();
  }

  for (const theme of ['light', 'dark'] as const) {
    const vars = THEME_VARS[theme];

    test(`redundancy panel (${theme}): measured skip cost beside the cosines, costly layers flagged, the budget curve`, async () => {
      const r = fx.report;
      assert.ok(r.layers.every((l) => l.skipCost), 'the CLI report measures every layer');
      // A budget curve as a greedy run records it (numbers chosen here; the panel only draws them).
      const curve = [
        { removed: [10], added: 10, selectionKl: 0.01, kl: 0.02, agreement: 1 },
        { removed: [9, 10], added: 9, selectionKl: 0.03, kl: 0.05, agreement: 0.95 },
        { removed: [9, 10, 15], added: 15, selectionKl: 0.08, kl: 0.2, agreement: 0.8 },
      ];
      const withCurve = { ...r, removed: [9, 10], selection: { method: 'greedy' as const, objective: 'mean-kl' as const, candidates: [8, 9, 10, 11, 12, 13, 14, 15], curve, budget: { minAgreement: 0.9, layers: 2 } } };
      const p = await open('redundancy', theme);
      await p.send({ type: 'show', panel: 'redundancy', report: withCurve });
      const c = await chart(p, 'chart-skip-cost');
      assert.ok(c && c.drawn, 'skip cost chart drawn');
      assert.deepEqual(c.datasets[0].data, r.layers.map((l) => l.skipCost!.kl));
      assert.deepEqual(c.datasets[1].data, r.layers.map((l) => l.skipCost!.agreement));
      const costly = r.layers.filter((l) => l.skipCost!.agreement < 0.95 || l.skipCost!.kl > 0.1).map((l) => l.index);
      const flagged = await p.page.$$eval('#layer-table tbody tr', (trs) => trs.filter((tr) => tr.querySelector('td.costly')).map((tr) => Number(tr.getAttribute('data-layer'))));
      assert.deepEqual(flagged, costly);
      const q = await chart(p, 'chart-quality-curve');
      assert.ok(q && q.drawn, 'budget curve drawn');
      assert.deepEqual(q.datasets[0].data, curve.map((x) => x.agreement));
      assert.deepEqual(q.datasets[1].data, curve.map((x) => x.kl));
      assert.deepEqual(q.datasets[2].data, [0.9, 0.9, 0.9], 'the budget line');
      assert.deepEqual(await p.problems(), []);
      await p.page.close();
    });

    test(`redundancy panel (${theme}): cosines, pruned markers, candidate range, table, layer selection`, async () => {
      const r = fx.report;
      const p = await open('redundancy', theme);
      const msgs0 = await p.messages();
      assert.deepEqual(msgs0, [{ type: 'ready' }]);
      await p.send({ type: 'show', panel: 'redundancy', report: r });
      const c = await chart(p, 'chart-redundancy');
      assert.ok(c && c.drawn, 'chart drawn');
      assert.deepEqual(c.labels, r.layers.map((l) => String(l.index)));
      assert.deepEqual(c.datasets[0].data, r.layers.map((l) => l.cosTis));
      assert.deepEqual(c.datasets[1].data, r.layers.map((l) => l.cosAll));
      assert.deepEqual(c.datasets[2].data, r.layers.map((l) => l.cosText));
      assert.deepEqual(c.datasets[3].data, r.layers.map((l) => l.cosVisual));
      const crossed = (c.datasets[0].pointStyle as string[]).map((s, i) => (s === 'crossRot' ? i : -1)).filter((i) => i >= 0);
      assert.deepEqual(crossed, r.removed, 'pruned markers at report.removed');
      assert.deepEqual(c.bands.pruned, r.removed);
      assert.deepEqual(c.bands.partners, r.layers.filter((l) => l.status === 'partner').map((l) => l.index));
      assert.deepEqual(c.bands.candidates, r.options.candidates);
      assert.equal(c.datasets[0].borderColor, vars['--vscode-charts-blue'], 'themed from --vscode-charts-blue');
      assert.equal(await p.page.evaluate(() => (window as any).Chart.defaults.color), vars['--vscode-foreground']);

      const rows = await p.page.$$eval('#layer-table tbody tr', (trs) => trs.map((tr) => ({ layer: Number(tr.getAttribute('data-layer')), cls: tr.className, text: tr.textContent })));
      assert.equal(rows.length, r.layers.length);
      assert.deepEqual(rows.filter((x) => x.cls.includes('row-pruned')).map((x) => x.layer), r.removed);
      for (const l of r.layers) assert.ok(rows[l.index].text!.includes(l.cosTis.toFixed(4)) && rows[l.index].text!.includes(l.status));

      // Pick one more layer and ask the host to prune that selection.
      const extra = r.layers.find((l) => !r.removed.includes(l.index) && l.candidate)!.index;
      await p.page.click(`vscode-checkbox[data-layer="${extra}"]`);
      await p.page.click('#select-layers');
      const msgs = await p.messages();
      assert.deepEqual(msgs[msgs.length - 1], { type: 'selectLayers', layers: [...r.removed, extra].sort((a, b) => a - b) });
      await p.page.click('#open-gap');
      assert.deepEqual((await p.messages()).pop(), { type: 'openPanel', panel: 'gap' });

      // 1 − cosine on a log axis.
      await choose(p, 'cos-scale', 'gap');
      const g = await chart(p, 'chart-redundancy');
      assert.equal(g!.yType, 'logarithmic');
      assert.deepEqual(g!.datasets[0].data, r.layers.map((l) => Math.max(1e-7, 1 - l.cosTis)));
      await assertClean(p);
    });

    test(`token panel (${theme}): TIS histograms per layer, heat strips, patch heat map over the image, text tokens`, async () => {
      const r = fx.report;
      const p = await open('tokens', theme);
      await p.send({ type: 'show', panel: 'tokens', report: r });
      const L0 = r.removed[0];
      const share = (counts: number[]) => {
        const t = counts.reduce((a, b) => a + b, 0);
        return counts.map((x) => (t ? x / t : 0));
      };
      let c = await chart(p, 'chart-tis-hist');
      assert.ok(c && c.drawn);
      assert.deepEqual(c.datasets[0].data, share(r.histograms.visual[L0].counts), 'visual share at the first pruned layer');
      assert.deepEqual(c.datasets[1].data, share(r.histograms.text[L0].counts));
      await choose(p, 'hist-mode', 'count');
      await setSlider(p, 'layer-slider', 3);
      c = await chart(p, 'chart-tis-hist');
      assert.deepEqual(c!.datasets[0].data, r.histograms.visual[3].counts);
      assert.deepEqual(c!.datasets[1].data, r.histograms.text[3].counts);
      assert.deepEqual(c!.labels, r.histograms.visual[3].edges.slice(0, -1).map((e) => e.toFixed(2)));

      // Heat strips: one row per layer, the occupied bins (+1 margin) as columns, both modalities.
      const all = [...r.histograms.visual, ...r.histograms.text];
      const nz = all.flatMap((hh) => hh.counts.map((x, i) => (x > 0 ? i : -1))).filter((i) => i >= 0);
      const nb = Math.min(all[0].counts.length - 1, Math.max(...nz) + 1) - Math.max(0, Math.min(...nz) - 1) + 1;
      assert.equal(await p.page.locator('#strip-visual .strip-cell').count(), r.model.numLayers * nb);
      assert.equal(await p.page.locator('#strip-text .strip-cell').count(), r.model.numLayers * nb);

      // Sample 0 at layer 3: grid of patches over the image, kept ones outlined.
      const s = r.tokenSamples[0];
      const [rows, cols] = s.imageGrid!;
      const visual = s.isImage.map((v, i) => (v ? i : -1)).filter((i) => i >= 0);
      assert.equal(await p.page.locator('#patch-grid .heat-cell').count(), rows * cols, 'heat map cells = image grid');
      assert.deepEqual(await p.page.$$eval('#patch-grid .heat-cell', (cs) => cs.map((x) => Number((x as HTMLElement).dataset.token))), visual);
      assert.deepEqual(
        await p.page.$$eval('#patch-grid .heat-cell.kept', (cs) => cs.map((x) => Number((x as HTMLElement).dataset.token))),
        visual.filter((i) => s.kept[3].includes(i)),
      );
      const textIdx = s.isImage.map((v, i) => (v ? -1 : i)).filter((i) => i >= 0);
      assert.deepEqual(await p.page.$$eval('#token-text .tok[data-token]', (ts) => ts.map((x) => Number((x as HTMLElement).dataset.token))), textIdx);
      assert.deepEqual(
        await p.page.$$eval('#token-text .tok.kept', (ts) => ts.map((x) => Number((x as HTMLElement).dataset.token))),
        textIdx.filter((i) => s.kept[3].includes(i)),
      );
      assert.deepEqual(
        await p.page.$$eval('#token-text .tok[data-token]', (ts) => ts.map((x) => x.textContent)),
        textIdx.map((i) => s.tokens[i]),
      );
      assert.ok((await p.messages()).some((m) => m.type === 'requestImage' && m.sample === 0), 'asked the host for the image');
      await p.page.waitForSelector('#patch-figure.has-image');
      assert.equal(await p.page.getAttribute('#patch-figure img', 'src'), fx.images[0]);
      assert.equal(await p.page.evaluate(() => (document.querySelector('#patch-figure img') as HTMLImageElement).naturalWidth > 0), true, 'image decoded');

      // Another sample: requests its own image; the host re-sending the same report keeps the choices.
      await choose(p, 'sample-select', '2');
      await p.page.waitForSelector('#patch-figure.has-image');
      assert.equal(await p.page.getAttribute('#patch-figure img', 'src'), fx.images[2]);
      await p.send({ type: 'show', panel: 'tokens', report: r });
      assert.equal(await p.page.inputValue('#layer-slider'), '3');
      assert.equal(await p.page.getAttribute('#patch-figure img', 'src'), fx.images[2], 'image kept across re-render');
      assert.equal((await p.messages()).filter((m) => m.type === 'requestImage' && m.sample === 2).length, 1, 'each image requested once');
      await assertClean(p);
    });

    test(`gap panel (${theme}): before/after bars, projection scatter per pair, spectrum`, async () => {
      const r = fx.report;
      assert.ok(r.pairs.length > 0);
      const p = await open('gap', theme);
      await p.send({ type: 'show', panel: 'gap', report: r });
      const cos = await chart(p, 'chart-gap-cos');
      const rel = await chart(p, 'chart-gap-rel');
      assert.ok(cos?.drawn && rel?.drawn);
      assert.deepEqual(cos.labels, r.pairs.map((q) => `L${q.pruned} → L${q.partner}`));
      assert.deepEqual(cos.datasets[0].data, r.pairs.map((q) => q.gapBefore.cosine));
      assert.deepEqual(cos.datasets[1].data, r.pairs.map((q) => q.gapAfter!.cosine));
      assert.deepEqual(rel.datasets[0].data, r.pairs.map((q) => q.gapBefore.relL2));
      assert.deepEqual(rel.datasets[1].data, r.pairs.map((q) => q.gapAfter!.relL2));
      const pts = (a: [number, number][]) => a.map(([x, y]) => ({ x, y }));
      for (const i of [0, r.pairs.length - 1]) {
        if (i > 0) await choose(p, 'pair-select', String(i));
        const q = r.pairs[i];
        const sc = await chart(p, 'chart-gap-scatter');
        assert.ok(sc?.drawn);
        assert.deepEqual(sc.datasets.map((d) => d.data), [pts(q.projection!.pruned), pts(q.projection!.before), pts(q.projection!.after)]);
        const sv = await chart(p, 'chart-gap-sv');
        assert.deepEqual(sv!.datasets[0].data, q.singularValues.slice(0, 32));
      }
      assert.equal(await p.page.locator('#pair-table tbody tr').count(), r.pairs.length);
      await assertClean(p);
    });

    test(`benchmark panel (${theme}): accuracy per family from the bench JSON, summary table, sweep trade-off`, async () => {
      const p = await open('benchmark', theme);
      await p.send({ type: 'show', panel: 'benchmark', report: fx.report, benchmark: fx.benchmarkWithSweep });
      const c = await chart(p, 'chart-bench-acc');
      assert.ok(c?.drawn);
      const fams = Object.keys(fx.benchLines[0].families).sort();
      assert.deepEqual(c.labels, ['overall', ...fams]);
      assert.equal(c.datasets.length, fx.benchLines.length);
      fx.benchLines.forEach((b, i) => assert.deepEqual(c.datasets[i].data, [b.accuracy, ...fams.map((f) => b.families[f].accuracy)]));
      const table = await p.page.$$eval('#bench-table tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)));
      assert.equal(table.length, fx.benchLines.length);
      assert.equal(table[1][1], String(fx.benchLines[1].numLayers));
      assert.equal(table[1][7], `${(fx.benchLines[1].samplesPerSecond / fx.benchLines[0].samplesPerSecond).toFixed(2)}×`);
      const sw = await chart(p, 'chart-sweep');
      assert.ok(sw?.drawn, 'trade-off chart drawn');
      for (const m of ['svl', 'cosine']) {
        const want = fx.sweepRows.filter((x) => x.method === m).sort((a, b) => a.ratio - b.ratio).map((x) => ({ x: x.ratio, y: x.accuracy }));
        assert.ok(want.length > 0);
        assert.deepEqual(sw.datasets.find((d) => d.label.split(':')[0] === m)?.data, want, m);
      }
      const rnd = fx.sweepRows.filter((x) => x.method.startsWith('random'));
      assert.equal(sw.datasets.find((d) => d.label === 'random (each seed)')?.data.length, rnd.length);
      await assertClean(p);
    });
  }

  test('benchmark panel without a benchmark shows an explanatory empty state; exhaustive rows become the upper-bound line', async () => {
    const p = await open('benchmark', 'dark');
    await p.send({ type: 'show', panel: 'benchmark', report: fx.report });
    const text = await p.page.textContent('.empty-state');
    assert.match(text!, /No benchmark yet/);
    assert.match(text!, /bench/);
    assert.equal(await p.page.locator('canvas').count(), 0);
    // A sweep holding exhaustive subsets (the host appends each ratio's best) draws their maximum per ratio.
    const base = fx.sweepRows.filter((x) => x.method === 'svl');
    const ex = base.flatMap((x) => [{ ...x, method: 'exhaustive', accuracy: x.accuracy }, { ...x, method: 'exhaustive', accuracy: x.accuracy / 2 }]);
    await p.send({ type: 'show', panel: 'benchmark', report: fx.report, benchmark: { items: 12, rows: [], sweep: [...fx.sweepRows, ...ex] } });
    const sw = await chart(p, 'chart-sweep');
    assert.deepEqual(sw!.datasets.find((d) => d.label === 'exhaustive best (upper bound)')?.data, base.map((x) => ({ x: x.ratio, y: x.accuracy })).sort((a, b) => a.x - b.x));
    await assertClean(p);
  });

  test('a reload restores the panel and its choices from the webview state; a theme change re-renders with the new colours', async () => {
    const r = fx.report;
    const p = await open('redundancy', 'dark');
    await p.send({ type: 'show', panel: 'redundancy', report: r });
    await choose(p, 'cos-scale', 'gap');
    await p.page.reload();
    await p.page.waitForFunction(() => (window as any).__harness?.messages.some((m: { type: string }) => m.type === 'ready'));
    const c = await chart(p, 'chart-redundancy');
    assert.ok(c?.drawn, 'drawn from saved state before any show message');
    assert.equal(c.yType, 'logarithmic');
    assert.deepEqual(c.datasets[0].data, r.layers.map((l) => Math.max(1e-7, 1 - l.cosTis)));

    const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
    await p.page.evaluate(() => (window as any).__harness.setTheme('light'));
    await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
    const l = await chart(p, 'chart-redundancy');
    assert.equal(l!.datasets[0].borderColor, THEME_VARS.light['--vscode-charts-blue']);
    assert.equal(await p.page.evaluate(() => (window as any).Chart.defaults.color), THEME_VARS.light['--vscode-foreground']);
    await assertClean(p);
  });
});

describe('webviewHtml', () => {
  test('strict CSP: nonce script only, no inline styles, no remote content', () => {
    const html = webviewHtml({ cspSource: 'https://file+.vscode-resource.vscode-cdn.net', nonce: 'abcDEF123456', scriptUri: 'https://x/dist/webview.js', styleUri: 'https://x/media/webview.css', panel: 'tokens', title: 'Tokens <of> "model"' });
    const csp = contentSecurityPolicy('https://file+.vscode-resource.vscode-cdn.net', 'abcDEF123456');
    assert.ok(html.includes(`content="${csp.replace(/'/g, '&#39;')}"`));
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-abcDEF123456'/);
    assert.match(csp, /style-src https:\/\/file\+\.vscode-resource\.vscode-cdn\.net 'nonce-abcDEF123456'/);
    assert.match(html, /<meta property="csp-nonce" content="abcDEF123456">/);
    assert.doesNotMatch(csp, /unsafe-(inline|eval)/);
    assert.doesNotMatch(csp, /https?:\/\/(?!file\+)/);
    assert.match(html, /<script nonce="abcDEF123456" src="https:\/\/x\/dist\/webview.js"><\/script>/);
    assert.match(html, /<body data-panel="tokens">/);
    assert.ok(html.includes('Tokens &lt;of&gt; &quot;model&quot;'));
    assert.doesNotMatch(html, /style="/);
    assert.equal((html.match(/<script/g) ?? []).length, 1);
    assert.throws(() => webviewHtml({ cspSource: 'x', nonce: "a' b", scriptUri: '', styleUri: '', panel: 'gap', title: '' }));
  });
});
