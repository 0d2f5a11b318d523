// "Copy as CSV" and "Save PNG" for every chart and table, and tables sorted by a click on a
// column header. The clipboard and the save dialog belong to the host (copyText / savePng):
// a webview has no file system and its clipboard access depends on focus.

import type { Chart } from 'chart.js';
import { h } from './dom';
import { readTheme } from './theme';
import { button } from './toolkit';
import { post } from './vscodeApi';

/** One CSV field: quoted when it holds a comma, a quote or a line break. */
export function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const csvLines = (rows: unknown[][]): string => rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n';

const axisText = (chart: Chart, id: string): string => {
  const t = (chart.options.scales?.[id] as { title?: { text?: unknown } } | undefined)?.title?.text;
  return Array.isArray(t) ? t.join(' ') : t ? String(t) : id;
};

/**
 * A chart's data: a category chart gives one row per category and one column per series; an
 * x/y chart (scatter) one row per point with its series. Numbers at full precision.
 */
export function chartCsv(chart: Chart): string {
  const labels = (chart.data.labels ?? []) as unknown[];
  const sets = chart.data.datasets;
  const xy = sets.some((d) => (d.data as unknown[]).some((v) => v !== null && typeof v === 'object'));
  if (xy) {
    const rows: unknown[][] = [['series', axisText(chart, 'x'), axisText(chart, 'y')]];
    for (const d of sets) for (const p of d.data as ({ x: number; y: number } | null)[]) if (p) rows.push([d.label ?? '', p.x, p.y]);
    return csvLines(rows);
  }
  const rows: unknown[][] = [[axisText(chart, 'x'), ...sets.map((d) => d.label ?? '')]];
  labels.forEach((l, i) => rows.push([l, ...sets.map((d) => (d.data as unknown[])[i] ?? '')]));
  return csvLines(rows);
}

/** A table's header and body as text (raw values from data-csv when `raw`), without columns that hold only controls (checkboxes). */
function tableRows(table: HTMLTableElement, raw: boolean): string[][] {
  const head = [...table.querySelectorAll('thead th')].map((th) => (th.textContent ?? '').replace(/[▲▼]/g, '').trim());
  const keep = head.map((t) => t !== '');
  const body = [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => (raw ? (td as HTMLElement).dataset.csv : undefined) ?? (td.textContent ?? '').trim()));
  return [head, ...body].map((r) => r.filter((_, i) => keep[i]));
}

export const tableCsv = (table: HTMLTableElement): string => csvLines(tableRows(table, true));

/** The chart drawn on the editor's background colour (a transparent PNG is unreadable on the other theme). */
export function chartPng(chart: Chart): string {
  const holder = chart as unknown as { $exportBg?: string };
  holder.$exportBg = readTheme().bg;
  chart.draw();
  try {
    return chart.toBase64Image('image/png', 1);
  } finally {
    delete holder.$exportBg;
    chart.draw();
  }
}

/** Fills the canvas with the background first while a PNG is being taken. */
export const exportBackground = {
  id: 'exportBackground',
  beforeDraw(chart: Chart) {
    const bg = (chart as unknown as { $exportBg?: string }).$exportBg;
    if (!bg) return;
    const ctx = chart.ctx;
    ctx.save();
    ctx.globalCompositeOperation = 'destination-over';
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, chart.width, chart.height);
    ctx.restore();
  },
};

/** A table drawn cell by cell on a canvas, in the theme's colours. */
export function tablePng(table: HTMLTableElement): string {
  const t = readTheme();
  const rows = tableRows(table, false);
  const font = `${t.fontSize}px ${t.fontFamily}`;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d')!;
  ctx.font = `bold ${font}`;
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r, i) => ((ctx.font = i === 0 ? `bold ${font}` : font), ctx.measureText(r[c] ?? '').width))) + 20);
  const rowH = Math.round(t.fontSize * 1.8);
  canvas.width = Math.ceil(widths.reduce((a, b) => a + b, 0)) + 2;
  canvas.height = rowH * rows.length + 2;
  ctx.fillStyle = t.bg;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.textBaseline = 'middle';
  rows.forEach((r, i) => {
    let x = 1;
    ctx.font = i === 0 ? `bold ${font}` : font;
    ctx.fillStyle = i === 0 ? t.muted : t.fg;
    r.forEach((cell, c) => {
      ctx.fillText(cell, x + 10, 1 + i * rowH + rowH / 2);
      x += widths[c];
    });
    ctx.fillStyle = t.border;
    ctx.fillRect(1, 1 + (i + 1) * rowH - 1, canvas.width - 2, 1);
  });
  return canvas.toDataURL('image/png');
}

