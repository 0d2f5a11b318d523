// The CLI explains itself (issue 14 item 4, issue 13 item 2): `<command> --help`, `--version`,
// unknown flags and bad values in plain words naming the flag and what it allows (one case per
// entry of the option table, so a new option is covered by adding it there), checks against
// the model before any calibration, recipe errors naming the file, outputs made with the
// user's umask, and a one-line hint on a clone that was never built.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PRUNE_OPTION_SPECS, OptionSpec, RUN_OPTION_SPECS } from '../../src/protocol/options';
import { VARIANTS, writeVariant } from '../support/engineFixtures';

const repo = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(repo, 'dist', 'cli.js');
const bundled = path.join(repo, 'models', 'tiny-llava');
const calib = path.join(repo, 'data', 'tiny-vqa', 'calib.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-usage-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

before(() => {
  if (!fs.existsSync(cli)) execFileSync(process.execPath, ['esbuild.mjs'], { cwd: repo, stdio: 'inherit' });
});

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { umask?: string; cwd?: string } = {}): Run {
  const env = { ...process.env };
  delete env.SHORT_LVLM_DEBUG;
  // A umask is set by the shell that starts the CLI, as a user's login shell would.
  const r = opts.umask
    ? spawnSync('/bin/sh', ['-c', `umask ${opts.umask} && exec "$0" "$@"`, process.execPath, cli, ...args], { encoding: 'utf8', env, cwd: opts.cwd ?? tmp })
    : spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, cwd: opts.cwd ?? tmp });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A usage error: exit 2, nothing on stdout, exactly one line on stderr matching every pattern. */
