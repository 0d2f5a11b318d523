#!/usr/bin/env node
// Command-line twin of the extension: the same engine jobs, driven from a terminal. Each
// command's flags are declared once below (prune's come from the protocol's option table);
// every value is checked before any model work starts, and every error is one line.

import * as fs from 'fs';
import * as path from 'path';
import { CommandSpec, commandHelp, parseCommand, Parsed, UsageError } from './cli/args';
import { formatInspect, inspectModel } from './engine/commands/inspect';
import { benchJob, pruneJob } from './engine/jobs';
import { formatBenchTable } from './engine/bench/format';
import { METHOD_SPECS, sweepJob } from './engine/bench/sweep';
import { describeError } from './protocol/errorText';
import { stderrProgress } from './engine/progress';
import { installExitCleanup, sweepStaleScratch } from './engine/scratch';
import { OUTPUT_INFIX, RECIPE_FILE, REPORT_FILE } from './protocol/files';
import type { RunOptions } from './protocol/engineApi';
import { allowedText, DEFAULT_PRUNE_OPTIONS, DEFAULT_RUN_OPTIONS, OptionError, OptionSpec, parseNumberValue, parseSpecValue, PRUNE_OPTION_SPECS, RATIO_RANGE, RUN_OPTION_SPECS } from './protocol/options';
import type { PruneOptions } from './protocol/report';
import { version } from '../package.json';

const PROGRAM = 'short-lvlm';
const RUN_AS = 'npm run --silent cli --';

const common = {
  json: { name: 'json', help: 'machine-readable output on stdout (see below)' },
  quiet: { name: 'quiet', help: 'no progress on stderr' },
};

/** Flags from an option table: one per entry, with its allowed values and default. */
function tableFlags(table: Record<string, OptionSpec>, defaults: Record<string, unknown> = {}) {
  return Object.entries(table).map(([key, s]) => {
    const dflt = defaults[key];
    const arg = s.kind === 'flag' ? undefined : s.kind === 'enum' ? s.values!.join('|') : s.arg;
    const allowed = s.kind === 'number' || s.kind === 'integer' ? `; ${allowedText(s)}` : '';
    const def = s.kind !== 'flag' && dflt !== undefined && key !== 'seed' ? ` (default ${dflt})` : '';
    return { name: s.flag, arg, help: `${s.help}${allowed}${def}`, key, spec: s };
  });
}
/** prune's method options (PruneOptions) and every job's run options. */
const optionFlags = tableFlags(PRUNE_OPTION_SPECS, { ...DEFAULT_PRUNE_OPTIONS });
const runFlags = tableFlags(RUN_OPTION_SPECS, { ...DEFAULT_RUN_OPTIONS });

