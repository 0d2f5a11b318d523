// The pruning options, defined once: their values, defaults and allowed ranges, the command-line
// flag and the VS Code setting of each, and the one parser that turns a flag's or a setting's
// text into a value (with a one-line error naming the option and what it allows). The CLI
// builds its flags and help from this table, the host reads its settings through it, the
// engine takes its defaults from it, and a test holds package.json's settings to it. A new
// option is one entry here.

import type { PruneOptions } from './report';

/** `greedy` (the default) measures what removing layers does to the answers; `svl` is the paper's method. */
export const METHODS = ['greedy', 'svl', 'cosine', 'text', 'visual', 'random'] as const;
/** `scp`: the paper's subspace projection; `ls`: least-squares map (ReplaceMe-like); `none`. */
export const COMPENSATIONS = ['scp', 'ls', 'none'] as const;
export const EXECUTIONS = ['auto', 'whole', 'layerwise'] as const;
export const DEVICES = ['cpu', 'cuda', 'dml', 'coreml'] as const;
export const SCP_TARGETS = ['down_proj', 'o_proj', 'input'] as const;
export const KEEP_MODES = ['count', 'nucleus'] as const;
export const FEATURE_MODES = ['kept', 'all', 'last'] as const;

/** Fraction of the decoder layers removed: round(ratio x L) layers, ratio in (0, 0.5]. */
export const RATIO_RANGE = { min: 0, max: 0.5, minExclusive: true } as const;

/** No model has this many decoder layers; a larger index is a typo, refused before any allocation. */
export const MAX_LAYER_INDEX = 99_999;

export type OptionKind = 'number' | 'integer' | 'enum' | 'flag' | 'range' | 'layers';

export interface OptionSpec {
  kind: OptionKind;
  /** Command-line flag without the dashes; a `flag` kind is written as `--no-X` when it turns a default on off. */
  flag: string;
  /** `shortLvlm.<setting>` in VS Code, when the extension exposes the option. */
  setting?: string;
  /** Allowed values of an enum. */
  values?: readonly string[];
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** A value that means "let the engine decide" (e.g. `auto`): accepted, then left out of the options. */
  unset?: string;
  /** Value name in the help text (`--ratio r`). */
  arg?: string;
  help: string;
}

/** Every option of PruneOptions that a user can set, keyed by its PruneOptions field. */
export const PRUNE_OPTION_SPECS = {
  ratio: { kind: 'number', flag: 'ratio', setting: 'ratio', ...RATIO_RANGE, arg: 'r', help: 'remove round(r x L) decoder layers' },
  method: { kind: 'enum', flag: 'method', setting: 'method', values: METHODS, help: 'how layers are scored for redundancy' },
  scp: { kind: 'flag', flag: 'no-scp', setting: 'scp', help: 'skip subspace-compensated pruning (SCP)' },
  compensation: { kind: 'enum', flag: 'compensation', setting: 'compensation', values: ['auto', ...COMPENSATIONS], unset: 'auto', help: 'how removed layers are compensated (auto: SCP for the paper\'s method and its baselines, none for greedy)' },
  scpTarget: { kind: 'enum', flag: 'scp-target', setting: 'scpTarget', values: SCP_TARGETS, help: 'the weights that absorb the compensation' },
  topP: { kind: 'number', flag: 'top-p', setting: 'topP', min: 0, max: 1, minExclusive: true, arg: 'p', help: 'share of tokens kept by token importance' },
  keepMode: { kind: 'enum', flag: 'keep', setting: 'keepMode', values: KEEP_MODES, help: 'top-p by token count or by importance mass' },
  rank: { kind: 'integer', flag: 'rank', setting: 'rank', min: 1, arg: 'k', help: 'SVD rank of the compensation (default max(1, round(hidden / 64)))' },
  features: { kind: 'enum', flag: 'features', setting: 'features', values: FEATURE_MODES, help: 'the token features SCP is fitted on' },
  candidates: { kind: 'range', flag: 'candidates', setting: 'candidates', arg: 'a-b', help: 'inclusive range of layers that may be removed (default the last half)' },
  samples: { kind: 'integer', flag: 'samples', setting: 'samples', min: 1, arg: 'n', help: 'calibration samples used (default all)' },
  seed: { kind: 'integer', flag: 'seed', arg: 's', help: 'seed of the random method' },
  layers: { kind: 'layers', flag: 'layers', arg: 'list', help: 'remove exactly these layers (0-based), e.g. 3,5 or 10-12' },
  minAgreement: { kind: 'number', flag: 'min-agreement', min: 0, max: 1, minExclusive: true, arg: 'a', help: 'quality budget instead of a ratio: keep held-out top-1 agreement >= a' },
  maxKl: { kind: 'number', flag: 'max-kl', min: 0, arg: 'k', help: 'quality budget instead of a ratio: keep held-out mean KL <= k nats' },
  holdout: { kind: 'number', flag: 'holdout', min: 0, max: 1, maxExclusive: true, arg: 'f', help: 'share of calibration samples held out to measure skip cost (default 0.25)' },
  topM: { kind: 'integer', flag: 'top-m', min: 1, arg: 'm', help: 'greedy: try only the top-m remaining candidates by TIS cosine each round' },
  lsRidge: { kind: 'number', flag: 'ls-ridge', min: 0, arg: 'a', help: 'least-squares ridge relative to the mean diagonal of X^T X' },
  lsRank: { kind: 'integer', flag: 'ls-rank', min: 1, arg: 'k', help: 'least-squares map as identity plus a rank-k correction (default full)' },
} satisfies Partial<Record<keyof PruneOptions, OptionSpec>>;

