// Panel 2: token importance scores. Per-layer TIS distributions of visual and text tokens
// (bar chart for the chosen layer + a heat strip across all layers), and one calibration
// sample: its image overlaid with the patch scores, its text tokens coloured by score, the
// tokens kept at that layer outlined.

import type { TooltipItem } from 'chart.js';
import type { Histogram, Report, TokenSample } from '../../src/protocol/report';
import { axisTitle, makeChart } from '../charts';
import { chartBox, h, section } from '../dom';
import { pct, sig } from '../format';
import { alpha, FILL_ALPHA, heat, textOn } from '../theme';
import { dropdown } from '../toolkit';
import { header } from './common';
import type { PanelContext } from './context';

/** Bin range [first, last] holding any count in any layer of either modality (plus one bin of margin). */
export function occupiedBins(r: Report): [number, number] {
  const all = [...r.histograms.visual, ...r.histograms.text];
  let lo = Infinity;
  let hi = -Infinity;
  for (const hst of all)
    hst.counts.forEach((c, i) => {
      if (c > 0) {
        lo = Math.min(lo, i);
        hi = Math.max(hi, i);
      }
    });
  const n = all[0]?.counts.length ?? 0;
  if (!Number.isFinite(lo)) return [0, Math.max(0, n - 1)];
  return [Math.max(0, lo - 1), Math.min(n - 1, hi + 1)];
}

const sum = (a: number[]) => a.reduce((s, x) => s + x, 0);
const share = (hst: Histogram) => {
  const tot = sum(hst.counts);
  return hst.counts.map((c) => (tot ? c / tot : 0));
};

/** A token without the tokenizer's word markers (▁, Ġ) and surrounding spaces. */
const bare = (x: string) => x.replace(/^[\s▁Ġ]+|\s+$/g, '');
const isSpecial = (x: string) => /^<[^<>\s]+>$/.test(x);
const isRole = (x: string, role: string) => x.replace(/:$/, '').toLowerCase() === role;

/**
 * The user's question of a calibration sample, without the answer: the text after the image
 * (or after the last user marker when there is no image) up to the assistant's turn or the
 * first special token that ends the user's turn (</s>, <|im_end|>, <end_of_turn>, ...).
 */
export function question(s: TokenSample): string {
  const toks = s.tokens.map(bare);
  const lastImg = s.isImage.lastIndexOf(1);
  let start = lastImg + 1;
  if (lastImg < 0) {
    const asst = toks.findIndex((t) => isRole(t, 'assistant'));
    const users = toks.slice(0, asst < 0 ? toks.length : asst).flatMap((t, i) => (isRole(t, 'user') ? [i] : []));
    start = users.length ? users[users.length - 1] + 1 : 0;
  }
  const words: string[] = [];
  for (let i = start; i < toks.length; i++) {
    const t = toks[i];
    if (isRole(t, 'assistant') || (isRole(t, 'model') && isSpecial(toks[i - 1] ?? ''))) break;
    if (isSpecial(t)) {
      if (words.length) break;
      continue;
    }
    if (t) words.push(t);
  }
  return words.join(' ').replace(/^[:\s]+/, '').replace(/\s+([?.,!:;])/g, '$1').slice(0, 60);
}

