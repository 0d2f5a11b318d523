#!/usr/bin/env node
// Command-line twin of the extension: the same engine jobs, driven from a terminal.

import { parseArgs } from 'node:util';
import * as fs from 'fs';
import * as path from 'path';
import { attachBenchmark, toBenchmarkReport } from './engine/bench/attach';
import { formatInspect, inspectModel } from './engine/commands/inspect';
import { benchJob, pruneJob } from './engine/jobs';
import { formatBenchTable } from './engine/bench/format';
import { sweepJob } from './engine/bench/sweep';
import { stderrProgress } from './engine/progress';
import { DEVICES } from './engine/runtime/device';
import { EXECUTIONS } from './engine/runtime/execution';
import { PruneOptions } from './protocol/report';

const USAGE = `usage: npm run --silent cli -- <command> [options]

commands:
  inspect <model> [--json]
      Layout, files, decoder layers and the weights found in each.

  prune <model> --calib <file> [--ratio 0.3] [--method svl|greedy|cosine|text|visual|random]
        [--compensation scp|ls|none] [--no-scp] [--scp-target down_proj|o_proj|input]
        [--min-agreement 0.95] [--max-kl K] [--holdout 0.25] [--top-m M] [--ls-ridge A]
        [--ls-rank K] [--top-p 0.1] [--keep count|nucleus]
        [--rank K] [--features kept|all|last] [--candidates 8-15] [--samples N] [--seed S]
        [--out <dir>] [--overwrite] [--threads N] [--execution auto|whole|layerwise]
        [--device cpu|cuda|dml|coreml] [--json]
      Short-LVLM: token importance scores, layer redundancy, removal of round(ratio x L)
      layers and subspace-compensated pruning (--method svl). --method greedy chooses by
      the measured output change instead; --min-agreement / --max-kl replace the ratio by
      a quality budget measured on held-out calibration samples. Writes a package with
      short-lvlm-report.json and recipe.json. --execution layerwise runs the decoder one
      layer at a time (for models larger than memory; auto picks it from the decoder size
      and free memory). A killed calibration resumes when the same command is run again.
  prune <model> --layers 3,5 --no-scp [--out <dir>]
      Remove exactly these layers (0-based original indices); add --calib instead of
      --no-scp to compensate them.
  prune <model> --recipe <recipe.json> [--out <dir>]
      Re-apply a recorded pruning without calibration.

  bench <model> [<model> ...] --eval <file> [--samples N] [--threads N] [--device D] [--json] [--no-save]
      Accuracy per family, relative accuracy, next-token agreement and KL against the first
      model, samples per second and size. Stored in each model's short-lvlm-report.json
      when it has one (unless --no-save).

  sweep <model> --calib <file> --eval <file> [--ratios 0.1,0.2,0.3,0.4]
        [--methods svl,svl-noscp,cosine,cosine-scp,text,visual] [--random-seeds 3]
        (also: svl-ls, greedy, greedy-ls, greedy-scp, greedy-wide, greedy-wide-ls)
        [--exhaustive-limit 100] [--samples N] [--eval-samples N] [--device D] [--out <file.json>]
      The paper's ablation on this model: methods x ratios, random dropping and, where
      small enough, every subset of the candidate layers.

<model> is a model folder, or any .onnx / config file inside it. --device picks the onnxruntime
execution provider (cpu by default; cuda, dml and coreml need a matching onnxruntime-node).`;

class UsageError extends Error {}

