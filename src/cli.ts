#!/usr/bin/env node
// Command-line twin of the extension: the same engine, driven from a terminal.

import { parseArgs } from 'node:util';
import * as path from 'path';
import { formatInspect, inspectModel } from './engine/commands/inspect';
import { openPackage } from './engine/package/modelPackage';
import { writePrunedPackage } from './engine/package/writePackage';

const USAGE = `usage: short-lvlm <command> [options]

commands:
  inspect <model> [--json]
      Layout, files, decoder layers and the weights found in each.
  prune <model> --layers 3,5 --no-scp [--out <dir>] [--overwrite] [--json]
      Remove exactly the listed layers (0-based original indices).

<model> is a model folder, or any .onnx / config file inside it.`;

class UsageError extends Error {}

function parseLayers(s: string): number[] {
  const parts = s.split(',').map((x) => x.trim()).filter(Boolean);
  const out: number[] = [];
  for (const p of parts) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw new UsageError(`--layers: "${p}" is not a layer index or range (e.g. 3,5 or 10-12)`);
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    for (let i = a; i <= b; i++) out.push(i);
  }
  if (!out.length) throw new UsageError('--layers needs at least one index');
  return [...new Set(out)].sort((x, y) => x - y);
}

export function defaultOutDir(root: string, tag: string): string {
  return path.join(path.dirname(root), `${path.basename(root)}-short-lvlm-${tag}`);
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
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        layers: { type: 'string' },
        'no-scp': { type: 'boolean' },
        out: { type: 'string' },
        overwrite: { type: 'boolean' },
        json: { type: 'boolean' },
      },
    });
    if (positionals.length !== 1) throw new UsageError('prune takes one model path');
    if (!values.layers) throw new UsageError('prune needs --layers (explicit choice)');
    if (!values['no-scp']) throw new UsageError('with --layers, pass --no-scp: compensation needs calibration data');
    const layers = parseLayers(values.layers);
    const pkg = openPackage(positionals[0]);
    const out = values.out ?? defaultOutDir(pkg.root, `l${layers.join('-')}`);
    const started = Date.now();
    const res = writePrunedPackage(pkg, { remove: layers, outDir: out, overwrite: values.overwrite });
    const summary = { out: res.outDir, removed: res.removed, numLayers: res.numLayers, ratio: res.removed.length / (res.numLayers + res.removed.length), bytes: res.bytes, seconds: (Date.now() - started) / 1000, skippedVariants: res.skippedVariants };
    if (values.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else {
      process.stdout.write(`removed layers ${res.removed.join(', ')}: ${res.numLayers} layers remain\nwrote ${res.outDir}\n`);
      if (res.skippedVariants.length) process.stdout.write(`note: other decoder variants not carried over: ${res.skippedVariants.join(', ')}\n`);
    }
    return 0;
  }
  throw new UsageError(`unknown command "${command}"`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    const usage = e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith?.('ERR_PARSE_ARGS');
    process.stderr.write(`short-lvlm: ${e.message.split('\n')[0]}${usage ? ' (see --help)' : ''}\n`);
    if (process.env.SHORT_LVLM_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(usage ? 2 : 1);
  },
);
