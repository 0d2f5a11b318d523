// Issue 15's panel tests, run inside panels.test.ts on its fixtures (a real report, benchmark
// and sweep of the tiny VLM): every chart series readable (>= 3:1) in Light Modern, Dark
// Modern and High Contrast; "after SCP" points visible and widened gaps warned about; one
// rank convention; a log axis that holds its title and its lowest point; labelled sizes; the
// sample picker without answers; every layer ticked on layer axes; tables that fit a small
// window; linked selection, sortable tables, CSV and PNG export.
// Expected values come from the report itself (and calib.json), never from the panel code.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { PanelKind } from '../../src/protocol/messages';
import type { Report, TokenSample } from '../../src/protocol/report';
import { contrastRatio } from './colors';
import type { Fixtures } from './fixtures';
import { REPO, type PanelPage } from './harness';
import { chart, choose } from './pageTools';
import { type HarnessTheme, THEME_VARS } from './themes';

interface Ctx {
  fx: Fixtures;
  open(panel: PanelKind, theme: HarnessTheme, withImages?: boolean, size?: { width?: number; height?: number }): Promise<PanelPage>;
  assertClean(p: PanelPage): Promise<void>;
}

const PANELS: PanelKind[] = ['redundancy', 'tokens', 'gap', 'benchmark'];

async function show(c: Ctx, panel: PanelKind, theme: HarnessTheme, report?: Report, size?: { width?: number; height?: number }): Promise<PanelPage> {
  const p = await c.open(panel, theme, true, size);
  await p.send({ type: 'show', panel, report: report ?? c.fx.report, benchmark: panel === 'benchmark' ? c.fx.benchmarkWithSweep : undefined });
  return p;
}

interface Series {
  chart: string;
  label: string;
  type: string;
  border: string[];
  fill: string[];
}

