// File and folder names that the engine writes and the host and webviews look for, defined
// once: the report and recipe beside a pruned package, how an output folder is named after the
// options that made it, and the prefixes of the temporary folders the engine may leave behind
// only when its process is killed (so the host can remove them).

import { DEFAULT_PRUNE_OPTIONS } from './options';
import { resolveCompensation, type PruneOptions } from './report';

export const REPORT_FILE = 'short-lvlm-report.json';
export const RECIPE_FILE = 'recipe.json';

/** `<model>-short-lvlm-<tag>`: the default output folder name beside the model folder. */
export const OUTPUT_INFIX = '-short-lvlm-';

/** A pruned package is written into `.<output name>.partial-XXXXXX` and renamed when complete. */
export const PARTIAL_INFIX = '.partial-';

/** Instrumented copies of a decoder for calibration live in `short-lvlm-session-XXXXXX` folders. */
export const SESSION_PREFIX = 'short-lvlm-session-';

/** The temporary sibling prefix of an output folder named `outName`. */
export function partialPrefix(outName: string): string {
  return `.${outName}${PARTIAL_INFIX}`;
}

/**
 * The tag naming a run's output: `svl-r0.3`, `cosine-r0.2-noscp`, `greedy-budget-a0.95`, `greedy-r0.3-ls`,
 * `greedy-r0.3-ls` for a calibrated choice,
 * `l3-5` / `l3-5-scp` for a hand-made one (with or without compensation).
 */
export function outputTag(o: Partial<PruneOptions>): string {
  if (o.layers?.length) return `l${o.layers.join('-')}${o.scp === false ? '' : '-scp'}`;
  const amount = o.minAgreement !== undefined || o.maxKl !== undefined ? `budget${o.minAgreement !== undefined ? `-a${o.minAgreement}` : ''}${o.maxKl !== undefined ? `-kl${o.maxKl}` : ''}` : `r${o.ratio ?? DEFAULT_PRUNE_OPTIONS.ratio}`;
  const method = o.method ?? DEFAULT_PRUNE_OPTIONS.method;
  // A suffix only when the compensation is not the method's own (SCP for svl and the baselines, none for greedy).
  const comp = resolveCompensation(o);
  const suffix = comp === resolveCompensation({ method }) ? '' : comp === 'scp' ? '-scp' : comp === 'ls' ? '-ls' : '-noscp';
  return `${method}-${amount}${suffix}`;
}

/** The tag of a package re-made from a recipe. */
export function recipeTag(removed: number[]): string {
  return `recipe-l${removed.join('-')}`;
}

/** `tiny-llava` + `svl-r0.3` -> `tiny-llava-short-lvlm-svl-r0.3`. */
export function outputName(modelName: string, tag: string): string {
  return `${modelName}${OUTPUT_INFIX}${tag}`;
}

/** Whether a folder name is one of our outputs (not offered as a model to prune). */
export function isOutputName(name: string): boolean {
  return name.includes(OUTPUT_INFIX);
}