const COMMANDS: Record<string, CommandSpec> = {
  inspect: {
    name: 'inspect',
    brief: 'what the engine finds in a model package: layout, files, layers and their weights',
    positionals: { name: 'model', min: 1, max: 1 },
    summary: 'Layout, files, attention style, hidden size, and for every decoder layer its KV cache and the weights that write into the residual stream.',
    flags: [common.json],
    json: 'one JSON document on one line.',
  },
  prune: {
    name: 'prune',
    brief: 'remove decoder layers (Short-LVLM: TIS + SCP), a hand-made list, or a recorded recipe',
    positionals: { name: 'model', min: 1, max: 1 },
    forms: ['<model> --layers 3,5 --no-scp [--out <dir>]', `<model> --recipe ${RECIPE_FILE} [--out <dir>]`],
    summary: [
      'Short-LVLM: token importance scores, layer redundancy, removal of round(ratio x L) layers and',
      'subspace-compensated pruning (--method svl). --method greedy (the default) chooses by the measured',
      'output change on calibration samples; --min-agreement / --max-kl replace the ratio by a quality',
      'budget measured on held-out samples (--compensation ls: least-squares compensation, opt-in).',
      '--execution layerwise runs the decoder one layer at a time; a killed calibration resumes when rerun.',
      `Writes <model>${OUTPUT_INFIX}<method>-r<ratio>[-noscp|-scp|-ls]/ beside the model`,
      `(or --out) with ${REPORT_FILE} and ${RECIPE_FILE}. With --layers, removes exactly those layers`,
      '(--no-scp: no calibration needed); with --recipe, re-applies a recorded pruning.',
    ].join('\n'),
    flags: [
      { name: 'calib', arg: '<file>', help: 'calibration data: LLaVA conversation JSON or JSONL with images' },
      ...optionFlags,
      { name: 'recipe', arg: '<file>', help: `re-apply a ${RECIPE_FILE} (no calibration)` },
      { name: 'out', arg: '<dir>', help: 'output folder (default beside the model)' },
      { name: 'overwrite', help: 'replace an existing output folder' },
      ...runFlags,
      common.json,
      common.quiet,
    ],
    json: 'one JSON document on one line: {out, removed, ratio, numLayers, method, scp, compensation?, note?, skipCost?, compensationNote?, report?, warnings?, seconds}; scp is whether a layer was compensated, warnings what the report says went otherwise than asked (also on stderr).',
  },
  bench: {
    name: 'bench',
    brief: 'accuracy, agreement, KL, speed and size of models against the first one',
    positionals: { name: 'model', min: 1, max: 64 },
    summary: [
      'Accuracy per question family, relative accuracy, next-token agreement and KL divergence against the',
      `first model, samples per second and size. Stored in each model's ${REPORT_FILE} when it has one.`,
    ].join('\n'),
    flags: [
      { name: 'eval', arg: '<file>', help: 'evaluation data: JSONL of {id, image, question, answer, choices?, family?}' },
      { name: 'samples', arg: 'n', help: 'evaluation items used (default all)' },
      { name: 'no-save', help: `do not store the result in the models' ${REPORT_FILE}` },
      ...runFlags,
      common.json,
      common.quiet,
    ],
    json: 'JSON Lines: one JSON object per model and line, the reference first (the Benchmark panel\'s rows).',
  },
  sweep: {
    name: 'sweep',
    brief: "the paper's ablation: methods x ratios, random and exhaustive choices",
    positionals: { name: 'model', min: 1, max: 1 },
    summary: "The paper's ablation on this model: methods x ratios, random dropping and, where small enough, every subset of the candidate layers.",
    flags: [
      { name: 'calib', arg: '<file>', help: 'calibration data' },
      { name: 'eval', arg: '<file>', help: 'evaluation data' },
      { name: 'ratios', arg: 'r,r,...', help: `ratios to try, each in (${RATIO_RANGE.min}, ${RATIO_RANGE.max}] (default 0.1,0.2,0.3,0.4)` },
      { name: 'methods', arg: 'm,m,...', help: `methods to try: ${Object.keys(METHOD_SPECS).join(', ')} (default all)` },
      { name: 'random-seeds', arg: 'n', help: 'random choices per ratio (default 3)' },
      { name: 'exhaustive-limit', arg: 'n', help: 'enumerate every subset when there are at most n (default 100)' },
      { name: 'samples', arg: 'n', help: 'calibration samples used (default all)' },
      { name: 'eval-samples', arg: 'n', help: 'evaluation items used (default all)' },
      { name: 'out', arg: '<file.json>', help: 'also write the full result there' },
      ...runFlags,
      common.json,
      common.quiet,
    ],
    json: 'one JSON document on one line (the same as --out writes).',
  },
};

const USAGE = `usage: ${RUN_AS} <command> [options]      (or: node dist/cli.js <command> ...)

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.name.padEnd(9)}${c.brief}`)
  .join('\n')}

${PROGRAM} <command> --help     the command's options and what --json prints
${PROGRAM} --version            the version