/** Every dataset of every chart on the page with the colours it is drawn in. */
function seriesOf(p: PanelPage): Promise<Series[]> {
  return p.page.evaluate(() => {
    const out: Series[] = [];
    const list = (v: unknown) => (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');
    for (const canvas of Array.from(document.querySelectorAll("canvas"))) {
      const c = (window as any).Chart.getChart(canvas);
      if (!c) continue;
      for (const d of c.data.datasets) out.push({ chart: canvas.id, label: String(d.label), type: d.type ?? c.config.type, border: list(d.borderColor), fill: list(d.backgroundColor) });
    }
    return out;
  });
}

/** The colour a series is seen in: a line's stroke, a bar's fill, a scatter point's stronger of the two. */
function seriesContrast(s: Series, bg: string): number {
  const worst = (cs: string[]) => Math.min(...cs.map((x) => contrastRatio(x, bg)));
  if (s.type === 'line') return worst(s.border);
  if (s.type === 'bar') return worst(s.fill);
  return Math.max(s.border.length ? worst(s.border) : 0, s.fill.length ? worst(s.fill) : 0);
}

/** A report whose layers' 1 − cosine span several decades (1e-6 … 0.3), as on larger models. */
function decadesReport(r: Report): Report {
  const L = r.layers.length;
  const gap = (i: number) => 10 ** (-6 + (5.5 * i) / (L - 1));
  return { ...r, layers: r.layers.map((l, i) => ({ ...l, cosTis: 1 - gap(i), cosAll: 1 - gap(L - 1 - i), cosText: 1 - gap(i) / 3, cosVisual: 1 - gap(i) * 2 })) };
}

/** The report with a quality-budget curve as a greedy run records it (issue 10), so that chart is drawn too. */
function withCurve(r: Report): Report {
  const curve = [
    { removed: [10], added: 10, selectionKl: 0.01, kl: 0.02, agreement: 1 },
    { removed: [9, 10], added: 9, selectionKl: 0.03, kl: 0.05, agreement: 0.95 },
    { removed: [9, 10, 15], added: 15, selectionKl: 0.08, kl: 0.2, agreement: 0.8 },
  ];
  return { ...r, selection: { method: 'greedy', objective: 'mean-kl', candidates: [8, 9, 10, 11, 12, 13, 14, 15], curve, budget: { minAgreement: 0.9, maxKl: 0.1, layers: 2 } } };
}

const bytesText = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

export function linkedSelectionTests(get: () => Ctx): void {
  for (const theme of ['light-modern', 'dark-modern', 'hc'] as const) {
    test(`every chart series of every panel has >= 3:1 contrast against the editor background (${theme})`, async () => {
      const c = get();
      const bg = THEME_VARS[theme]['--vscode-editor-background'];
      const seen = new Set<string>();
      for (const panel of PANELS) {
        const p = await show(c, panel, theme, withCurve(c.fx.report));
        const series = await seriesOf(p);
        assert.ok(series.length > 0, `${panel}: no chart series`);
        for (const s of series) {
          seen.add(s.chart);
          const ratio = seriesContrast(s, bg);
          assert.ok(ratio >= 3, `${theme} ${panel} ${s.chart} "${s.label}": contrast ${ratio.toFixed(2)} < 3 (${[...s.border, ...s.fill].join(' ')})`);
        }
        await c.assertClean(p);
      }
      for (const id of ['chart-redundancy', 'chart-skip-cost', 'chart-quality-curve', 'chart-tis-hist', 'chart-gap-cos', 'chart-gap-rel', 'chart-gap-scatter', 'chart-gap-sv', 'chart-bench-acc', 'chart-sweep']) assert.ok(seen.has(id), `${id} checked`);
    });
  }

  test('gap panel: every "after SCP" point is visible on top of its "before" ring; pairs whose gap widened are named in a warning', async () => {
    const c = get();
    const r = c.fx.report;
    const p = await show(c, 'gap', 'dark-modern');
    for (let i = 0; i < r.pairs.length; i++) {
      if (i > 0) await choose(p, 'pair-select', String(i));
      // The canvas pixel at each "after" point's centre has the "after" colour (not the "before" ring's).
      const res = await p.page.evaluate(() => {
        const canvas = document.getElementById('chart-gap-scatter') as HTMLCanvasElement;
        const ch = (window as any).Chart.getChart(canvas);
        // One read of a copy of the canvas (repeated reads of the chart's own canvas make Chromium warn).
        const copy = document.createElement('canvas');
        copy.width = canvas.width;
        copy.height = canvas.height;
        const ctx = copy.getContext('2d', { willReadFrequently: true })!;
        ctx.drawImage(canvas, 0, 0);
        const px = ctx.getImageData(0, 0, copy.width, copy.height).data;
        const dpr = canvas.width / canvas.getBoundingClientRect().width;
        const at = (x: number, y: number) => {
          const i = (Math.round(y * dpr) * copy.width + Math.round(x * dpr)) * 4;
          return [px[i], px[i + 1], px[i + 2]];
        };
        const after = ch.getDatasetMeta(2).data.map((e: any) => at(e.x, e.y));
        return { after, color: ch.data.datasets[2].backgroundColor, before: ch.data.datasets[1].borderColor };
      });
      const [R, G, B] = await p.page.evaluate((col) => {
        const x = document.createElement('canvas').getContext('2d')!;
        x.fillStyle = col;
        x.fillRect(0, 0, 1, 1);
        return Array.from(x.getImageData(0, 0, 1, 1).data);
      }, res.color as string);
      const hidden = res.after.filter(([r0, g0, b0]: number[]) => Math.abs(r0 - R) + Math.abs(g0 - G) + Math.abs(b0 - B) > 30);
      assert.equal(hidden.length, 0, `pair ${i}: ${hidden.length} of ${res.after.length} "after" points not visible (${JSON.stringify(hidden.slice(0, 3))} vs ${[R, G, B]})`);
    }
    const widened = r.pairs.filter((q) => q.gapAfter && q.gapAfter.relL2 > q.gapBefore.relL2).map((q) => `L${q.pruned} → L${q.partner}`);
    const warning = await p.page.locator('#gap-widened').textContent().catch(() => null);
    if (widened.length) {
      assert.ok(warning, 'a warning names the widened pairs');
      for (const w of widened) assert.ok(warning!.includes(w), `warning names ${w}: ${warning}`);
      assert.ok(warning!.includes(`${widened.length} of ${r.pairs.length}`));
    }
    // A report where compensation widened exactly the first pair, and one where it widened none.
    const one = { ...r, pairs: r.pairs.map((q, i) => ({ ...q, gapAfter: { cosine: q.gapBefore.cosine + (i ? 0.01 : -0.01), relL2: q.gapBefore.relL2 * (i ? 0.9 : 1.2) } })) };
    await p.send({ type: 'show', panel: 'gap', report: one });
    const t1 = await p.page.locator('#gap-widened').textContent();
    assert.match(t1!, new RegExp(`widened the gap on 1 of ${r.pairs.length}`));
    assert.ok(t1!.includes(`L${r.pairs[0].pruned} → L${r.pairs[0].partner}`));
    assert.deepEqual(await p.page.$$eval('#pair-table tbody tr.widened', (trs) => trs.map((x) => Number((x as HTMLElement).dataset.layer))), [r.pairs[0].pruned]);
    const none = { ...r, pairs: r.pairs.map((q) => ({ ...q, gapAfter: { cosine: q.gapBefore.cosine + 0.01, relL2: q.gapBefore.relL2 * 0.9 } })) };
    await p.send({ type: 'show', panel: 'gap', report: none });
    assert.equal(await p.page.locator('#gap-widened').count(), 0);
    await c.assertClean(p);
  });

  test('one rank convention: 1 = most redundant candidate, in the table and the tooltip (the Layers view says the same)', async () => {
    const c = get();
    const r = c.fx.report;
    assert.equal(r.options.method, 'svl');
    // Reference: candidates ordered by TIS-kept cosine, highest first, counted from 1.
    const order = r.layers.filter((l) => l.candidate).sort((a, b) => b.cosTis - a.cosTis).map((l) => l.index);
    const p = await show(c, 'redundancy', 'dark-modern');
    const ranks = await p.page.$$eval('#layer-table tbody tr', (trs) => trs.map((tr) => [Number((tr as HTMLElement).dataset.layer), tr.querySelectorAll('td')[3].textContent]));
    for (const [layer, text] of ranks) assert.equal(text, order.includes(layer as number) ? String(order.indexOf(layer as number) + 1) : '–', `rank of layer ${layer}`);
    const title = await p.page.evaluate((l) => {
      const ch = (window as any).Chart.getChart(document.getElementById('chart-redundancy'));
      return ch.options.plugins.tooltip.callbacks.title([{ dataIndex: l }]);
    }, order[0]);
    assert.match(title, /rank 1(?!\d)/);
    assert.match((await p.page.locator('section', { has: p.page.locator('#layer-table') }).textContent())!, /Rank 1 = the most redundant/);
    await c.assertClean(p);
  });

  test('log-scale redundancy chart: the y title fits and no point touches the edge, with values over six decades', async () => {
    const c = get();
    const p = await show(c, 'redundancy', 'dark-modern', decadesReport(c.fx.report));
    await choose(p, 'cos-scale', 'gap');
    const g = await p.page.evaluate(() => {
      const ch = (window as any).Chart.getChart(document.getElementById('chart-redundancy'));
      const a = ch.chartArea;
      const pts: { y: number; r: number }[] = [];
      ch.data.datasets.forEach((_: unknown, i: number) => ch.getDatasetMeta(i).data.forEach((e: any) => pts.push({ y: e.y, r: e.options.radius + e.options.borderWidth / 2 })));
      const title = ch.options.scales.y.title;
      const ctx = ch.ctx;
      ctx.save();
      ctx.font = `${title.font?.weight ?? 'bold'} ${(window as any).Chart.defaults.font.size}px ${(window as any).Chart.defaults.font.family}`;
      const w = ctx.measureText(title.text).width;
      ctx.restore();
      return { top: a.top, bottom: a.bottom, h: ch.height, pts, w, min: ch.scales.y.min, max: ch.scales.y.max };
    });
    const mid = (g.top + g.bottom) / 2;
    assert.ok(mid - g.w / 2 >= 0 && mid + g.w / 2 <= g.h, `y title (${g.w.toFixed(0)} px) longer than the chart (${g.h} px)`);
    for (const pt of g.pts) assert.ok(pt.y - pt.r >= g.top - 0.5 && pt.y + pt.r <= g.bottom + 0.5, `point at ${pt.y.toFixed(1)} (r ${pt.r}) outside ${g.top.toFixed(1)}..${g.bottom.toFixed(1)}`);
    assert.ok(g.min < 1e-6 && g.max > 0.3, `axis ${g.min}..${g.max} holds the data`);
    await c.assertClean(p);
  });

  test('sizes are labelled: the header names the pruned decoder, the benchmark table the whole package', async () => {
    const c = get();
    const r = c.fx.report;
    const p = await show(c, 'benchmark', 'dark-modern');
    const facts = await p.page.$$eval('.facts div', (ds) => ds.map((d) => [d.querySelector('dt')!.textContent, d.querySelector('dd')!.textContent]));
    assert.deepEqual(facts.find(([k]) => /decoder/.test(k!)), ['pruned decoder', bytesText(r.output.bytes)]);
    assert.ok(!facts.some(([k]) => k === 'size'), 'no unlabelled "size"');
    const head = await p.page.$$eval('#bench-table thead th', (ths) => ths.map((th) => th.textContent!.trim()));
    const col = head.indexOf('package size');
    assert.ok(col >= 0, `columns: ${head}`);
    const cells = await p.page.$$eval('#bench-table tbody tr', (trs, i) => trs.map((tr) => tr.querySelectorAll('td')[i as number].textContent), col);
    assert.deepEqual(cells, c.fx.benchLines.map((b) => bytesText(b.sizeBytes)));
    await c.assertClean(p);
  });

  test('the sample picker shows each prompt without its answer (LLaVA, ChatML, Gemma and image-less templates)', async () => {
    const c = get();
    const r = c.fx.report;
    const calib = JSON.parse(fs.readFileSync(path.join(REPO, 'data', 'tiny-vqa', 'calib.json'), 'utf8')) as { id: string; conversations: { from: string; value: string }[] }[];
    const asked = new Map(calib.map((s) => [s.id, s.conversations[0].value.replace('<image>', '').trim()]));
    const p = await show(c, 'tokens', 'dark-modern');
    const labels = async () => p.page.$$eval('#sample-select vscode-option', (os) => os.map((o) => o.textContent!.trim()));
    assert.deepEqual(await labels(), r.tokenSamples.map((s) => `${s.id}: ${asked.get(s.id)!.slice(0, 60)}`));
    const img = (n: number) => Array(n).fill('<image>');
    const sample = (id: string, tokens: string[]): TokenSample => ({ id, tokens, isImage: tokens.map((t) => (t === '<image>' ? 1 : 0)), tis: [], kept: [] });
    const crafted = [
      sample('chatml', ['<|im_start|>', 'user', '\n', '<|vision_start|>', ...img(4), '<|vision_end|>', 'How', 'many', 'circles', '?', '<|im_end|>', '\n', '<|im_start|>', 'assistant', '\n', 'two', '<|im_end|>']),
      sample('sentencepiece', ['<s>', '▁USER', ':', ...img(4), '▁What', '▁colour', '▁is', '▁it', '?', '▁ASSISTANT', ':', '▁red', '</s>']),
      sample('gemma', ['<bos>', '<start_of_turn>', 'user', '\n', ...img(4), 'Is', 'there', 'a', 'star', '?', '<end_of_turn>', '\n', '<start_of_turn>', 'model', '\n', 'yes', '<end_of_turn>']),
      sample('no-image', ['<s>', 'USER', ':', 'How', 'many', 'squares', '?', 'ASSISTANT', ':', 'two', '</s>']),
    ];
    await p.send({ type: 'show', panel: 'tokens', report: { ...r, tokenSamples: crafted } });
    assert.deepEqual(await labels(), ['chatml: How many circles?', 'sentencepiece: What colour is it?', 'gemma: Is there a star?', 'no-image: How many squares?']);
    await c.assertClean(p);
  });

  test('a 1024 x 700 window (a ~676 px editor beside the side bar): no panel or table is cut off', async () => {
    const c = get();
    for (const panel of PANELS) {
      const p = await show(c, panel, 'dark-modern', undefined, { width: 676, height: 600 });
      const m = await p.page.evaluate(() => ({
        page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        tables: Array.from(document.querySelectorAll('table.data')).map((t) => {
          const w = t.closest('.table-wrap') as HTMLElement;
          return { id: t.id, scroll: w.scrollWidth, client: w.clientWidth };
        }),
      }));
      assert.ok(m.page[0] <= m.page[1], `${panel}: page ${m.page[0]} px wide in a ${m.page[1]} px window`);
      for (const t of m.tables) assert.ok(t.scroll <= t.client, `${panel}: table ${t.id} needs ${t.scroll} px of ${t.client}`);
      await c.assertClean(p);
    }
  });

  test('linked selection: a click on a layer in a chart or a table posts selectLayer; a relayed selectLayer highlights it in every panel; ticks follow tickLayers', async () => {
    const c = get();
    const r = c.fx.report;
    const L = r.model.numLayers;
    const p = await show(c, 'redundancy', 'dark-modern');
    // Every layer has its tick on the x axis (the Layers view lists every layer).
    assert.equal(await p.page.evaluate(() => (window as any).Chart.getChart(document.getElementById('chart-redundancy')).scales.x.ticks.length), L);
    const target = r.removed[1];
    const at = await p.page.evaluate((l) => {
      const ch = (window as any).Chart.getChart(document.getElementById('chart-redundancy'));
      const rect = ch.canvas.getBoundingClientRect();
      return { x: rect.left + ch.scales.x.getPixelForValue(l), y: rect.top + (ch.chartArea.top + ch.chartArea.bottom) / 2 };
    }, target);
    const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
    await p.page.mouse.click(at.x, at.y);
    await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
    assert.deepEqual((await p.messages()).filter((m) => m.type === 'selectLayer'), [{ type: 'selectLayer', layer: target }]);
    const state = async () =>
      p.page.evaluate(() => ({
        body: document.body.dataset.selectedLayer,
        rows: Array.from(document.querySelectorAll('#layer-table tbody tr.selected')).map((tr) => Number((tr as HTMLElement).dataset.layer)),
        band: (window as any).Chart.getChart(document.getElementById('chart-redundancy')).options.plugins.layerBands.selected,
      }));
    assert.deepEqual(await state(), { body: String(target), rows: [target], band: target });
    // The host relays a selection made elsewhere (Layers view, another panel): highlighted, not echoed back.
    const other = r.layers.find((l) => l.status === 'retained')!.index;
    const n0 = (await p.messages()).length;
    await p.page.evaluate((l) => (window as any).__harness.send({ type: 'selectLayer', layer: l }), other);
    await p.page.waitForFunction((l) => document.body.dataset.selectedLayer === String(l), other);
    assert.deepEqual(await state(), { body: String(other), rows: [other], band: other });
    assert.equal((await p.messages()).length, n0, 'a relayed selection is not sent back');
    // The skip-cost chart (issue 10) selects by column too; the quality curve's step selects the layer it adds.
    const clickChart = async (id: string, index: number) => {
      const pt = await p.page.evaluate(
        ([cid, i]) => {
          const ch = (window as any).Chart.getChart(document.getElementById(cid as string));
          ch.canvas.scrollIntoView({ block: 'center' });
          const rect = ch.canvas.getBoundingClientRect();
          return { x: rect.left + ch.scales.x.getPixelForValue(i), y: rect.top + (ch.chartArea.top + ch.chartArea.bottom) / 2 };
        },
        [id, index] as const,
      );
      const n = Number(await p.page.evaluate(() => document.body.dataset.renders));
      await p.page.mouse.click(pt.x, pt.y);
      await p.page.waitForFunction((k) => Number(document.body.dataset.renders) > k, n);
    };
    await clickChart('chart-skip-cost', 3);
    assert.equal(await p.page.evaluate(() => document.body.dataset.selectedLayer), '3');
    await p.send({ type: 'show', panel: 'redundancy', report: withCurve(r) });
    const curve = withCurve(r).selection!.curve;
    await clickChart('chart-quality-curve', 2);
    assert.deepEqual((await p.messages()).filter((m) => m.type === 'selectLayer').pop(), { type: 'selectLayer', layer: curve[2].added });
    assert.equal(await p.page.evaluate(() => (window as any).Chart.getChart(document.getElementById('chart-quality-curve')).options.plugins.layerBands.selected), 2, 'the step that adds the selected layer is outlined');
    // A row click selects too.
    await p.page.click(`#layer-table tbody tr[data-layer="${target}"] td:nth-child(3)`);
    await p.page.waitForFunction((l) => document.body.dataset.selectedLayer === String(l), target);
    // Ticks: a checkbox posts tickLayers; the host's tickLayers re-ticks the table.
    const extra = r.layers.find((l) => !r.removed.includes(l.index))!.index;
    await p.page.click(`vscode-checkbox[data-layer="${extra}"]`);
    assert.deepEqual((await p.messages()).filter((m) => m.type === 'tickLayers').pop(), { type: 'tickLayers', layers: [...r.removed, extra].sort((a, b) => a - b) });
    await p.page.evaluate(() => (window as any).__harness.send({ type: 'tickLayers', layers: [0, 1] }));
    await p.page.waitForFunction(() => document.querySelectorAll('#layer-table vscode-checkbox[checked]').length === 2);
    assert.deepEqual(await p.page.$$eval('#layer-table vscode-checkbox[checked]', (cs) => cs.map((x) => Number((x as HTMLElement).dataset.layer))), [0, 1]);
    await c.assertClean(p);

    // Token panel: the relayed layer becomes the shown layer; a heat-strip click selects.
    const t = await show(c, 'tokens', 'dark-modern');
    await t.page.evaluate(() => (window as any).__harness.send({ type: 'selectLayer', layer: 4 }));
    await t.page.waitForFunction(() => (document.getElementById('layer-slider') as HTMLInputElement).value === '4');
    assert.deepEqual((await chart(t, 'chart-tis-hist'))!.datasets[0].data, (() => {
      const h = r.histograms.visual[4].counts;
      const s = h.reduce((a, b) => a + b, 0);
      return h.map((x) => x / s);
    })());
    await t.page.click('#strip-visual .strip-label[data-layer="6"]');
    await t.page.waitForFunction(() => (document.getElementById('layer-slider') as HTMLInputElement).value === '6');
    assert.deepEqual((await t.messages()).filter((m) => m.type === 'selectLayer'), [{ type: 'selectLayer', layer: 6 }]);
    await c.assertClean(t);

    // Gap panel: a partner or pruned layer selects its pair; a click on a bar selects the pruned layer.
    const g = await show(c, 'gap', 'dark-modern');
    const q = r.pairs[r.pairs.length - 1];
    await g.page.evaluate((l) => (window as any).__harness.send({ type: 'selectLayer', layer: l }), q.partner);
    await g.page.waitForFunction((l) => document.body.dataset.selectedLayer === String(l), q.partner);
    assert.match((await g.page.textContent('section:has(#chart-gap-scatter) h2'))!, new RegExp(`L${q.pruned} → L${q.partner}`));
    const bar = await g.page.evaluate(() => {
      const ch = (window as any).Chart.getChart(document.getElementById('chart-gap-rel'));
      const rect = ch.canvas.getBoundingClientRect();
      const e = ch.getDatasetMeta(0).data[0];
      return { x: rect.left + e.x, y: rect.top + (e.y + e.base) / 2 };
    });
    await g.page.mouse.click(bar.x, bar.y);
    await g.page.waitForFunction((l) => document.body.dataset.selectedLayer === String(l), r.pairs[0].pruned);
    assert.deepEqual((await g.messages()).filter((m) => m.type === 'selectLayer').pop(), { type: 'selectLayer', layer: r.pairs[0].pruned });
    await c.assertClean(g);
  });

  test('tables sort by a click on a header (ascending, descending, original order), and keep it across re-renders', async () => {
    const c = get();
    const r = c.fx.report;
    const p = await show(c, 'redundancy', 'dark-modern');
    const order = () => p.page.$$eval('#layer-table tbody tr', (trs) => trs.map((tr) => Number((tr as HTMLElement).dataset.layer)));
    const th = p.page.locator('#layer-table thead th', { hasText: 'cos TIS-kept' });
    const byCos = r.layers.slice().sort((a, b) => a.cosTis - b.cosTis).map((l) => l.index);
    await th.click();
    assert.deepEqual(await order(), byCos);
    assert.equal(await th.getAttribute('aria-sort'), 'ascending');
    await th.click();
    assert.deepEqual(await order(), byCos.slice().reverse());
    // A relayed selection re-renders the panel: the sort stays.
    await p.page.evaluate(() => (window as any).__harness.send({ type: 'selectLayer', layer: 2 }));
    await p.page.waitForFunction(() => document.body.dataset.selectedLayer === '2');
    assert.deepEqual(await order(), byCos.slice().reverse());
    await p.page.locator('#layer-table thead th', { hasText: 'cos TIS-kept' }).click();
    assert.deepEqual(await order(), r.layers.map((l) => l.index));
    // Status (text) sorts alphabetically; ranks with "–" last.
    await p.page.locator('#layer-table thead th', { hasText: 'rank' }).click();
    const ranked = r.layers.filter((l) => l.rank !== null).sort((a, b) => a.rank! - b.rank!).map((l) => l.index);
    assert.deepEqual((await order()).slice(0, ranked.length), ranked);
    await c.assertClean(p);
  });

  test('Copy as CSV and Save PNG on every chart and table: the CSV holds the report\'s numbers, the PNG is a PNG of the chart', async () => {
    const c = get();
    const r = c.fx.report;
    for (const panel of PANELS) {
      const p = await show(c, panel, 'light-modern', withCurve(r));
      const counts = await p.page.evaluate(() => ({
        charts: document.querySelectorAll('.chart-box canvas').length,
        chartBars: Array.from(document.querySelectorAll('.chart-box')).filter((b) => b.previousElementSibling?.classList.contains('export-bar')).length,
        tables: document.querySelectorAll('table.data').length,
        tableBars: Array.from(document.querySelectorAll('table.data')).filter((t) => t.closest('.table-block')?.querySelector(':scope > .export-bar')).length,
      }));
      assert.equal(counts.chartBars, counts.charts, `${panel}: every chart has its export buttons`);
      assert.equal(counts.tableBars, counts.tables, `${panel}: every table has its export buttons`);
      await c.assertClean(p);
    }
    const p = await show(c, 'redundancy', 'light-modern');
    await p.page.click('#csv-chart-redundancy');
    const csv = (await p.messages()).filter((m) => m.type === 'copyText').pop() as unknown as { text: string } | undefined;
    const expect =
      ['decoder layer,TIS-kept tokens (score),All tokens,Text tokens only,Visual tokens only', ...r.layers.map((l) => [l.index, l.cosTis, l.cosAll, l.cosText ?? '', l.cosVisual ?? ''].join(','))].join('\n') + '\n';
    assert.equal(csv?.text, expect);
    await p.page.click('#csv-layer-table');
    const tcsv = ((await p.messages()).filter((m) => m.type === 'copyText').pop() as unknown as { text: string }).text.trim().split('\n');
    assert.equal(tcsv.length, r.layers.length + 1);
    assert.match(tcsv[0], /^layer,status,rank,cos TIS-kept,/);
    const l9 = r.layers[r.removed[0]];
    assert.ok(tcsv[l9.index + 1].startsWith(`${l9.index},pruned,${l9.rank! + 1},${l9.cosTis.toFixed(4)},`), tcsv[l9.index + 1]);
    for (const id of ['png-chart-redundancy', 'png-layer-table']) {
      await p.page.click(`#${id}`);
      const png = (await p.messages()).filter((m) => m.type === 'savePng').pop() as unknown as { dataUri: string; name: string };
      assert.equal(png.name, `${id.slice(4)}.png`);
      const buf = Buffer.from(png.dataUri.replace(/^data:image\/png;base64,/, ''), 'base64');
      assert.equal(buf.subarray(1, 4).toString('latin1'), 'PNG', 'a PNG file');
      const width = buf.readUInt32BE(16);
      if (id === 'png-chart-redundancy') assert.equal(width, await p.page.evaluate(() => (document.getElementById('chart-redundancy') as HTMLCanvasElement).width));
      else assert.ok(width > 300, `table image ${width} px wide`);
    }
    await c.assertClean(p);
  });
}
