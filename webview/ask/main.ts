// "Ask both models": pick an image (calibration set, workspace, or a file), type a question,
// and see the original's and the pruned model's greedy answers side by side. Every answer
// token is a chip; hovering or focusing it shows that step's top-k next-token probabilities
// in both columns (the pruned model's on the original's context when the chip is the
// original's), and the KL divergence of the two distributions. The question, the image and
// the last answer survive a reload (webview state).

import type { AskResult, AskStep, TokenProb } from '../../src/protocol/engineApi';
import { ASK_OPTION_SPECS, DEFAULT_ASK_OPTIONS } from '../../src/protocol/options';
import { ASK_TITLE, AskImage, AskTarget, AskToHost, HostToAsk } from '../../src/protocol/messages';
import { h } from '../dom';
import { basename, layerList, sig } from '../format';
import { button, dropdown, registerToolkit, setDisabled } from '../toolkit';
import { ASK_CSS } from './style';

interface AskState {
  version: 1;
  target?: AskTarget;
  images: AskImage[];
  image?: string;
  question: string;
  maxNewTokens: number;
  topK: number;
  result?: AskResult;
}

declare function acquireVsCodeApi(): { postMessage(m: unknown): void; getState(): unknown; setState(s: unknown): void };
const api =
  typeof acquireVsCodeApi === 'function' ? acquireVsCodeApi() : { postMessage: (m: unknown) => console.debug('[short-lvlm] no host:', m), getState: () => undefined, setState: () => undefined };
const post = (m: AskToHost) => api.postMessage(m);

const saved = api.getState() as AskState | undefined;
let state: AskState = saved?.version === 1 ? saved : { version: 1, images: [], question: '', ...DEFAULT_ASK_OPTIONS };
let running = false;
let status: { text: string; error?: boolean } | undefined;
const previews = new Map<string, string>();
const root = document.getElementById('app') ?? document.body.appendChild(h('main', { id: 'app' }));

const persist = () => api.setState(state);
const pct = (p: number) => (p >= 0.001 ? `${(100 * p).toFixed(1)} %` : `${sig(100 * p, 2)} %`);
/** Token text with whitespace and control characters made visible. */
const shown = (t: string) => (t === '' ? '∅' : t.replace(/\n/g, '⏎').replace(/ /g, '·'));