function parseLayers(s: string): number[] {
  const out: number[] = [];
  for (const p of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw new UsageError(`--layers: "${p}" is not a layer index or range (e.g. 3,5 or 10-12)`);
    const [a, b] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (b < a) throw new UsageError(`--layers: "${p}" is an empty range (write ${b}-${a})`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  if (!out.length) throw new UsageError('--layers needs at least one index');
  return [...new Set(out)].sort((x, y) => x - y);
}

function parseNumber(name: string, v: string | undefined, check: (x: number) => boolean, what: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || !check(x)) throw new UsageError(`--${name} must be ${what}, got "${v}"`);
  return x;
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T;
}

const PRUNE_FLAGS = {
  calib: { type: 'string' },
  ratio: { type: 'string' },
  method: { type: 'string' },
  'no-scp': { type: 'boolean' },
  compensation: { type: 'string' },
  'min-agreement': { type: 'string' },
  'max-kl': { type: 'string' },
  holdout: { type: 'string' },
  'top-m': { type: 'string' },
  'ls-ridge': { type: 'string' },
  'ls-rank': { type: 'string' },
  'scp-target': { type: 'string' },
  'top-p': { type: 'string' },
  keep: { type: 'string' },
  rank: { type: 'string' },
  features: { type: 'string' },
  candidates: { type: 'string' },
  samples: { type: 'string' },
  seed: { type: 'string' },
  layers: { type: 'string' },
  recipe: { type: 'string' },
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
  threads: { type: 'string' },
  execution: { type: 'string' },
  device: { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
} as const;

function pruneOptions(v: Record<string, string | boolean | undefined>): Partial<PruneOptions> {
  const s = (k: string) => v[k] as string | undefined;
  const o: Partial<PruneOptions> = {};
  const ratio = parseNumber('ratio', s('ratio'), (x) => x > 0 && x <= 0.5, 'a number in (0, 0.5]');
  if (ratio !== undefined) o.ratio = ratio;
  const method = oneOf('method', s('method'), ['svl', 'greedy', 'cosine', 'text', 'visual', 'random'] as const);
  if (method) o.method = method;
  if (v['no-scp']) o.scp = false;
  const comp = oneOf('compensation', s('compensation'), ['scp', 'ls', 'none'] as const);
  if (comp) {
    if (v['no-scp'] && comp !== 'none') throw new UsageError(`--no-scp contradicts --compensation ${comp}`);
    o.compensation = comp;
    o.scp = comp === 'scp';
  } else if (v['no-scp']) o.compensation = 'none';
  const minAgreement = parseNumber('min-agreement', s('min-agreement'), (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  if (minAgreement !== undefined) o.minAgreement = minAgreement;
  const maxKl = parseNumber('max-kl', s('max-kl'), (x) => x >= 0, 'a non-negative number');
  if (maxKl !== undefined) o.maxKl = maxKl;
  if ((minAgreement !== undefined || maxKl !== undefined) && s('ratio') !== undefined) throw new UsageError('--ratio and a quality budget (--min-agreement / --max-kl) exclude each other');
  const holdout = parseNumber('holdout', s('holdout'), (x) => x >= 0 && x < 1, 'a number in [0, 1)');
  if (holdout !== undefined) o.holdout = holdout;
  const topM = parseNumber('top-m', s('top-m'), (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (topM !== undefined) o.topM = topM;
  const ridge = parseNumber('ls-ridge', s('ls-ridge'), (x) => x >= 0, 'a non-negative number');
  if (ridge !== undefined) o.lsRidge = ridge;
  const lsRank = parseNumber('ls-rank', s('ls-rank'), (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (lsRank !== undefined) o.lsRank = lsRank;
  const target = oneOf('scp-target', s('scp-target'), ['down_proj', 'o_proj', 'input'] as const);
  if (target) o.scpTarget = target;
  const topP = parseNumber('top-p', s('top-p'), (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  if (topP !== undefined) o.topP = topP;
  const keep = oneOf('keep', s('keep'), ['count', 'nucleus'] as const);
  if (keep) o.keepMode = keep;
  const rank = parseNumber('rank', s('rank'), (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (rank !== undefined) o.rank = rank;
  const features = oneOf('features', s('features'), ['kept', 'all', 'last'] as const);
  if (features) o.features = features;
  if (s('candidates')) {
    const m = /^(\d+)-(\d+)$/.exec(s('candidates')!);
    if (!m) throw new UsageError('--candidates must be a range like 8-15');
    o.candidates = [Number(m[1]), Number(m[2])];
  }
  const samples = parseNumber('samples', s('samples'), (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (samples !== undefined) o.samples = samples;
  const seed = parseNumber('seed', s('seed'), Number.isInteger, 'an integer');
  if (seed !== undefined) o.seed = seed;
  if (s('layers')) o.layers = parseLayers(s('layers')!);
  return o;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 2;
  }
  if (command === 'inspect') {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { json: { type: 'boolean' } } });
    if (positionals.length !== 1) throw new UsageError('inspect takes one model path');
    const r = inspectModel(positionals[0]);
    process.stdout.write((values.json ? JSON.stringify(r) : formatInspect(r)) + '\n');
    return 0;
  }
  if (command === 'prune') {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: PRUNE_FLAGS });
    if (positionals.length !== 1) throw new UsageError('prune takes one model path');
    const options = pruneOptions(values);
    if (!values.calib && !values.recipe && !(options.layers && values['no-scp'])) {
      throw new UsageError(options.layers ? 'with --layers, pass --no-scp (or --calib to compensate)' : 'prune needs --calib <file> (or --layers ... --no-scp, or --recipe)');
    }
    const threads = parseNumber('threads', values.threads, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
    const execution = oneOf('execution', values.execution, EXECUTIONS);
    const device = oneOf('device', values.device, DEVICES);
    const r = await pruneJob(
      { model: positionals[0], calib: values.calib, out: values.out, overwrite: values.overwrite, recipe: values.recipe, threads, execution, device, options },
      { onProgress: stderrProgress(values.quiet), log: values.quiet ? undefined : (line) => process.stderr.write(`${line}\n`) },
    );
    if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const lines: string[] = [];
      if (r.skipCost?.length) {
        lines.push('measured skip cost (one layer skipped; held-out calibration samples, first answer token):');
        lines.push(...r.skipCost.map((c) => `  layer ${String(c.layer).padStart(2)}  KL ${c.kl.toFixed(4)}  agreement ${(100 * c.agreement).toFixed(1)} %`));
      }
      if (r.note) lines.push(`method: ${r.note}`);
      if (r.compensationNote) lines.push(`compensation: ${r.compensationNote}`);
      const comp = r.compensation === 'scp' ? ' + SCP' : r.compensation === 'ls' ? ' + least squares' : '';
      lines.push(`removed layers ${r.removed.join(', ')} (${r.method}${comp}): ${r.numLayers} layers remain`, `wrote ${r.out}`);
      process.stdout.write(lines.join('\n') + '\n');
    }
    return 0;
  }
  if (command === 'bench') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { eval: { type: 'string' }, samples: { type: 'string' }, threads: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' }, 'no-save': { type: 'boolean' } },
    });
    if (!positionals.length) throw new UsageError('bench takes one or more model paths');
    if (!values.eval) throw new UsageError('bench needs --eval <file> (JSONL of {id, image, question, answer})');
    const samples = parseNumber('samples', values.samples, (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
    const threads = parseNumber('threads', values.threads, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
    const rows = await benchJob({ models: positionals, eval: values.eval, samples, threads, device: oneOf('device', values.device, DEVICES) }, { onProgress: stderrProgress(values.quiet) });
    if (values.json) for (const r of rows) process.stdout.write(JSON.stringify({ ...r, answers: undefined }) + '\n');
    else process.stdout.write(formatBenchTable(rows) + '\n');
    if (!values['no-save']) {
      // Pruned packages keep the comparison in their report, for the Benchmark panel.
      const saved = attachBenchmark(positionals, toBenchmarkReport(rows, path.resolve(values.eval)));
      for (const f of saved) process.stderr.write(`benchmark saved in ${f}\n`);
    }
    return 0;
  }
  if (command === 'sweep') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        calib: { type: 'string' },
        eval: { type: 'string' },
        ratios: { type: 'string' },
        methods: { type: 'string' },
        'random-seeds': { type: 'string' },
        'exhaustive-limit': { type: 'string' },
        samples: { type: 'string' },
        'eval-samples': { type: 'string' },
        out: { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('sweep takes one model path');
    if (!values.calib || !values.eval) throw new UsageError('sweep needs --calib <file> and --eval <file>');
    const ratios = (values.ratios ?? '0.1,0.2,0.3,0.4').split(',').map((r) => parseNumber('ratios', r, (x) => x > 0 && x <= 0.5, 'numbers in (0, 0.5]')!);
    const int = (name: string, v: string | undefined) => parseNumber(name, v, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
    const result = await sweepJob(
      {
        model: positionals[0],
        calib: values.calib,
        eval: values.eval,
        ratios,
        methods: values.methods?.split(','),
        randomSeeds: int('random-seeds', values['random-seeds']),
        exhaustiveLimit: int('exhaustive-limit', values['exhaustive-limit']),
        samples: int('samples', values.samples),
        evalSamples: int('eval-samples', values['eval-samples']),
        threads: int('threads', values.threads),
        device: oneOf('device', values.device, DEVICES),
      },
      { onProgress: stderrProgress(values.quiet) },
    );
    if (values.out) fs.writeFileSync(values.out, JSON.stringify(result, null, 1) + '\n');
    process.stdout.write((values.json ? JSON.stringify(result) : result.table) + '\n');
    return 0;
  }
  throw new UsageError(`unknown command "${command}"`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    const usage = e instanceof UsageError || String((e as NodeJS.ErrnoException).code ?? '').startsWith('ERR_PARSE_ARGS');
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`short-lvlm: ${String(e.message).split('\n')[0]}${usage ? ' (see --help)' : ''}\n`);
    if (process.env.SHORT_LVLM_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(usage ? 2 : 1);
  },
);