function usageError(r: Run, what: string, ...patterns: RegExp[]): string {
  assert.equal(r.status, 2, `${what}: exit ${r.status}, stderr ${JSON.stringify(r.stderr)}`);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], /^short-lvlm: /, what);
  for (const p of patterns) assert.match(lines[0], p, what);
  assert.equal((lines[0].match(/"/g) ?? []).length % 2, 0, `${what}: balanced quotes in ${lines[0]}`);
  return lines[0];
}

test('every command has --help (and `help <command>`): its forms, every flag, and what --json prints', () => {
  for (const command of ['inspect', 'prune', 'bench', 'sweep']) {
    for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
      const r = run(args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: .* ${command} <model>`), args.join(' '));
      assert.match(r.stdout, /--json: /, `${args.join(' ')} says what --json prints`);
    }
  }
  const prune = run(['prune', '--help']).stdout;
  for (const s of Object.values({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS }) as OptionSpec[]) {
    assert.match(prune, new RegExp(`^  --${s.flag}\\b`, 'm'), `prune --help lists --${s.flag}`);
    for (const v of s.values ?? []) assert.ok(prune.includes(v), `prune --help names ${s.flag} value ${v}`);
  }
  assert.match(prune, /--ratio r .*\(0, 0\.5\] \(default 0\.3\)/);
  assert.match(run(['bench', '--help']).stdout, /--json: JSON Lines: one JSON object per model/);
  assert.match(run(['inspect', '--help']).stdout, /--json: one JSON document/);
  const general = run(['--help']);
  assert.equal(general.status, 0);
  for (const c of ['inspect', 'prune', 'bench', 'sweep']) assert.match(general.stdout, new RegExp(`^  ${c} `, 'm'));
});

test('--version prints the package version', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const r = run(['--version']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout, `short-lvlm ${version}\n`);
});

test('unknown commands and flags, missing values, repeats and stray arguments: one plain line each', () => {
  usageError(run(['prun', 'm']), 'unknown command', /unknown command "prun"; the commands are inspect, prune, bench, sweep/);
  usageError(run(['prune', 'm', '--ratoi', '0.2']), 'misspelt flag', /prune has no option --ratoi; did you mean --ratio\?/, /see short-lvlm prune --help/);
  usageError(run(['inspect', 'm', '--verbose']), 'unknown flag', /inspect has no option --verbose/);
  usageError(run(['prune', 'm', '-r', '0.2']), 'short flag', /prune has no option -r/);
  usageError(run(['prune', 'm', '--ratio']), 'missing value', /--ratio needs a value: --ratio r/);
  usageError(run(['prune', 'm', '--ratio', '0.2', '--ratio', '0.3', '--calib', 'c']), 'repeat', /--ratio is given twice/);
  usageError(run(['prune', 'm', '--json=yes', '--layers', '1', '--no-scp']), 'value for a switch', /--json is a switch and takes no value/);
  usageError(run(['inspect']), 'no model', /inspect needs a model/);
  usageError(run(['inspect', 'a', 'b']), 'two models', /inspect takes one model; unexpected "b"/);
  usageError(run(['prune', 'm']), 'nothing to do', /prune needs --calib <file>/);
  usageError(run(['prune', 'm', '--layers', '1']), 'layers without --no-scp', /with --layers, pass --no-scp/);
});

/** A value each kind of option refuses, so that a new entry of the option table is tested too. */
const BAD: Record<OptionSpec['kind'], string[]> = {
  number: ['abc', '-5', ''],
  integer: ['1.5', '12345678901234567890', 'x'],
  enum: ['nope', 'SVL'],
  range: ['8', '9-3', '1-99999999999999999999', 'a-b'],
  layers: ['x', '3-x', '5-2', '12345678901234567890', ''],
  flag: [],
};

test('every option of the tables: a bad value is refused in one line naming the flag and what it allows', () => {
  for (const [key, s] of Object.entries({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS }) as [string, OptionSpec][]) {
    if (s.kind === 'flag') {
      usageError(run(['prune', 'm', `--${s.flag}=1`, '--calib', 'c']), `--${s.flag}=1`, new RegExp(`--${s.flag} is a switch and takes no value`));
      continue;
    }
    const below = [...(s.min !== undefined ? [String(s.min - 1)] : []), ...(s.max !== undefined ? [String(s.max * 2 + 1)] : [])];
    for (const bad of [...BAD[s.kind], ...below]) {
      const r = run(['prune', 'm', '--calib', 'c', `--${s.flag}`, bad]);
      const line = usageError(r, `${key} = ${JSON.stringify(bad)}`, new RegExp(`--${s.flag}\\b`));
      if (s.kind === 'enum') assert.ok(s.values!.every((v) => line.includes(v)), `${line} lists the allowed values`);
      if (s.kind === 'number' || s.kind === 'integer') assert.match(line, /must be (a|an) /);
    }
  }
  // Options outside the table: counts and sweep's lists.
  usageError(run(['prune', 'm', '--calib', 'c', '--threads', '-2']), 'threads', /--threads: must be an integer >= 0, got "-2"/);
  usageError(run(['bench', 'm', '--eval', 'e', '--threads', 'many']), 'bench threads', /--threads: must be an integer >= 0, got "many"/);
  usageError(run(['bench', 'm', '--eval', 'e', '--samples', '0']), 'bench samples', /--samples: must be a positive integer/);
  usageError(run(['sweep', 'm', '--calib', 'c', '--eval', 'e', '--ratios', '0.1,0.9']), 'sweep ratios', /--ratios: must be a number in \(0, 0\.5\], got "0\.9"/);
  usageError(run(['sweep', 'm', '--calib', 'c', '--eval', 'e', '--methods', 'svl,best']), 'sweep methods', /--methods: must be a list of svl, .*; got "best"/);
});

test('a 20-digit --layers index is a one-line error at once, not a V8 allocation failure', () => {
  const r = run(['prune', bundled, '--layers', '3,99999999999999999999', '--no-scp', '--out', path.join(tmp, 'never')]);
  // Exit 2 with a message, not a signal: the old parser expanded the range until V8 aborted (SIGTRAP).
  assert.equal(r.signal, null);
  usageError(r, '20-digit index', /--layers: 999999999999\.\.\. is not a layer index \(0 to 99999\)/);
  const wide = run(['prune', bundled, '--layers', '0-99999', '--no-scp', '--out', path.join(tmp, 'never')]);
  usageError(wide, 'a range wider than the model', /--layers: layer 16 does not exist \(the model has layers 0-15\)/);
  assert.ok(!fs.existsSync(path.join(tmp, 'never')));
});

test('choices that do not fit the model are refused before calibration starts (no progress, no output)', () => {
  const out = path.join(tmp, 'early');
  const cases: [string[], RegExp][] = [
    [['--candidates', '20-30'], /--candidates: 20-30 is outside the model's layers 0-15/],
    [['--candidates', '14-15', '--ratio', '0.5'], /--ratio: 0\.5 removes 8 of 16 layers but the candidate range 14-15 holds 2/],
    [['--ratio', '0.01'], /--ratio: 0\.01 of 16 layers removes no layer/],
    [['--layers', '3,16'], /--layers: layer 16 does not exist \(the model has layers 0-15\)/],
    [['--layers', '0-15'], /--layers: cannot remove all 16 layers/],
  ];
  for (const [args, re] of cases) {
    const r = run(['prune', bundled, '--calib', calib, '--out', out, ...args]);
    // One line on stderr: the calibration pass would have printed progress lines first.
    usageError(r, args.join(' '), re);
    assert.ok(!fs.existsSync(out), `${args.join(' ')}: no output`);
    assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.includes('.partial-') || n.includes('short-lvlm-session')), []);
  }
});

test('recipe errors name the file', () => {
  const missing = path.join(tmp, 'missing-recipe.json');
  const garbage = path.join(tmp, 'garbage.json');
  const other = path.join(tmp, 'other.json');
  fs.writeFileSync(garbage, '{ "format": ');
  fs.writeFileSync(other, JSON.stringify({ format: 'something-else/1' }));
  const model = writeVariant(path.join(tmp, 'models'), VARIANTS[0], { numLayers: 4 });
  const fail = (file: string, re: RegExp) => {
    const r = run(['prune', model.dir, '--recipe', file, '--out', path.join(tmp, 'r-out')]);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].includes(file), `${lines[0]} names ${file}`);
    assert.match(lines[0], re);
  };
  fail(missing, /no such file/);
  fail(garbage, /is not valid JSON/);
  fail(other, /is not a Short-LVLM recipe/);
  fail(tmp, /is a folder/);
  usageError(run(['prune', model.dir, '--recipe', other, '--layers', '1']), 'recipe with layers', /--recipe re-applies a recorded pruning/);
});

test('pruned folders and files are created with the user umask, like a folder the user makes', () => {
  const model = writeVariant(path.join(tmp, 'models'), VARIANTS[1], { numLayers: 4 });
  for (const umask of ['022', '027']) {
    const out = path.join(tmp, `umask-${umask}`);
    // The reference: a folder and a file made by the shell under the same umask.
    const ref = path.join(tmp, `ref-${umask}`);
    execFileSync('/bin/sh', ['-c', `umask ${umask} && mkdir "$0" && : > "$0/f"`, ref]);
    const r = run(['prune', model.dir, '--layers', '1', '--no-scp', '--out', out, '--quiet'], { umask });
    assert.equal(r.status, 0, r.stderr);
    const mode = (p: string) => fs.statSync(p).mode & 0o777;
    const dirMode = mode(ref);
    const fileMode = mode(path.join(ref, 'f'));
    assert.equal(mode(out).toString(8), dirMode.toString(8), `output folder under umask ${umask}`);
    assert.equal(mode(path.join(out, 'onnx')).toString(8), dirMode.toString(8), 'subfolder');
    assert.equal(mode(path.join(out, 'config.json')).toString(8), fileMode.toString(8), 'written file');
    assert.equal(mode(path.join(out, 'onnx', 'decoder_model_merged.onnx')).toString(8), fileMode.toString(8), 'written decoder');
  }
});

test('an unbuilt clone: `npm run cli` says to build first, in one line', () => {
  const clone = path.join(tmp, 'clone');
  fs.mkdirSync(path.join(clone, 'scripts'), { recursive: true });
  fs.copyFileSync(path.join(repo, 'scripts', 'cli.mjs'), path.join(clone, 'scripts', 'cli.mjs'));
  const r = spawnSync(process.execPath, [path.join(clone, 'scripts', 'cli.mjs'), 'inspect', 'x'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, /^short-lvlm: the CLI is not built yet: run `npm run build` first/);
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  assert.equal(pkg.scripts.cli, 'node scripts/cli.mjs', 'npm run cli goes through the launcher');
  // And from a built checkout the launcher runs the CLI.
  const built = spawnSync(process.execPath, [path.join(repo, 'scripts', 'cli.mjs'), '--version'], { encoding: 'utf8' });
  assert.equal(built.status, 0);
  assert.match(built.stdout, /^short-lvlm \d/);
});