export type PruneOptionKey = keyof typeof PRUNE_OPTION_SPECS;

/**
 * Options of how a job runs rather than of the method (not part of PruneOptions or the report):
 * fields of the EngineApi's job arguments, flags of every command that runs a model.
 */
export const RUN_OPTION_SPECS = {
  threads: { kind: 'integer', flag: 'threads', setting: 'threads', min: 0, arg: 'n', help: "onnxruntime's intra-op threads (0: its own choice)" },
  device: { kind: 'enum', flag: 'device', setting: 'device', values: DEVICES, help: 'onnxruntime execution provider; cuda, dml and coreml need a matching onnxruntime-node (README, GPUs)' },
  execution: { kind: 'enum', flag: 'execution', setting: 'execution', values: EXECUTIONS, help: 'calibration: whole decoder graph, one layer at a time, or auto (by decoder size and free memory)' },
} satisfies Record<string, OptionSpec>;

export type RunOptionKey = keyof typeof RUN_OPTION_SPECS;

/** Run options with a named default (the others default to "let the engine decide"). */
export const DEFAULT_RUN_OPTIONS = { device: 'cpu', execution: 'auto' } as const;

export const DEFAULT_PRUNE_OPTIONS: PruneOptions = {
  ratio: 0.3,
  // Chosen from the sweeps on two models (README, "Choosing the default"); svl is the paper's method.
  method: 'greedy',
  scp: true,
  scpTarget: 'down_proj',
  topP: 0.1,
  keepMode: 'count',
  features: 'kept',
  seed: 0,
};

/** A bad option value. `option` is the PruneOptions field (or a flag name) so each front end can name it its own way. */
export class OptionError extends Error {
  constructor(
    readonly option: string,
    readonly detail: string,
  ) {
    super(`${option}: ${detail}`);
    this.name = 'OptionError';
  }
}

type Bounds = Pick<OptionSpec, 'kind' | 'min' | 'max' | 'minExclusive' | 'maxExclusive'>;

function describeBounds(s: Bounds): string {
  const what = s.kind === 'integer' ? 'an integer' : 'a number';
  if (s.min !== undefined && s.max !== undefined) return `${what} in ${s.minExclusive ? '(' : '['}${s.min}, ${s.max}${s.maxExclusive ? ')' : ']'}`;
  if (s.min !== undefined) return s.kind === 'integer' && s.min === 1 && !s.minExclusive ? 'a positive integer' : `${what} ${s.minExclusive ? '>' : '>='} ${s.min}`;
  if (s.max !== undefined) return `${what} ${s.maxExclusive ? '<' : '<='} ${s.max}`;
  return what;
}

