// The bundled CLI (dist/cli.js) as a user runs it: `inspect` (text and --json) and
// `prune --layers ... --no-scp` on both layouts and attention styles, the pruned package
// checked against the independent reference; error cases exit non-zero with one line on
// stderr and leave no output (or partial) folder behind.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { encodeModel } from '../../src/engine/onnx/proto';
import { hashFolder, initializerNamed, initializersByValue, partialsNextTo, VARIANTS, writeVariant } from '../support/engineFixtures';
import { checkLogits, checkPrunedConfig } from '../support/prunedCheck';
import { SynthModel } from '../support/synthModels';

const repo = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(repo, 'dist', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? fs.statSync(p).mtimeMs : 0);
  }
  return t;
}

before(() => {
  // `npm test` builds first; when run on its own after `tsc`, rebuild a missing or stale bundle.
  if (!fs.existsSync(cli) || fs.statSync(cli).mtimeMs < newestSource(path.join(repo, 'src'))) {
    execFileSync(process.execPath, ['esbuild.mjs'], { cwd: repo, stdio: 'inherit' });
  }
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(...args: string[]): Run {
  const env = { ...process.env };
  delete env.SHORT_LVLM_DEBUG;
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, cwd: tmp, timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run, what: string): void {
  assert.equal(r.status, 0, `${what}: exit ${r.status}, stderr: ${r.stderr}`);
}

/** Non-zero exit, exactly one line on stderr, matching `re`. */
function fails(r: Run, re: RegExp, what: string): void {
  assert.notEqual(r.status, 0, `${what}: should fail (stdout: ${r.stdout})`);
  assert.equal(r.status !== null, true, `${what}: killed`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], /^short-lvlm: /);
  assert.match(lines[0], re, what);
}

const models = new Map<string, SynthModel>();
function model(i: number): SynthModel {
  const v = VARIANTS[i];
  let m = models.get(v.name);
  if (!m) models.set(v.name, (m = writeVariant(path.join(tmp, 'models'), v, { numLayers: 6 })));
  return m;
}

test('inspect <dir>: human-readable summary', () => {
  const m = model(0);
  const r = run('inspect', m.dir);
  ok(r, 'inspect');
  assert.match(r.stdout, /layout\s+optimum/);
  assert.match(r.stdout, /attention\s+decomposed/);
  assert.match(r.stdout, /layers\s+6 \(config: 6\)/);
  assert.match(r.stdout, /model\.layers\.5\.mlp\.down_proj\.weight \[64x32\]/);
  assert.equal(r.stderr, '');
});

for (const i of [1, 2, 4, 5]) {
  test(`inspect <file> --json: ${VARIANTS[i].name}`, () => {
    const m = model(i);
    const r = run('inspect', m.decoderPath, '--json');
    ok(r, 'inspect --json');
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'one JSON object on one line');
    const j = JSON.parse(lines[0]);
    assert.equal(j.numLayers, 6);
    assert.equal(j.layout, m.layout);
    assert.equal(j.attentionStyle, m.style);
    assert.equal(j.root, m.dir);
    assert.equal(j.decoder, path.relative(m.dir, m.decoderPath));
    assert.equal(j.configLayers, m.layout === 'single' ? undefined : 6);
    assert.equal(j.hiddenSize, m.dims.hidden);
    assert.deepEqual(j.externalData.sort(), m.dataFiles.map((f) => path.basename(f)).sort());
    assert.deepEqual(j.warnings, []);
    const f = OnnxFile.open(m.decoderPath);
    const byValue = initializersByValue(f);
    f.close();
    assert.equal(j.layers.length, 6);
    j.layers.forEach((l: any, k: number) => {
      const lw = m.weights.layers[k];
      assert.equal(l.index, k);
      assert.equal(l.kvIndex, k);
      assert.deepEqual(l.oProj, { name: initializerNamed(byValue, lw.o, 'o'), shape: [m.dims.heads * m.dims.headDim, m.dims.hidden], dtype: 'float32', layout: 'in,out' });
      assert.deepEqual(l.downProj, { name: initializerNamed(byValue, lw.down, 'down'), shape: [m.dims.intermediate, m.dims.hidden], dtype: 'float32', layout: 'in,out' });
      const want = (['q', 'k', 'v', 'gate', 'up'] as const).map((w) => initializerNamed(byValue, lw[w], w)).sort();
      assert.deepEqual(l.inputWeights.map((w: any) => w.name).sort(), want);
      assert.match(l.attention, m.style === 'fused' ? /GroupQueryAttention/ : /^softmax /);
    });
  });
}

for (const i of [0, 2, 4, 5]) {
  test(`prune --layers 3,5 --no-scp --json: ${VARIANTS[i].name}`, async () => {
    const m = model(i);
    const before = hashFolder(m.dir);
    const out = path.join(tmp, 'out', `pruned-${VARIANTS[i].name}`);
    const r = run('prune', m.dir, '--layers', '5,3', '--no-scp', '--out', out, '--json');
    ok(r, 'prune');
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const j = JSON.parse(lines[0]);
    assert.deepEqual(j.removed, [3, 5]);
    assert.equal(j.numLayers, 4);
    assert.equal(j.out, out);
    assert.equal(j.ratio, 2 / 6);
    assert.deepEqual(hashFolder(m.dir), before, 'source unchanged');
    checkPrunedConfig(out, m, 4);
    const decoder = path.join(out, path.relative(m.dir, m.decoderPath));
    await checkLogits(decoder, m, 4, { skipLayers: [3, 5] }, `cli ${VARIANTS[i].name}`);
    const again = run('inspect', out, '--json');
    ok(again, 'inspect pruned');
    assert.equal(JSON.parse(again.stdout).numLayers, 4);
  });
}

