// Header shared by all panels: what model, what was removed, and links to the other panels.

import { PANEL_KINDS, PANEL_TITLES } from '../../src/protocol/messages';
import type { Report } from '../../src/protocol/report';
import { resolveCompensation } from '../../src/protocol/report';
import { h } from '../dom';
import { basename, bytes, layerList } from '../format';
import { button } from '../toolkit';
import type { PanelContext } from './context';

export { PANEL_TITLES };

function modelName(r: Report): string {
  return basename(r.model?.root ?? 'model');
}

export function header(ctx: PanelContext): HTMLElement {
  const r = ctx.report;
  const o = r.options;
  const L = r.model.numLayers;
  const facts: [string, string][] = [
    ['layers', `${L} → ${r.output?.numLayers ?? L - r.removed.length}`],
    ['removed', `${layerList(r.removed)} (${Math.round((r.removed.length / L) * 100)} %)`],
    ['method', methodFact(r)],
    ['tokens kept', `${o.keepMode === 'nucleus' ? 'nucleus ' : 'top '}${Math.round(o.topP * 100)} %`],
    ['calibration', `${r.calibration.samples} samples, ${r.calibration.tokensMean.toFixed(0)} tokens (${r.calibration.visualTokensMean.toFixed(0)} visual)`],
    ['size', r.output?.bytes ? bytes(r.output.bytes) : '–'],
  ];
  const nav = h('nav', { class: 'nav', 'aria-label': 'Other panels' });
  for (const p of PANEL_KINDS) {
    if (p === ctx.panel) continue;
    nav.append(button(PANEL_TITLES[p], () => ctx.openPanel(p), { title: `Open the ${PANEL_TITLES[p].toLowerCase()} panel`, id: `open-${p}` }));
  }
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of facts) dl.append(h('div', {}, h('dt', {}, k), h('dd', {}, v)));
  const warnings = r.warnings?.length ? h('ul', { class: 'warnings' }, ...r.warnings.map((w) => h('li', {}, w))) : null;
  return h(
    'header',
    { class: 'panel-header' },
    h('div', { class: 'title-row' }, h('h1', {}, `${PANEL_TITLES[ctx.panel]} `, h('span', { class: 'model', title: r.model.root }, `· ${modelName(r)}`)), nav),
    dl,
    warnings,
  );
}

/** The method and the compensation actually applied (after any held-out fall-back). */
function methodFact(r: Report): string {
  const o = r.options;
  const comp = r.compensationCheck && !r.compensationCheck.applied ? 'none' : resolveCompensation(o);
  const c = comp === 'scp' ? ` + SCP (${o.scpTarget}, rank ${r.pairs[0]?.rank ?? o.rank ?? 'auto'})` : comp === 'ls' ? ' + least squares' : ', no compensation';
  return `${o.method}${c}${o.method === 'svl' ? ' (the paper\'s)' : o.method === 'greedy' ? ' (output-aware, not the paper\'s)' : ''}`;
}

export function empty(title: string, ...lines: (string | HTMLElement)[]): HTMLElement {
  return h('div', { class: 'empty-state', role: 'status' }, h('h2', {}, title), ...lines.map((l) => (typeof l === 'string' ? h('p', {}, l) : l)));
}

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `badge status-${status}` }, status);
}