/** What a value of this option may be, in words (for errors and help). */
export function allowedText(s: OptionSpec): string {
  switch (s.kind) {
    case 'enum':
      return `one of ${s.values!.join(', ')}`;
    case 'range':
      return 'a layer range like 8-15';
    case 'layers':
      return 'layer indices or ranges like 3,5 or 10-12';
    case 'flag':
      return 'no value';
    default:
      return describeBounds(s);
  }
}

/** A decimal integer that is exactly representable (no 20-digit index turned into 1e19). */
function safeInteger(text: string): number | undefined {
  if (!/^[+-]?\d{1,16}$/.test(text)) return undefined;
  const x = Number(text);
  return Number.isSafeInteger(x) ? x : undefined;
}

export function parseNumberValue(name: string, s: Bounds, text: string): number {
  const t = text.trim();
  const x = s.kind === 'integer' ? safeInteger(t) : t === '' ? NaN : Number(t);
  const inRange =
    x !== undefined &&
    Number.isFinite(x) &&
    (s.min === undefined || (s.minExclusive ? x > s.min : x >= s.min)) &&
    (s.max === undefined || (s.maxExclusive ? x < s.max : x <= s.max));
  if (!inRange) throw new OptionError(name, `must be ${describeBounds(s)}, got "${text}"`);
  return x!;
}

/** "8-15" -> [8, 15]: two safe non-negative integers, first <= last. */
export function parseRange(name: string, text: string): [number, number] {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  const a = m ? safeInteger(m[1]) : undefined;
  const b = m ? safeInteger(m[2]) : undefined;
  if (a === undefined || b === undefined || a > MAX_LAYER_INDEX || b > MAX_LAYER_INDEX) throw new OptionError(name, `must be a layer range like 8-15, got "${text}"`);
  if (b < a) throw new OptionError(name, `"${text}" is an empty range (write ${b}-${a})`);
  return [a, b];
}

/**
 * "3,5,10-12" -> [3, 5, 10, 11, 12]: every index a safe integer no larger than MAX_LAYER_INDEX
 * (checked before a range is expanded), sorted, without repeats. The model's own range is
 * checked by the engine against its layer count.
 */
export function parseLayerList(name: string, text: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!m) throw new OptionError(name, `"${part}" is not a layer index or range (e.g. 3,5 or 10-12)`);
    const a = safeInteger(m[1]);
    const b = m[2] === undefined ? a : safeInteger(m[2]);
    for (const [x, raw] of [[a, m[1]], [b, m[2] ?? m[1]]] as const) {
      if (x === undefined || x > MAX_LAYER_INDEX) throw new OptionError(name, `${raw.length > 12 ? `${raw.slice(0, 12)}...` : raw} is not a layer index (0 to ${MAX_LAYER_INDEX})`);
    }
    if (b! < a!) throw new OptionError(name, `"${part}" is an empty range (write ${b}-${a})`);
    for (let i = a!; i <= b!; i++) out.add(i);
  }
  if (!out.size) throw new OptionError(name, 'needs at least one layer index');
  return [...out].sort((x, y) => x - y);
}

/** Parses an option's text (a flag's argument or a string setting) as its spec allows. */
export function parseSpecValue(s: OptionSpec, text: string, name: string): string | number | number[] {
  switch (s.kind) {
    case 'enum':
      if (!s.values!.includes(text)) throw new OptionError(name, `must be ${allowedText(s)}, got "${text}"`);
      return text;
    case 'range':
      return parseRange(name, text);
    case 'layers':
      return parseLayerList(name, text);
    case 'flag':
      throw new OptionError(name, 'takes no value');
    default:
      return parseNumberValue(name, s, text);
  }
}