<model> is a model folder, or any .onnx / config file inside it. Progress goes to stderr;
errors are one line on stderr with exit code 2 (bad usage) or 1 (the job failed).`;

// ------------------------------------------------------------------ values

const str = (p: Parsed, name: string) => p.values.get(name) as string | undefined;
const has = (p: Parsed, name: string) => p.values.get(name) === true;

/** A count flag: a safe integer >= min. */
function count(p: Parsed, name: string, min: number): number | undefined {
  const v = str(p, name);
  return v === undefined ? undefined : parseNumberValue(`--${name}`, { kind: 'integer', min }, v);
}

/** The values of a table's flags (a switch such as --no-scp turns its option off). */
function tableValues(p: Parsed, flags: ReturnType<typeof tableFlags>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of flags) {
    const v = p.values.get(f.name);
    if (v === undefined || v === f.spec.unset) continue; // e.g. --compensation auto: the engine decides
    o[f.key] = v === true ? false : parseSpecValue(f.spec, v, `--${f.name}`);
  }
  return o;
}
/** prune's options, with the checks that involve two flags. */
function pruneOptions(p: Parsed): Partial<PruneOptions> {
  const o = tableValues(p, optionFlags) as Partial<PruneOptions>;
  if (o.compensation) {
    if (o.scp === false && o.compensation !== 'none') throw new UsageError(`--no-scp contradicts --compensation ${o.compensation}`, 'prune');
    o.scp = o.compensation === 'scp';
  } else if (o.scp === false) o.compensation = 'none';
  if ((o.minAgreement !== undefined || o.maxKl !== undefined) && o.ratio !== undefined) throw new UsageError('--ratio and a quality budget (--min-agreement / --max-kl) exclude each other', 'prune');
  return o;
}
const runOptions = (p: Parsed) => tableValues(p, runFlags) as RunOptions;

// ------------------------------------------------------------------ commands

async function inspect(p: Parsed): Promise<void> {
  const r = inspectModel(p.positionals[0]);
  process.stdout.write((has(p, 'json') ? JSON.stringify(r) : formatInspect(r)) + '\n');
}

async function prune(p: Parsed): Promise<void> {
  const options = pruneOptions(p);
  const run = runOptions(p);
  const calib = str(p, 'calib');
  const recipe = str(p, 'recipe');
  if (recipe && (calib || options.layers)) throw new UsageError('--recipe re-applies a recorded pruning: leave out --calib and --layers', 'prune');
  if (!calib && !recipe && !(options.layers && options.scp === false)) {
    throw new UsageError(options.layers ? 'with --layers, pass --no-scp (or --calib to compensate)' : 'prune needs --calib <file> (or --layers ... --no-scp, or --recipe)', 'prune');
  }
  const r = await pruneJob(
    { model: p.positionals[0], calib, out: str(p, 'out'), overwrite: has(p, 'overwrite'), recipe, ...run, options },
    { onProgress: stderrProgress(has(p, 'quiet')), log: has(p, 'quiet') ? undefined : (line) => process.stderr.write(`${line}\n`) },
  );
  for (const w of r.warnings ?? []) process.stderr.write(`${PROGRAM}: warning: ${w}\n`);
  if (has(p, 'json')) process.stdout.write(JSON.stringify(r) + '\n');
  else {
    const lines: string[] = [];
    if (r.skipCost?.length) {
      lines.push('measured skip cost (one layer skipped; held-out calibration samples, first answer token):');
      lines.push(...r.skipCost.map((c) => `  layer ${String(c.layer).padStart(2)}  KL ${c.kl.toFixed(4)}  agreement ${(100 * c.agreement).toFixed(1)} %`));
    }
    if (r.note) lines.push(`method: ${r.note}`);
    if (r.compensationNote) lines.push(`compensation: ${r.compensationNote}`);
    const comp = r.scp ? ' + SCP' : r.compensation === 'ls' ? ' + least squares' : '';
    lines.push(`removed layers ${r.removed.join(', ')} (${r.method}${comp}): ${r.numLayers} layers remain`, `wrote ${r.out}`);
    process.stdout.write(lines.join('\n') + '\n');
    // Each dtype variant when there are several, or any that was not compensated or not carried over.
    for (const v of r.variants ?? []) if (r.variants!.length > 1 || v.note) process.stdout.write(`  ${v.file}: ${v.status}${v.note ? ` (${v.note})` : ''}\n`);
  }
}

async function bench(p: Parsed): Promise<void> {
  const evalFile = str(p, 'eval');
  if (!evalFile) throw new UsageError('bench needs --eval <file> (JSONL of {id, image, question, answer})', 'bench');
  const samples = count(p, 'samples', 1);
  const r = await benchJob({ models: p.positionals, eval: evalFile, samples, ...runOptions(p), save: !has(p, 'no-save') }, { onProgress: stderrProgress(has(p, 'quiet')) });
  if (has(p, 'json')) for (const row of r.benchmark.rows) process.stdout.write(JSON.stringify(row) + '\n');
  else process.stdout.write(formatBenchTable(r.benchmark.rows) + '\n');
  for (const f of r.reports) process.stderr.write(`benchmark saved in ${f}\n`);
}

async function sweep(p: Parsed): Promise<void> {
  const calib = str(p, 'calib');
  const evalFile = str(p, 'eval');
  if (!calib || !evalFile) throw new UsageError('sweep needs --calib <file> and --eval <file>', 'sweep');
  const ratios = (str(p, 'ratios') ?? '0.1,0.2,0.3,0.4').split(',').map((r) => parseNumberValue('--ratios', { kind: 'number', ...RATIO_RANGE }, r));
  const methods = str(p, 'methods')?.split(',').map((m) => m.trim());
  const unknown = methods?.find((m) => !METHOD_SPECS[m]);
  if (unknown !== undefined) throw new OptionError('--methods', `must be a list of ${Object.keys(METHOD_SPECS).join(', ')}; got "${unknown}"`);
  const result = await sweepJob(
    {
      model: p.positionals[0],
      calib,
      eval: evalFile,
      ratios,
      methods,
      randomSeeds: count(p, 'random-seeds', 0),
      exhaustiveLimit: count(p, 'exhaustive-limit', 0),
      samples: count(p, 'samples', 1),
      evalSamples: count(p, 'eval-samples', 1),
      ...runOptions(p),
    },
    { onProgress: stderrProgress(has(p, 'quiet')) },
  );
  const out = str(p, 'out');
  if (out) fs.writeFileSync(path.resolve(out), JSON.stringify(result, null, 1) + '\n');
  process.stdout.write((has(p, 'json') ? JSON.stringify(result) : result.table) + '\n');
}

const RUN: Record<string, (p: Parsed) => Promise<void>> = { inspect, prune, bench, sweep };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    if (topic && COMMANDS[topic]) process.stdout.write(commandHelp(COMMANDS[topic], `${RUN_AS}`) + '\n');
    else (command ? process.stdout : process.stderr).write(USAGE + '\n');
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    process.stdout.write(`${PROGRAM} ${version}\n`);
    return 0;
  }
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(command.startsWith('-') ? `${command} is not a command; the commands are ${Object.keys(COMMANDS).join(', ')}` : `unknown command "${command}"; the commands are ${Object.keys(COMMANDS).join(', ')}`);
  const parsed = parseCommand(spec, rest);
  if (parsed.help) {
    process.stdout.write(commandHelp(spec, RUN_AS) + '\n');
    return 0;
  }
  await RUN[command](parsed);
  return 0;
}

/** An option error from the engine names an option's field: say it as the flag the user typed. */
function asFlag(e: OptionError): string {
  const spec = ({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS } as Record<string, OptionSpec>)[e.option];
  return spec ? `--${spec.flag}: ${e.detail}` : e.message;
}

// Temporary folders go away on every exit (Ctrl-C included); a killed run's are swept now.
installExitCleanup(() => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${PROGRAM}: cancelled; temporary files removed\n`));
sweepStaleScratch();

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    const usage = e instanceof UsageError || e instanceof OptionError;
    const text = e instanceof OptionError ? asFlag(e) : describeError(e);
    const hint = e instanceof UsageError ? ` (see ${e.command ? `${PROGRAM} ${e.command} --help` : `${PROGRAM} --help`})` : '';
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`${PROGRAM}: ${text}${hint}\n`);
    if (process.env.SHORT_LVLM_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(usage ? 2 : 1);
  },
);