test('prune: a layer range, default text output', async () => {
  const m = model(4);
  const out = path.join(tmp, 'out', 'range');
  const r = run('prune', path.join(m.dir, 'genai_config.json'), '--layers', '1-2', '--no-scp', '--out', out);
  ok(r, 'prune range');
  assert.match(r.stdout, /removed layers 1, 2/);
  assert.match(r.stdout, /4 layers remain/);
  await checkLogits(path.join(out, 'model.onnx'), m, 4, { skipLayers: [1, 2] }, 'range');
});

test('error cases: non-zero exit, one line on stderr, no output folder', () => {
  const m = model(1);
  const outParent = path.join(tmp, 'err');
  fs.mkdirSync(outParent, { recursive: true });
  const out = path.join(outParent, 'pruned');
  const noOutput = (what: string) => {
    assert.ok(!fs.existsSync(out), `${what}: no output folder`);
    assert.deepEqual(fs.readdirSync(outParent), [], `${what}: nothing next to it`);
    assert.deepEqual(partialsNextTo(m.dir), []);
  };
  const before = hashFolder(m.dir);

  fails(run('prune', path.join(tmp, 'no-such-model'), '--layers', '1', '--no-scp', '--out', out), /no such file/, 'missing model');
  noOutput('missing model');
  fails(run('inspect', path.join(tmp, 'no-such-model')), /no such file/, 'inspect missing model');
  fails(run('prune', m.dir, '--layers', '3,x', '--no-scp', '--out', out), /--layers/, 'bad --layers');
  noOutput('bad --layers');
  fails(run('prune', m.dir, '--layers', '', '--no-scp', '--out', out), /layers/, 'empty --layers');
  noOutput('empty --layers');
  fails(run('prune', m.dir, '--layers', '2,9', '--no-scp', '--out', out), /layer 9 does not exist/, 'nonexistent layer');
  noOutput('nonexistent layer');
  fails(run('prune', m.dir, '--layers', '0-5', '--no-scp', '--out', out), /all 6 layers/, 'all layers');
  noOutput('all layers');
  fails(run('prune', m.dir, '--layers', '1', '--no-scp', '--out', path.join(m.dir, 'x')), /outside the model folder/, 'out inside model');
  assert.deepEqual(hashFolder(m.dir), before, 'source unchanged');

  // A corrupt decoder.
  const corrupt = path.join(tmp, 'corrupt');
  fs.cpSync(m.dir, corrupt, { recursive: true });
  const bytes = fs.readFileSync(path.join(corrupt, 'onnx', 'decoder_model_merged.onnx'));
  fs.writeFileSync(path.join(corrupt, 'onnx', 'decoder_model_merged.onnx'), bytes.subarray(0, Math.floor(bytes.length / 2)));
  fails(run('prune', corrupt, '--layers', '1', '--no-scp', '--out', out), /corrupt|truncated|ONNX|end/i, 'truncated .onnx');
  noOutput('truncated .onnx');
  fails(run('inspect', corrupt), /corrupt|truncated|ONNX|end/i, 'inspect truncated .onnx');
  fs.writeFileSync(path.join(corrupt, 'onnx', 'decoder_model_merged.onnx'), Buffer.from('this is not a protobuf at all\n'.repeat(10)));
  fails(run('prune', corrupt, '--layers', '1', '--no-scp', '--out', out), /ONNX|corrupt/i, 'garbage .onnx');
  noOutput('garbage .onnx');

  // External data that points outside the model folder (the file exists there).
  const escape = path.join(tmp, 'escape');
  fs.cpSync(m.dir, escape, { recursive: true });
  const dec = path.join(escape, 'onnx', 'decoder_model_merged.onnx');
  fs.copyFileSync(path.join(escape, 'onnx', 'decoder_model_merged.onnx_data_1'), path.join(tmp, 'stolen.onnx_data'));
  const f = OnnxFile.open(dec);
  let edited = 0;
  for (const t of f.graph.initializer) {
    for (const kv of t.externalData ?? []) {
      if (kv[0] === 'location' && kv[1] === 'decoder_model_merged.onnx_data_1') {
        kv[1] = '../../stolen.onnx_data';
        edited++;
      }
    }
  }
  assert.ok(edited > 0);
  const encoded = encodeModel(f.model);
  f.close();
  fs.writeFileSync(dec, encoded);
  fails(run('prune', escape, '--layers', '1', '--no-scp', '--out', out), /escapes the model folder/, 'escaping external data');
  noOutput('escaping external data');
  fails(run('inspect', dec), /escapes the model folder/, 'inspect escaping external data');
  // Missing external data.
  fs.rmSync(path.join(escape, 'onnx', 'decoder_model_merged.onnx_data_2'));
  fs.copyFileSync(path.join(m.dir, 'onnx', 'decoder_model_merged.onnx'), dec);
  fails(run('prune', escape, '--layers', '1', '--no-scp', '--out', out), /missing/, 'missing external data');
  noOutput('missing external data');

  // An existing output folder is not replaced without --overwrite.
  fs.mkdirSync(out);
  fails(run('prune', m.dir, '--layers', '1', '--no-scp', '--out', out), /already exists/, 'existing output');
  assert.deepEqual(fs.readdirSync(out), []);
});
