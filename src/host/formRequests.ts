// What a run form's request becomes: the engine's check and the job itself. Pure (no
// `vscode` import) so the panel tests answer a form's checks exactly as the host does.

import * as path from 'path';
import type { CheckRunArgs, RunOptions, SweepArgs } from '../protocol/engineApi';
import type { FormRequest } from '../protocol/messages';
import type { PruneOptions } from '../protocol/report';

/**
 * The engine check of a form's request. `base` holds the options from the settings (the
 * form shows only some; the others still apply), `out` the output folder the run will write.
 */
export function checkArgsOf(r: FormRequest, base: Partial<PruneOptions> = {}, out?: string): CheckRunArgs {
  const options = { ...base, ...r.options };
  if (r.kind === 'sweep') return { kind: 'sweep', model: r.model, calib: r.calib, eval: r.eval, ratios: r.ratios, methods: r.methods, evalSamples: r.evalSamples, options };
  return { kind: 'prune', model: r.model, calib: r.calib, out: r.out ?? out, options };
}

export function sweepArgsOf(r: FormRequest, run: RunOptions = {}): SweepArgs {
  return {
    model: r.model,
    calib: r.calib,
    eval: r.eval ?? '',
    ratios: r.ratios ?? [],
    methods: r.methods,
    samples: r.options.samples,
    evalSamples: r.evalSamples,
    randomSeeds: r.randomSeeds,
    exhaustiveLimit: r.exhaustiveLimit,
    ...run,
  };
}

/** The request with relative paths taken from `base` (the workspace folder), as settings' paths are. */
export function withAbsolutePaths(r: FormRequest, base: string | undefined): FormRequest {
  const abs = (p: string | undefined) => (p && base && !path.isAbsolute(p) ? path.join(base, p) : p);
  return { ...r, model: abs(r.model)!, calib: abs(r.calib)!, eval: abs(r.eval), out: abs(r.out) };
}
