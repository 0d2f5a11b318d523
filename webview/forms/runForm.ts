// The prune form and the sweep form: fields prefilled by the host from the settings, parsed
// here with the option table, checked by the engine (checkRun: the model's decoder and family,
// the calibration preview, the output folder, the options against the layer count). Run stays
// disabled, with the reasons listed, until the latest check of the current fields is clean.
// While a job runs the form shows its progress and a Cancel button.

import type { Progress, RunCheck } from '../../src/protocol/engineApi';
import { progressText } from '../../src/protocol/format';
import type { FormFields, FormKind, FormToHost, HostToForm } from '../../src/protocol/messages';
import { h } from '../dom';
import { basename } from '../format';
import { button, checkbox, dropdown, setDisabled, textField } from '../toolkit';
import { ParsedForm, parsePruneForm, parseSweepForm, spec, TARGET_LABELS, TARGETS } from './formModel';

/** Field labels, as the reasons under the Run button name them. */
const LABELS: Record<string, string> = {
  model: 'Model',
  calib: 'Calibration data',
  eval: 'Evaluation data',
  out: 'Output folder',
  ratio: 'Ratio',
  minAgreement: 'Minimum agreement',
  maxKl: 'Maximum KL',
  method: 'Method',
  compensation: 'Compensation',
  samples: 'Calibration samples',
  candidates: 'Candidate layers (setting)',
  layers: 'Layers',
  ratios: 'Ratios',
  methods: 'Methods',
  evalSamples: 'Evaluation items',
  randomSeeds: 'Random seeds',
  exhaustiveLimit: 'Exhaustive limit',
};

/** Engine problems under an option of the pruning section are shown at the target field. */
const FIELD_OF: Record<string, string> = { ratio: 'targetValue', minAgreement: 'targetValue', maxKl: 'targetValue' };

export interface FormState {
  version: 1;
  kind: FormKind;
  fields: FormFields;
}