/** Parses one PruneOptions field from text. */
export function parseOption<K extends PruneOptionKey>(key: K, text: string, name: string = key): PruneOptions[K] {
  return parseSpecValue(PRUNE_OPTION_SPECS[key], text, name) as PruneOptions[K];
}

/**
 * The pruning options from settings, through this table: every option with a setting is read
 * and checked as the CLI checks its flag; 0 and "" mean "let the engine decide" and are left
 * out. `get(setting, default)` reads one setting; errors name `${prefix}${setting}`.
 */
export function optionsFromSettings(
  get: (setting: string, dflt: unknown) => unknown,
  prefix = '',
  table: Record<string, OptionSpec> = PRUNE_OPTION_SPECS,
  defaults: Record<string, unknown> = { ...DEFAULT_PRUNE_OPTIONS },
): Partial<PruneOptions> {
  const o: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    if (!spec.setting) continue;
    const name = `${prefix}${spec.setting}`;
    const value = get(spec.setting, defaults[key]);
    if (value === undefined || value === '' || value === 0 || value === (spec as OptionSpec).unset) continue;
    if (spec.kind === 'flag') {
      if (typeof value !== 'boolean') throw new OptionError(name, `must be true or false, got ${JSON.stringify(value)}`);
      o[key] = value;
    } else o[key] = parseSpecValue(spec, String(value), name);
  }
  return o as Partial<PruneOptions>;
}

/**
 * The checks that need the model: layer indices and the candidate range within its L layers,
 * the ratio removing at least one layer and no more than the candidates hold. Run before any
 * calibration so that a bad choice costs nothing. Errors name the PruneOptions field.
 */
export function checkAgainstModel(o: PruneOptions, numLayers: number): void {
  const last = numLayers - 1;
  if (o.layers?.length) {
    const missing = o.layers.filter((l) => l > last);
    if (missing.length) throw new OptionError('layers', `layer ${missing[0]} does not exist (the model has layers 0-${last})`);
    if (o.layers.length >= numLayers) throw new OptionError('layers', `cannot remove all ${numLayers} layers`);
    return;
  }
  const [lo, hi] = o.candidates ?? (o.method === 'greedy' ? outputAwareCandidates(numLayers) : defaultCandidates(numLayers));
  if (hi > last || lo > hi) throw new OptionError('candidates', `${lo}-${hi} is outside the model's layers 0-${last}`);
  // A quality budget replaces the ratio: as many layers go as the budget allows.
  if (o.minAgreement !== undefined || o.maxKl !== undefined) return;
  const n = layersToRemove(o.ratio, numLayers);
  if (n > hi - lo + 1) throw new OptionError('ratio', `${o.ratio} removes ${n} of ${numLayers} layers but the candidate range ${lo}-${hi} holds ${hi - lo + 1}; widen the range or lower the ratio`);
}

/** Default candidate range: the last half of the decoder. */
export function defaultCandidates(numLayers: number): [number, number] {
  return [Math.floor(numLayers / 2), numLayers - 1];
}

/**
 * Candidates of the output-aware greedy method: every layer but the first and the last (as in
 * SLEB). It measures what removal does, so it needs no prior that late layers are redundant; on
 * the bundled model the widest range kept 86.5 % at 40 % against 73.8 for the best subset of the
 * last half (README, "Choosing the default").
 */
export function outputAwareCandidates(numLayers: number): [number, number] {
  return numLayers >= 4 ? [1, numLayers - 2] : defaultCandidates(numLayers);
}

/** How many layers a ratio removes: round(ratio x L), at least one. */
export function layersToRemove(ratio: number, numLayers: number): number {
  const { min, max } = RATIO_RANGE;
  if (!(ratio > min && ratio <= max)) throw new OptionError('ratio', `must be a number in (${min}, ${max}], got ${ratio}`);
  const n = Math.round(ratio * numLayers);
  if (n < 1) throw new OptionError('ratio', `${ratio} of ${numLayers} layers removes no layer; use at least ${(0.5 / numLayers).toFixed(3)}`);
  return n;
}