export function renderTokens(root: HTMLElement, ctx: PanelContext): void {
  const r = ctx.report;
  const t = ctx.theme;
  const L = r.model.numLayers;
  const layer = Math.min(L - 1, Math.max(0, ctx.ui.layer ?? r.removed[0] ?? 0));
  const mode = ctx.ui.histMode ?? 'share';
  const removed = new Set(r.removed);
  const status = (l: number) => r.layers[l]?.status ?? 'retained';

  root.append(header(ctx));

  // ---------------------------------------------------------------- layer control (shared)
  const slider = h('input', { type: 'range', id: 'layer-slider', min: 0, max: L - 1, step: 1, value: layer, 'aria-label': 'decoder layer' });
  const out = h('output', { id: 'layer-label', for: 'layer-slider' }, `layer ${layer} (${status(layer)})`);
  slider.addEventListener('input', () => {
    out.textContent = `layer ${slider.value} (${status(Number(slider.value))})`;
  });
  slider.addEventListener('change', () => ctx.selectLayer(Number(slider.value)));
  const layerControl = h('label', { class: 'control slider' }, h('span', {}, 'Layer'), slider, out);

  // ---------------------------------------------------------------- distributions
  const [b0, b1] = occupiedBins(r);
  const edges = r.histograms.visual[0]?.edges ?? r.histograms.text[0]?.edges ?? [];
  const labels = edges.slice(0, -1).map((e) => e.toFixed(2));
  const hv = r.histograms.visual[layer];
  const ht = r.histograms.text[layer];
  const { box, canvas } = chartBox('chart-tis-hist', 280, `TIS distribution at layer ${layer}`);
  const histSection = section(
    'TIS distribution per layer',
    `Token importance scores of every calibration token (${r.calibration.samples} samples) at the chosen layer, in log10 bins. ` +
      `The top ${Math.round(r.options.topP * 100)} % (${r.options.keepMode}) are kept for the redundancy cosine.`,
    h(
      'div',
      { class: 'controls' },
      layerControl,
      dropdown(
        'hist-mode',
        'y axis',
        [
          { value: 'share', label: 'share of modality' },
          { value: 'count', label: 'token count' },
        ],
        mode,
        (v) => ctx.setUi({ histMode: v as 'share' | 'count' }, true),
      ),
    ),
    box,
  );
  root.append(histSection);
  const data = (hst: Histogram | undefined) => (hst ? (mode === 'share' ? share(hst) : hst.counts) : []);
  makeChart(canvas, {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { label: `Visual tokens (${hv ? sum(hv.counts) : 0})`, data: data(hv), backgroundColor: alpha(t.purple, FILL_ALPHA), borderColor: t.purple, borderWidth: 1 },
        { label: `Text tokens (${ht ? sum(ht.counts) : 0})`, data: data(ht), backgroundColor: alpha(t.green, FILL_ALPHA), borderColor: t.green, borderWidth: 1 },
      ],
    },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { min: labels[b0], max: labels[b1], title: axisTitle('log10(TIS), bin lower edge'), grid: { display: false } },
        y: {
          beginAtZero: true,
          title: axisTitle(mode === 'share' ? 'share of the modality’s tokens' : 'tokens (all samples)'),
          ticks: mode === 'share' ? { callback: (v) => `${Math.round(Number(v) * 100)} %` } : { precision: 0 },
        },
      },
      plugins: {
        legend: { position: 'bottom' },
        title: { display: true, text: `Layer ${layer}${removed.has(layer) ? ' (pruned)' : ''}` },
        tooltip: {
          callbacks: {
            title: (items: TooltipItem<'bar'>[]) => {
              const i = items[0]?.dataIndex ?? 0;
              return `TIS in [${sig(10 ** edges[i])}, ${sig(10 ** edges[i + 1])})`;
            },
            label: (item: TooltipItem<'bar'>) => {
              const hst = item.datasetIndex === 0 ? hv : ht;
              const c = hst?.counts[item.dataIndex] ?? 0;
              const tot = hst ? sum(hst.counts) : 0;
              return ` ${item.datasetIndex === 0 ? 'visual' : 'text'}: ${c} tokens (${pct(tot ? c / tot : 0)})`;
            },
          },
        },
      },
    },
  });

  root.append(heatStrips(ctx, layer, b0, b1, edges));

  // ---------------------------------------------------------------- one sample
  root.append(sampleView(ctx, layer));
}