function setup(): HTMLElement {
  const t = state.target!;
  const choices = state.images.map((i) => ({ value: i.path, label: `${i.source === 'calibration' ? 'calibration' : i.source === 'workspace' ? 'workspace' : 'chosen'} · ${i.label}` }));
  if (!state.image && state.images.length) state.image = state.images[0].path;
  const picker = choices.length
    ? dropdown('ask-image', 'Image', choices, state.image ?? '', (v) => {
        state.image = v;
        const img = state.images.find((i) => i.path === v);
        if (img?.question && !state.question) state.question = img.question;
        persist();
        render();
      })
    : h('span', { class: 'hint' }, 'No calibration or workspace images found: browse for one.');
  const question = h('textarea', { id: 'ask-question', rows: 2, 'aria-label': 'Question', placeholder: 'Ask about the image, e.g. What colour is the square?' }) as HTMLTextAreaElement;
  question.value = state.question;
  question.addEventListener('input', () => {
    state.question = question.value;
    persist();
    setDisabled(askBtn, running || !canAsk());
  });
  question.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      ask();
    }
  });
  const number = (id: string, label: string, key: 'maxNewTokens' | 'topK') => {
    const b = { ...ASK_OPTION_SPECS[key], default: DEFAULT_ASK_OPTIONS[key] };
    const input = h('input', { id, type: 'number', min: b.min, max: b.max, step: 1, value: state[key], 'aria-label': label }) as HTMLInputElement;
    input.addEventListener('change', () => {
      const v = Math.round(Number(input.value));
      state[key] = Number.isFinite(v) ? Math.min(b.max, Math.max(b.min, v)) : b.default;
      input.value = String(state[key]);
      persist();
    });
    return h('label', { class: 'control' }, h('span', {}, label), input);
  };
  const askBtn = button(running ? 'Asking…' : 'Ask both models', ask, { appearance: 'primary', id: 'ask-run', title: 'Greedy answers of both models (Enter)' });
  setDisabled(askBtn, running || !canAsk());
  const cancelBtn = button('Cancel', () => post({ type: 'askCancel' }), { id: 'ask-cancel', title: 'Stop the question in the engine' });
  setDisabled(cancelBtn, !running);
  const preview = state.image ? previews.get(state.image) : undefined;
  if (state.image && !preview) post({ type: 'askPreview', path: state.image });
  const chosen = state.images.find((i) => i.path === state.image);
  return h(
    'section',
    { class: 'card ask-setup' },
    h(
      'div',
      { class: 'ask-form' },
      h(
        'div',
        { class: 'ask-fields' },
        h('div', { class: 'controls' }, picker, button('Browse…', () => post({ type: 'askBrowse' }), { id: 'ask-browse', title: 'Pick an image file' })),
        chosen?.question ? h('p', { class: 'hint' }, 'Calibration question: ', h('button', { class: 'linklike', id: 'ask-use-calib', onclick: () => ((state.question = chosen.question!), persist(), render()) }, chosen.question)) : null,
        question,
        h('div', { class: 'controls' }, number('ask-max-tokens', 'New tokens at most', 'maxNewTokens'), number('ask-top-k', 'Top-k', 'topK'), askBtn, cancelBtn),
        h('p', { id: 'ask-status', class: status?.error ? 'ask-error' : 'hint', role: 'status' }, status?.text ?? `Greedy decoding in the engine process; the models load one at a time. Target: ${basename(t.pruned)}.`),
      ),
      h('figure', { class: 'ask-preview' }, preview ? h('img', { src: preview, alt: `the image asked about: ${basename(state.image!)}` }) : h('div', { class: 'image-placeholder' }, state.image ? 'loading image…' : 'no image'), state.image ? h('figcaption', {}, basename(state.image)) : null),
    ),
  );
}

function canAsk(): boolean {
  return Boolean(state.target && state.image && state.question.trim());
}

function ask(): void {
  if (running || !canAsk()) return;
  running = true;
  status = { text: 'Starting…' };
  post({ type: 'ask', image: state.image!, question: state.question.trim(), maxNewTokens: state.maxNewTokens, topK: state.topK });
  render();
}