/** Builds the form on its first fields (the host's defaults, or what a restored webview kept); returns its message handler. */
export function startForm(root: HTMLElement, kind: 'pruneForm' | 'sweepForm', initial: FormFields, post: (m: FormToHost) => void, save: (s: FormState) => void): (m: HostToForm) => void {
  const sweep = kind === 'sweepForm';
  let fields: FormFields = { ...initial };
  let seq = 0;
  let answered = -1;
  let check: RunCheck | undefined;
  let parsed: ParsedForm = (sweep ? parseSweepForm : parsePruneForm)(fields);
  let running = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const inputs = new Map<string, HTMLElement & { value: string }>();

  const set = (name: string, value: string) => {
    fields = { ...fields, [name]: value };
    save({ version: 1, kind, fields });
    changed();
  };

  function changed(): void {
    parsed = (sweep ? parseSweepForm : parsePruneForm)(fields);
    seq++;
    refresh();
    // Typing produces a check per pause, not per key (the engine answers one job at a time).
    clearTimeout(timer);
    const mine = seq;
    timer = setTimeout(() => post({ type: 'check', seq: mine, request: parsed.request }), 250);
  }

  // ---------------------------------------------------------------- fields

  const pathField = (name: string, label: string, folder: boolean, placeholder: string) => {
    const tf = textField(`field-${name}`, fields[name] ?? '', (v) => set(name, v), { placeholder, label });
    tf.classList.add('path');
    inputs.set(name, tf);
    return h(
      'div',
      { class: 'field' },
      h('label', { for: `field-${name}` }, label),
      h('div', { class: 'path-row' }, tf, button('Browse…', () => post({ type: 'browse', field: name, folder, current: fields[name] ?? '' }), { id: `browse-${name}`, title: `Choose the ${label.toLowerCase()}` })),
      h('p', { class: 'field-error', id: `err-${name}`, role: 'alert' }),
    );
  };
  const smallField = (name: string, label: string, placeholder = '') => {
    const tf = textField(`field-${name}`, fields[name] ?? '', (v) => set(name, v), { placeholder, label });
    inputs.set(name, tf);
    return h('div', { class: 'field small' }, h('label', { for: `field-${name}` }, label), tf, h('p', { class: 'field-error', id: `err-${name}`, role: 'alert' }));
  };
  const choice = (name: string, label: string, values: readonly string[]) =>
    h('div', { class: 'field small' }, dropdown(`field-${name}`, label, values.map((v) => ({ value: v, label: v })), fields[name] ?? values[0], (v) => set(name, v)), h('p', { class: 'field-error', id: `err-${name}`, role: 'alert' }));

  const modelFacts = h('dl', { class: 'facts', id: 'model-facts' });
  const calibPreview = h('div', { class: 'calib-preview', id: 'calib-preview' });
  const evalFacts = h('p', { class: 'hint', id: 'eval-facts' });
  const outFacts = h('p', { class: 'hint', id: 'out-facts' });
  const targetHint = h('p', { class: 'hint', id: 'target-hint' });
  const methodsBox = h('div', { class: 'methods', id: 'field-methods', role: 'group', 'aria-label': 'Methods' });
  const reasons = h('ul', { class: 'reasons', id: 'reasons', 'aria-live': 'polite' });
  const progressBox = h('div', { class: 'run-progress', id: 'run-progress', hidden: true });
  const runButton = button(sweep ? 'Run Sweep' : 'Run', () => {
    if (!canRun()) return;
    running = true;
    progressBox.hidden = false;
    progressBox.replaceChildren(h('p', { id: 'progress-text' }, 'starting…'));
    refresh();
    post({ type: 'run', request: parsed.request });
  }, { appearance: 'primary', id: 'run', title: sweep ? 'Start the sweep' : 'Start pruning' });
  const cancelButton = button('Cancel', () => post({ type: 'cancel' }), { id: 'cancel', title: 'Stop the running job' });

  const target = TARGETS.includes(fields.target) ? fields.target : 'ratio';
  const pruning = sweep
    ? null
    : h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Pruning'),
        h(
          'div',
          { class: 'field-row' },
          TARGETS.length > 1
            ? h('div', { class: 'field small' }, dropdown('field-target', 'Stop at', TARGETS.map((t) => ({ value: t, label: TARGET_LABELS[t] ?? t })), target, (v) => {
                targetLabel(v);
                set('target', v);
              }))
            : null,
          smallField('targetValue', 'Value'),
          choice('method', 'Method', spec('method')?.values ?? []),
          spec('compensation')
            ? choice('compensation', 'Compensation', spec('compensation')!.values ?? [])
            : h('div', { class: 'field small' }, checkbox('Subspace compensation (SCP)', fields.scp !== 'false', (c) => set('scp', String(c)), { data: { field: 'scp' } })),
          smallField('samples', 'Calibration samples', 'all'),
        ),
        targetHint,
        h('p', { class: 'hint' }, 'Other options (tokens kept, candidate layers, rank, threads, device) come from the shortLvlm.* settings.'),
      );

  root.replaceChildren(
    ...[
      h('header', { class: 'panel-header' }, h('h1', {}, sweep ? 'Trade-off Sweep' : 'Prune Model'), h('p', { class: 'note' }, sweep ? 'Scores each method at each ratio on the evaluation data from one calibration pass, with random choices as the baseline and every subset of the candidate layers where few enough; the trade-off chart opens when it is done.' : 'Every field is checked by the engine before the run starts; the defaults come from the settings.')),
      h('section', { class: 'card' }, h('h2', {}, 'Model'), pathField('model', 'Model package or .onnx file', false, 'a model folder (config.json + onnx/) or one of its .onnx files'), modelFacts),
      pruning,
      h('section', { class: 'card' }, h('h2', {}, 'Calibration data'), pathField('calib', 'Calibration data (LLaVA conversation JSON / JSONL)', false, 'calib.json'), calibPreview),
      sweep
        ? h(
            'section',
            { class: 'card' },
            h('h2', {}, 'Sweep'),
            pathField('eval', 'Evaluation data (JSONL of {id, image, question, answer})', false, 'eval.jsonl'),
            evalFacts,
            h('div', { class: 'field-row' }, smallField('ratios', 'Ratios to try', '0.1,0.2,0.3,0.4'), smallField('samples', 'Calibration samples', 'all'), smallField('evalSamples', 'Evaluation items', 'all'), smallField('randomSeeds', 'Random seeds', '3'), smallField('exhaustiveLimit', 'Exhaustive limit', '100')),
            h('div', { class: 'field' }, h('label', {}, 'Methods'), methodsBox, h('p', { class: 'field-error', id: 'err-methods', role: 'alert' })),
          )
        : h('section', { class: 'card' }, h('h2', {}, 'Output'), pathField('out', 'Output folder', true, 'default from the shortLvlm.outputFolder setting'), outFacts),
      h('section', { class: 'card run-row' }, h('div', { class: 'run-buttons' }, runButton, cancelButton), reasons, progressBox),
    ].filter((x): x is HTMLElement => x !== null),
  );

  /** The value field is labelled after the target it sets. */
  function targetLabel(t: string): void {
    const label = root.querySelector('label[for="field-targetValue"]');
    if (label) label.textContent = TARGET_LABELS[t] ?? t;
    inputs.get('targetValue')?.setAttribute('aria-label', TARGET_LABELS[t] ?? t);
  }

  function buildMethods(all: string[]): void {
    if (methodsBox.childElementCount) return;
    const chosen = new Set((fields.methods ?? '').split(',').filter(Boolean));
    for (const m of all) {
      methodsBox.append(
        checkbox(m, chosen.has(m), (c) => {
          const now = new Set((fields.methods ?? '').split(',').filter(Boolean));
          if (c) now.add(m);
          else now.delete(m);
          set('methods', all.filter((x) => now.has(x)).join(','));
        }, { data: { method: m } }),
      );
    }
  }

  // ---------------------------------------------------------------- state shown

  const current = () => answered === seq && check !== undefined;

  /** Every reason Run is disabled, each naming its field. */
  function why(): string[] {
    const label = (f: string) => (f === 'targetValue' ? TARGET_LABELS[fields.target] ?? TARGET_LABELS.ratio : LABELS[f] ?? f);
    const out = Object.entries(parsed.errors).map(([f, e]) => `${label(f)}: ${e}`);
    if (!current()) out.push(answered < 0 ? 'Checking the model and the data…' : 'Checking the changes…');
    else for (const p of check!.problems) if (!parsed.errors[FIELD_OF[p.field] ?? p.field]) out.push(`${label(p.field)}: ${p.message}`);
    return out;
  }

  function canRun(): boolean {
    return !running && why().length === 0;
  }

  function refresh(): void {
    const problems = current() ? check!.problems : [];
    for (const el of root.querySelectorAll<HTMLElement>('.field-error')) {
      const f = el.id.slice(4);
      const msgs = [parsed.errors[f], ...problems.filter((p) => (FIELD_OF[p.field] ?? p.field) === f && !parsed.errors[f]).map((p) => p.message)].filter(Boolean);
      // The calibration file's problems are listed in its preview.
      el.textContent = f === 'calib' && problems.some((p) => p.field === 'calib') && check?.calib ? '' : msgs.join(' · ');
    }
    const m = check?.model;
    modelFacts.replaceChildren(
      ...(m
        ? [
            ['decoder pruned', `${m.decoder} (${m.variant})${m.decoderVariants.length ? `, with ${m.decoderVariants.join(', ')}` : ''}`],
            ['family', m.family],
            ['layers', String(m.numLayers)],
            ['layout', m.layout],
          ].map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { 'data-fact': k }, v)))
        : []),
    );
    const c = check?.calib;
    calibPreview.replaceChildren(
      ...(c
        ? [
            h('p', { id: 'calib-count' }, `${c.samples} usable sample${c.samples === 1 ? '' : 's'}${c.records !== c.samples ? ` of ${c.records} records` : ''} (${c.format.toUpperCase()})${c.previews.length ? `; the first ${c.previews.length}:` : ''}`),
            h(
              'div',
              { class: 'thumbs' },
              ...c.previews.map((p) =>
                h('figure', { class: 'thumb', 'data-id': p.id }, p.thumbnail ? h('img', { src: p.thumbnail, alt: p.image ? basename(p.image) : p.id }) : h('div', { class: 'no-image' }, p.image ? basename(p.image) : 'no image'), h('figcaption', {}, p.prompt)),
              ),
            ),
            ...(c.problems.length ? [h('ul', { class: 'problems', id: 'calib-problems' }, ...problems.filter((p) => p.field === 'calib').map((p) => h('li', {}, p.message)))] : []),
          ]
        : []),
    );
    evalFacts.textContent = check?.eval ? `${check.eval.items} evaluation items` : '';
    if (!sweep) {
      outFacts.textContent = check?.out ? `writes ${check.out}` : '';
      const r = parsed.request.options.ratio;
      targetHint.textContent = m && r !== undefined && !parsed.errors.targetValue ? `removes ${Math.max(1, Math.round(r * m.numLayers))} of ${m.numLayers} layers` : '';
    }
    if (sweep && check) buildMethods(check.sweepMethods);
    const list = why();
    reasons.replaceChildren(...(running ? [] : list.length ? [h('li', { class: 'title' }, 'Run is disabled:'), ...list.map((r) => h('li', {}, r))] : []));
    setDisabled(runButton, !canRun());
    setDisabled(cancelButton, !running);
    for (const el of inputs.values()) setDisabled(el, running);
  }

  function showProgress(p: Progress): void {
    const bar = h('progress', { max: String(Math.max(1, p.total)), value: String(p.done) });
    progressBox.hidden = false;
    progressBox.replaceChildren(h('p', { id: 'progress-text' }, progressText(p)), bar);
  }

  if (!sweep) targetLabel(target);
  save({ version: 1, kind, fields });
  changed();
  return (msg: HostToForm) => {
    switch (msg.type) {
      case 'field': {
        const el = inputs.get(msg.field);
        if (el) el.value = msg.value;
        set(msg.field, msg.value);
        return;
      }
      case 'check':
        if (msg.seq !== seq) return; // an answer to fields since changed
        answered = msg.seq;
        check = msg.check;
        refresh();
        return;
      case 'progress':
        if (running) showProgress(msg.progress);
        return;
      case 'runEnded':
        running = false;
        progressBox.hidden = false;
        progressBox.replaceChildren(h('p', { id: 'run-outcome', class: `outcome-${msg.outcome}` }, msg.message));
        changed(); // the output folder now exists, the data may have changed: check again
        return;
      default:
        return;
    }
  };
}