function heatStrips(ctx: PanelContext, layer: number, b0: number, b1: number, edges: number[]): HTMLElement {
  const r = ctx.report;
  const wrap = h('div', { class: 'strips' });
  for (const [name, hists] of [
    ['visual', r.histograms.visual],
    ['text', r.histograms.text],
  ] as const) {
    const shares = hists.map(share);
    const max = Math.max(1e-9, ...shares.flatMap((s) => s.slice(b0, b1 + 1)));
    const grid = h('div', { class: 'strip', id: `strip-${name}`, role: 'grid', 'aria-label': `${name} token TIS distribution per layer` });
    grid.style.gridTemplateColumns = `3.2em repeat(${b1 - b0 + 1}, minmax(6px, 1fr))`;
    shares.forEach((s, l) => {
      const rowLabel = h('div', { class: `strip-label status-${r.layers[l]?.status ?? 'retained'}${l === layer ? ' current' : ''}`, 'data-layer': l }, `L${l}`);
      rowLabel.addEventListener('click', () => ctx.selectLayer(l));
      grid.append(rowLabel);
      for (let b = b0; b <= b1; b++) {
        const cell = h('div', {
          class: `strip-cell${l === layer ? ' current' : ''}`,
          title: `layer ${l}, ${name}: ${pct(s[b])} of tokens with TIS in [${sig(10 ** edges[b])}, ${sig(10 ** edges[b + 1])})`,
          'data-layer': l,
        });
        cell.style.backgroundColor = s[b] > 0 ? alpha(name === 'visual' ? ctx.theme.purple : ctx.theme.green, 0.12 + 0.88 * Math.sqrt(s[b] / max)) : 'transparent';
        cell.addEventListener('click', () => ctx.selectLayer(l));
        grid.append(cell);
      }
    });
    const axis = h('div', { class: 'strip-axis' }, h('span', {}, edges[b0]?.toFixed(1) ?? ''), h('span', {}, 'log10(TIS) →'), h('span', {}, edges[b1 + 1]?.toFixed(1) ?? ''));
    wrap.append(h('figure', {}, h('figcaption', {}, `${name === 'visual' ? 'Visual' : 'Text'} tokens`), grid, axis));
  }
  return section(
    'Distributions across layers',
    'Each row is a layer, each cell a log10(TIS) bin; stronger colour = larger share of that modality’s tokens (square-root scale). Pruned layers are labelled in red; click a row to select it.',
    wrap,
  );
}

