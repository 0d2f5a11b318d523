// The run forms' fields, parsed with the protocol's option table (values, bounds and the
// one-line errors of the CLI and the settings): text in, a FormRequest and the errors per
// field out. A quality budget or a compensation choice appears as soon as the option table
// has it, without a change here.

import type { FormFields, FormRequest } from '../../src/protocol/messages';
import { allowedText, OptionError, OptionSpec, parseNumberValue, parseSpecValue, PRUNE_OPTION_SPECS, RATIO_RANGE } from '../../src/protocol/options';

const SPECS = PRUNE_OPTION_SPECS as Record<string, OptionSpec>;

/** What stops a prune: a share of the layers, or (when the table has them) a quality budget. */
export const TARGETS = ['ratio', 'minAgreement', 'maxKl'].filter((k) => SPECS[k]);

export const TARGET_LABELS: Record<string, string> = {
  ratio: 'Share of layers removed',
  minAgreement: 'Quality budget: minimum agreement',
  maxKl: 'Quality budget: maximum KL (nats)',
};

/** The spec of an option the table may or may not have (compensation arrives with issue 10). */
export const spec = (key: string): OptionSpec | undefined => SPECS[key];

export interface ParsedForm {
  request: FormRequest;
  /** Field name -> what is wrong with its text. */
  errors: Record<string, string>;
}

function parser(errors: Record<string, string>) {
  return <T>(field: string, f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      errors[field] = e instanceof OptionError ? e.detail : String((e as Error).message);
      return undefined;
    }
  };
}

/** An optional count: empty means "all" / the engine's default. */
function optionalInt(text: string | undefined, min: number): number | undefined {
  const t = (text ?? '').trim();
  return t ? parseNumberValue('', { kind: 'integer', min }, t) : undefined;
}

function paths(f: FormFields, fields: string[], errors: Record<string, string>): void {
  for (const k of fields) if (!(f[k] ?? '').trim()) errors[k] = 'required';
}

export function parsePruneForm(f: FormFields): ParsedForm {
  const errors: Record<string, string> = {};
  const parse = parser(errors);
  paths(f, ['model', 'calib'], errors);
  const options: Record<string, unknown> = {};
  const target = TARGETS.includes(f.target) ? f.target : 'ratio';
  const value = parse('targetValue', () => parseSpecValue(SPECS[target], (f.targetValue ?? '').trim(), target));
  if (value !== undefined) options[target] = value;
  const method = parse('method', () => parseSpecValue(SPECS.method, f.method ?? '', 'method'));
  if (method !== undefined) options.method = method;
  const comp = spec('compensation');
  if (comp) {
    const c = parse('compensation', () => parseSpecValue(comp, f.compensation ?? '', 'compensation'));
    // `unset` (e.g. auto): the engine decides, as with the setting.
    if (c !== undefined && c !== comp.unset) options.compensation = c;
  } else options.scp = f.scp !== 'false';
  const samples = parse('samples', () => optionalInt(f.samples, SPECS.samples.min ?? 1));
  if (samples !== undefined) options.samples = samples;
  const out = (f.out ?? '').trim();
  return { request: { kind: 'prune', model: f.model?.trim() ?? '', calib: f.calib?.trim() ?? '', out: out || undefined, options }, errors };
}

export function parseSweepForm(f: FormFields): ParsedForm {
  const errors: Record<string, string> = {};
  const parse = parser(errors);
  paths(f, ['model', 'calib', 'eval'], errors);
  const ratioSpec = { kind: 'number' as const, ...RATIO_RANGE };
  const ratios = parse('ratios', () => {
    const list = (f.ratios ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    if (!list.length) throw new Error(`give one or more ratios, each ${allowedText({ ...ratioSpec, flag: '', help: '' })}`);
    return [...new Set(list.map((r) => parseNumberValue('ratios', ratioSpec, r)))].sort((a, b) => a - b);
  });
  const methods = (f.methods ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  if (!methods.length) errors.methods = 'choose at least one method';
  const samples = parse('samples', () => optionalInt(f.samples, 1));
  const request: FormRequest = {
    kind: 'sweep',
    model: f.model?.trim() ?? '',
    calib: f.calib?.trim() ?? '',
    eval: f.eval?.trim() ?? '',
    options: samples !== undefined ? { samples } : {},
    ratios,
    methods,
    evalSamples: parse('evalSamples', () => optionalInt(f.evalSamples, 1)),
    randomSeeds: parse('randomSeeds', () => optionalInt(f.randomSeeds, 0)),
    exhaustiveLimit: parse('exhaustiveLimit', () => optionalInt(f.exhaustiveLimit, 0)),
  };
  return { request, errors };
}