function exportBar(name: string, csv: () => string, png: () => string, what: string): HTMLElement {
  return h(
    'div',
    { class: 'export-bar', 'data-for': name },
    button('Copy as CSV', () => post({ type: 'copyText', text: csv(), what }), { title: `Copy the ${what}'s data as CSV`, id: `csv-${name}` }),
    button('Save PNG', () => post({ type: 'savePng', dataUri: png(), name: `${name}.png` }), { title: `Save the ${what} as a PNG image`, id: `png-${name}` }),
  );
}

/** Puts the export buttons above a chart's box (called for every chart the panels make). */
export function attachChartExport(chart: Chart): void {
  const canvas = chart.canvas;
  const box = canvas.closest('.chart-box');
  if (!box || box.previousElementSibling?.classList.contains('export-bar')) return;
  box.before(exportBar(canvas.id, () => chartCsv(chart), () => chartPng(chart), 'chart'));
}

/** Cell value for sorting: data-sort when given, else the number in the text, else the text. */
function sortKey(td: Element | undefined): number | string {
  const el = td as HTMLElement | undefined;
  if (!el) return '';
  if (el.dataset.sort !== undefined) return Number(el.dataset.sort);
  const text = (el.textContent ?? '').trim();
  const n = parseFloat(text.replace(/−/g, '-').replace(/^[^\d+-.]+/, ''));
  return Number.isFinite(n) ? n : text.toLowerCase();
}

export interface SortState {
  col: number;
  desc: boolean;
}

function applySort(table: HTMLTableElement, s: SortState | undefined): void {
  const ths = [...table.querySelectorAll<HTMLElement>('thead th')];
  ths.forEach((th, i) => {
    th.setAttribute('aria-sort', s && s.col === i ? (s.desc ? 'descending' : 'ascending') : 'none');
    const mark = th.querySelector('.sort-mark');
    if (mark) mark.textContent = s && s.col === i ? (s.desc ? ' ▼' : ' ▲') : '';
  });
  const body = table.tBodies[0];
  if (!body) return;
  const rows = [...body.rows];
  const original = rows.slice().sort((a, b) => Number(a.dataset.order) - Number(b.dataset.order));
  if (!s) return body.append(...original);
  const key = (r: HTMLTableRowElement) => sortKey(r.cells[s.col]);
  // Numbers before text ("–" for a missing value sorts last either way).
  const cmp = (a: number | string, b: number | string) => (typeof a === 'number' && typeof b === 'number' ? a - b : typeof a === 'number' ? -1 : typeof b === 'number' ? 1 : a.localeCompare(b));
  original.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (typeof ka !== typeof kb) return cmp(ka, kb);
    return s.desc ? cmp(kb, ka) : cmp(ka, kb);
  });
  body.append(...original);
}

/**
 * A data table with its export buttons and sortable headers (click: ascending, again:
 * descending, a third time: the table's own order). The sort survives re-renders through
 * `remember`.
 */
export function dataTable(table: HTMLTableElement, sort: SortState | undefined, remember: (s: SortState | undefined) => void): HTMLElement {
  const name = table.id || 'table';
  [...(table.tBodies[0]?.rows ?? [])].forEach((r, i) => (r.dataset.order = String(i)));
  let state = sort;
  table.querySelectorAll<HTMLElement>('thead th').forEach((th, i) => {
    if (!(th.textContent ?? '').trim()) return;
    th.classList.add('sortable');
    th.tabIndex = 0;
    th.append(h('span', { class: 'sort-mark', 'aria-hidden': 'true' }));
    const toggle = () => {
      state = !state || state.col !== i ? { col: i, desc: false } : !state.desc ? { col: i, desc: true } : undefined;
      applySort(table, state);
      remember(state);
    };
    th.addEventListener('click', toggle);
    th.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        toggle();
      }
    });
  });
  applySort(table, state);
  return h('div', { class: 'table-block' }, exportBar(name, () => tableCsv(table), () => tablePng(table), 'table'), h('div', { class: 'table-wrap' }, table));
}