function sampleView(ctx: PanelContext, layer: number): HTMLElement {
  const r = ctx.report;
  const samples = r.tokenSamples ?? [];
  if (!samples.length) return section('Calibration sample', 'The report holds no token samples.');
  const si = Math.min(samples.length - 1, Math.max(0, ctx.ui.sample ?? 0));
  const s = samples[si];
  const tis = s.tis[layer] ?? [];
  const kept = new Set(s.kept[layer] ?? []);
  const opacity = ctx.ui.overlay ?? 0.55;
  const logs = tis.map((x) => Math.log10(Math.max(x, 1e-12)));
  const order = tis.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]);
  const rankOf = new Map(order.map(([, i], k) => [i, k + 1]));
  const imgIdx = s.isImage.map((v, i) => (v ? i : -1)).filter((i) => i >= 0);
  const txtIdx = s.isImage.map((v, i) => (v ? -1 : i)).filter((i) => i >= 0);
  // Patches and text tokens each on their own log colour scale: visual scores sit far below text
  // scores, and the spatial pattern is what the overlay is for.
  const scale = (idx: number[]) => {
    const v = idx.map((i) => logs[i]).filter((x) => Number.isFinite(x));
    const lo = v.length ? Math.min(...v) : 0;
    const hi = v.length ? Math.max(...v) : 1;
    return { lo, hi, norm: (i: number) => (hi > lo ? (logs[i] - lo) / (hi - lo) : 0.5) };
  };
  const vs = scale(imgIdx);
  const ts = scale(txtIdx);

  const picker = dropdown(
    'sample-select',
    'Sample',
    samples.map((x, i) => ({ value: String(i), label: `${x.id}: ${question(x)}` })),
    String(si),
    (v) => ctx.setUi({ sample: Number(v) }, true),
  );
  const opacityInput = h('input', { type: 'range', id: 'overlay-opacity', min: 0, max: 1, step: 0.05, value: opacity, 'aria-label': 'heat map opacity' });
  const opacityCtl = h('label', { class: 'control slider' }, h('span', {}, 'Overlay'), opacityInput);

  // image + patch grid
  const [rows, cols] = s.imageGrid ?? [0, 0];
  const figure = h('div', { class: 'patch-figure', id: 'patch-figure' });
  const img = h('img', { class: 'sample-image', alt: `calibration image ${s.id}` });
  const placeholder = h('div', { class: 'image-placeholder' }, s.image ? 'Loading image…' : 'No image recorded for this sample');
  const setImage = (uri: string) => {
    img.src = uri;
    figure.classList.add('has-image');
    placeholder.remove();
  };
  figure.append(img, placeholder);
  const overlay = h('div', { class: 'patch-grid', id: 'patch-grid' });
  const keptVisual = imgIdx.filter((i) => kept.has(i)).length;
  if (rows > 0 && cols > 0) {
    overlay.style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
    overlay.style.gridTemplateRows = `repeat(${rows}, 1fr)`;
    for (let k = 0; k < rows * cols; k++) {
      const ti = imgIdx[k];
      const cell = h('div', {
        class: `heat-cell${ti !== undefined && kept.has(ti) ? ' kept' : ''}`,
        'data-token': ti ?? -1,
        title: ti === undefined ? 'no token' : `patch (${Math.floor(k / cols)}, ${k % cols}) · token ${ti} · TIS ${sig(tis[ti])} · rank ${rankOf.get(ti)}/${tis.length}${kept.has(ti) ? ' · kept' : ''}`,
      });
      if (ti !== undefined) cell.style.backgroundColor = heat(vs.norm(ti), opacity);
      overlay.append(cell);
    }
    figure.append(overlay);
  }
  opacityInput.addEventListener('input', () => {
    const a = Number(opacityInput.value);
    overlay.querySelectorAll<HTMLElement>('.heat-cell').forEach((c) => {
      const ti = Number(c.dataset.token);
      if (ti >= 0) c.style.backgroundColor = heat(vs.norm(ti), a);
    });
  });
  opacityInput.addEventListener('change', () => ctx.setUi({ overlay: Number(opacityInput.value) }));
  if (s.image) {
    const uri = ctx.image(si);
    if (uri) setImage(uri);
    else {
      ctx.onImage((n, u) => {
        if (n === si) setImage(u);
      });
      window.setTimeout(() => {
        if (!figure.classList.contains('has-image')) placeholder.textContent = 'Image not available';
      }, 4000);
    }
  }
  const colorbar = (lo: number, hi: number, what: string) => {
    const bar = h('div', { class: 'colorbar' });
    bar.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map((x) => heat(x)).join(', ')})`;
    return h('div', { class: 'colorbar-wrap' }, h('span', {}, sig(10 ** lo)), bar, h('span', {}, sig(10 ** hi)), h('span', { class: 'hint' }, `${what} TIS (log colour scale)`));
  };
  const legend = colorbar(vs.lo, vs.hi, 'visual-token');

  // text tokens
  const text = h('div', { class: 'token-text', id: 'token-text' });
  let inImage = false;
  s.tokens.forEach((tok, i) => {
    if (s.isImage[i]) {
      if (inImage) return;
      inImage = true;
      text.append(h('span', { class: 'tok image-chip', title: `${imgIdx.length} image tokens, ${keptVisual} kept at layer ${layer}` }, `<image ×${imgIdx.length}>`));
      return;
    }
    inImage = false;
    const bg = heat(ts.norm(i), 0.9);
    const span = h('span', { class: `tok${kept.has(i) ? ' kept' : ''}`, 'data-token': i, title: `token ${i} “${tok}” · TIS ${sig(tis[i])} · rank ${rankOf.get(i)}/${tis.length}${kept.has(i) ? ' · kept' : ''}` }, tok);
    span.style.backgroundColor = bg;
    span.style.color = textOn(heat(ts.norm(i)));
    text.append(span);
  });

  const keptText = kept.size - keptVisual;
  const stats = h('p', { class: 'stats', id: 'sample-stats' }, `Layer ${layer}: ${kept.size} of ${tis.length} tokens kept (${keptVisual} visual of ${imgIdx.length}, ${keptText} text). Outlined = kept.`);
  return section(
    'Calibration sample',
    'Patch scores over the image (visual tokens in raster order on the encoder grid) and the text tokens coloured by score, each on its own log scale; outlined tokens are kept at this layer.',
    h('div', { class: 'controls' }, picker, opacityCtl),
    h('div', { class: 'sample' }, h('div', {}, figure, legend), h('div', { class: 'sample-text' }, stats, text, colorbar(ts.lo, ts.hi, 'text-token'))),
  );
}