function topTable(top: TokenProb[], chosen: number | undefined, caption: string): HTMLElement {
  const max = Math.max(...top.map((t) => t.p), 1e-12);
  return h(
    'table',
    { class: 'data ask-top' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', {}, 'token'), h('th', { class: 'num' }, 'p'), h('th', {}, ''))),
    h(
      'tbody',
      {},
      ...top.map((t) => {
        const bar = h('span', { class: 'ask-bar' });
        bar.style.width = `${Math.max(1, (100 * t.p) / max)}%`;
        return h('tr', { class: t.id === chosen ? 'ask-chosen' : '' }, h('td', { class: 'mono', title: JSON.stringify(t.text) }, shown(t.text)), h('td', { class: 'num' }, pct(t.p)), h('td', { class: 'ask-bar-cell' }, bar));
      }),
    ),
  );
}

/** The step shown in detail; `side` is whose chip it is (the other column follows). */
let focus: { side: 'original' | 'pruned'; step: number } = { side: 'original', step: 0 };

function answers(r: AskResult): HTMLElement {
  const t = state.target!;
  const detail = h('div', { class: 'grid2 ask-detail', id: 'ask-detail' });
  const drawDetail = () => {
    const i = focus.step;
    const o = r.original.steps[i];
    const p = r.pruned.steps[i];
    const along = focus.side === 'original' && i < r.prunedAlongOriginal.length;
    detail.replaceChildren(
      o ? topTable(o.top, focus.side === 'original' ? o.id : undefined, `Original, step ${i + 1}: top ${o.top.length}`) : h('p', { class: 'hint' }, `The original stopped before step ${i + 1}.`),
      along
        ? topTable(r.prunedAlongOriginal[i], p?.id, `Pruned, step ${i + 1} ${i === 0 ? 'on the same prompt' : "after the original's tokens"}: top ${r.prunedAlongOriginal[i].length}`)
        : p
          ? topTable(p.top, p.id, `Pruned, step ${i + 1} of its own answer: top ${p.top.length}`)
          : h('p', { class: 'hint' }, `The pruned model stopped before step ${i + 1}.`),
    );
    for (const c of root.querySelectorAll<HTMLElement>('.ask-chip')) c.classList.toggle('current', c.dataset.side === focus.side && Number(c.dataset.step) === i);
    klLine.textContent = i < r.kl.steps.length ? `KL(original ‖ pruned) at step ${i + 1}: ${sig(r.kl.steps[i])} nats` : `Step ${i + 1} is past the original's answer: no KL`;
  };
  const klLine = h('p', { class: 'ask-kl-step', id: 'ask-kl-step' });
  const chips = (side: 'original' | 'pruned', steps: AskStep[]) =>
    h(
      'div',
      { class: 'ask-chips', role: 'list', 'aria-label': `${side} answer tokens` },
      ...steps.map((s, i) => {
        const chip = h('span', { class: `tok ask-chip${s.eos ? ' eos' : ''}`, role: 'listitem', tabindex: 0, 'data-side': side, 'data-step': i, title: `${JSON.stringify(s.text)} ${pct(s.p)}; top: ${s.top.map((x) => `${JSON.stringify(x.text)} ${pct(x.p)}`).join(', ')}` }, s.eos ? `end ${pct(s.p)}` : `${shown(s.text)}`);
        const show = () => {
          focus = { side, step: i };
          drawDetail();
        };
        chip.addEventListener('mouseenter', show);
        chip.addEventListener('focus', show);
        return chip;
      }),
    );
  const column = (side: 'original' | 'pruned') => {
    const a = r[side];
    const layers = side === 'original' ? `${a.numLayers} layers` : `${a.numLayers} layers${t.removed?.length ? `, removed ${layerList(t.removed)}` : ''}`;
    const differs = r.original.text.trim() !== r.pruned.text.trim();
    return h(
      'section',
      { class: `card ask-answer ${side}`, id: `ask-${side}` },
      h('h2', {}, side === 'original' ? 'Original' : 'Pruned', h('span', { class: 'hint' }, ` · ${basename(a.model)} · ${layers}`)),
      h('p', { class: `ask-text${differs ? ' differs' : ''}`, id: `ask-${side}-text` }, a.text.trim() || '(no answer: end of sequence at once)'),
      chips(side, a.steps),
      h('p', { class: 'hint' }, `${a.stop === 'limit' ? 'stopped at the token limit' : a.stop === 'eos' ? 'ended by end-of-sequence' : 'stopped at a newline'} · load ${Math.round(a.loadMs)} ms · answer ${Math.round(a.prefillMs + a.decodeMs)} ms`),
    );
  };
  const summary = h(
    'section',
    { class: 'card ask-summary' },
    h('h2', {}, 'How far apart'),
    h('p', { class: 'hint', id: 'ask-asked' }, `Asked about ${basename(r.image)}: “${r.question}”`),
    h(
      'dl',
      { class: 'facts' },
      h('div', {}, h('dt', {}, 'KL first token'), h('dd', { id: 'ask-kl-first' }, `${sig(r.kl.first)} nats`)),
      h('div', {}, h('dt', {}, `KL mean, ${r.kl.steps.length} step${r.kl.steps.length === 1 ? '' : 's'}`), h('dd', { id: 'ask-kl-mean' }, `${sig(r.kl.mean)} nats`)),
      h('div', {}, h('dt', {}, 'same answer'), h('dd', { id: 'ask-same' }, r.original.text.trim() === r.pruned.text.trim() ? 'yes' : 'no')),
    ),
    h('p', { class: 'hint' }, "KL(original ‖ pruned) of the next-token distributions along the original's answer (the pruned model reads the original's tokens). Hover or focus a token for its step."),
    klLine,
    detail,
  );
  queueMicrotask(drawDetail);
  return h('div', { class: 'ask-results' }, h('div', { class: 'grid2' }, column('original'), column('pruned')), summary, ...(r.warnings ?? []).map((w) => h('p', { class: 'ask-error' }, w)));
}

function render(): void {
  root.replaceChildren();
  if (!state.target) {
    root.append(h('div', { class: 'empty-state' }, h('h2', {}, ASK_TITLE), h('p', {}, 'Waiting for the models from the extension…')));
    return;
  }
  const t = state.target;
  root.append(
    h(
      'header',
      { class: 'panel-header' },
      h('div', { class: 'title-row' }, h('h1', {}, `${ASK_TITLE} `, h('span', { class: 'model', title: `${t.original}\n${t.pruned}` }, `· ${basename(t.original)} vs ${basename(t.pruned)}`))),
      h(
        'dl',
        { class: 'facts' },
        h('div', {}, h('dt', {}, 'original'), h('dd', { title: t.original }, `${basename(t.original)}${t.originalLayers ? ` (${t.originalLayers} layers)` : ''}`)),
        h('div', {}, h('dt', {}, 'pruned'), h('dd', { title: t.pruned }, `${basename(t.pruned)}${t.prunedLayers ? ` (${t.prunedLayers} layers)` : ''}`)),
        t.removed ? h('div', {}, h('dt', {}, 'removed'), h('dd', {}, layerList(t.removed))) : null,
      ),
    ),
    setup(),
  );
  if (state.result) root.append(answers(state.result));
}

window.addEventListener('message', (ev: MessageEvent<HostToAsk>) => {
  const m = ev.data;
  if (!m || typeof m !== 'object') return;
  switch (m.type) {
    case 'askSetup': {
      const same = state.target && state.target.original === m.target.original && state.target.pruned === m.target.pruned;
      state = { ...state, target: m.target, images: m.images, ...(same ? {} : { result: undefined }) };
      if (state.image && !m.images.some((i) => i.path === state.image)) state.image = undefined;
      if (!state.image && m.images.length) {
        state.image = m.images[0].path;
        if (!state.question) state.question = m.images[0].question ?? '';
      }
      persist();
      render();
      return;
    }
    case 'askImage':
      previews.set(m.path, m.dataUri);
      if (m.path === state.image) render();
      return;
    case 'askProgress':
      status = { text: `${m.stage}… (${m.done}/${m.total})` };
      root.querySelector('#ask-status')!.textContent = status.text;
      return;
    case 'askAnswer':
      running = false;
      status = { text: `Answered in ${Math.round(m.result.original.loadMs + m.result.original.prefillMs + m.result.original.decodeMs + m.result.pruned.loadMs + m.result.pruned.prefillMs + m.result.pruned.decodeMs)} ms.` };
      state.result = m.result;
      focus = { side: 'original', step: 0 };
      persist();
      render();
      document.body.dataset.answers = String(Number(document.body.dataset.answers ?? 0) + 1);
      return;
    case 'askFailed':
      running = false;
      status = m.cancelled ? { text: 'Cancelled.' } : { text: m.message, error: true };
      render();
      document.body.dataset.failures = String(Number(document.body.dataset.failures ?? 0) + 1);
      return;
  }
});

const sheet = new CSSStyleSheet();
sheet.replaceSync(ASK_CSS);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
registerToolkit();
render();
post({ type: 'ready' });
