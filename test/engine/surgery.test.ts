// Layer removal end to end: writePrunedPackage on every fixture variant, for the layer sets a
// pruning run produces (the first candidate L/2, the last layer, layer 0, an adjacent pair, a
// non-contiguous triple); the pruned decoder runs in onnxruntime-node and matches the
// independent reference with those layers skipped. Weight replacement, failure paths, and the
// source package staying byte-identical.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { removeLayers } from '../../src/engine/graph/surgery';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { writePrunedPackage } from '../../src/engine/package/writePackage';
import { hashFolder, initializerNamed, initializersByValue, partialsNextTo, VARIANTS, writeVariant } from '../support/engineFixtures';
import { checkLogits, checkPrunedConfig, checkPrunedGraph } from '../support/prunedCheck';
import { Rng } from '../support/prng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'surgery-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const L = 6;
const SETS = [[L / 2], [L - 1], [0], [2, 3], [0, 2, 5]];

for (const v of VARIANTS) {
  test(`writePrunedPackage: ${v.name}`, async (t) => {
    const m = writeVariant(tmp, v, { numLayers: L });
    const before = hashFolder(m.dir);
    for (const set of SETS) {
      await t.test(`remove [${set}]`, async () => {
        const outDir = path.join(tmp, 'out', `${v.name}-${set.join('-')}`);
        const res = writePrunedPackage(openPackage(m.dir), { remove: set, outDir });
        assert.deepEqual(res.removed, set);
        assert.equal(res.numLayers, L - set.length);
        assert.equal(res.outDir, outDir);
        assert.equal(res.decoder, path.join(outDir, path.relative(m.dir, m.decoderPath)));
        const pkg = openPackage(outDir);
        assert.equal(pkg.layout, m.layout);
        assert.equal(pkg.decoder, res.decoder);
        if (m.layout !== 'single') assert.equal(pkg.text.numLayers, L - set.length);
        // Every other file of the package is carried over unchanged.
        const src = before;
        const out = hashFolder(outDir);
        for (const [f, h] of src) {
          if (/\.onnx$|onnx_data|onnx\.data|config\.json$/.test(f) && (f.includes(path.basename(m.decoderPath)) || f.endsWith('config.json'))) continue;
          assert.equal(out.get(f), h, `${f} copied`);
        }
        checkPrunedConfig(outDir, m, L - set.length);
        checkPrunedGraph(res.decoder, m, set, v.named);
        await checkLogits(res.decoder, m, L - set.length, { skipLayers: set }, `${v.name} without [${set}]`);
      });
    }
    assert.deepEqual(hashFolder(m.dir), before, 'source package byte-identical');
    assert.deepEqual(partialsNextTo(path.join(tmp, 'out', 'x')), []);
  });
}

test('weight replacement by original initializer names of retained layers', async () => {
  for (const v of [VARIANTS[1], VARIANTS[2], VARIANTS[4]]) {
    const m = writeVariant(tmp, v, { numLayers: 5, dir: path.join(tmp, `repl-${v.name}`) });
    const src = OnnxFile.open(m.decoderPath);
    const byValue = initializersByValue(src);
    src.close();
    const lw1 = m.weights.layers[1];
    const lw4 = m.weights.layers[4];
    const down1 = lw1.down.map((x) => x * 1.5);
    // o_proj of layer 4: W + u v^T (rank one).
    const rng = new Rng(3);
    const rows = m.dims.heads * m.dims.headDim;
    const H = m.dims.hidden;
    const u = rng.float32(rows, 0.2);
    const w = rng.float32(H, 0.2);
    const o4 = lw4.o.map((x, i) => x + u[Math.floor(i / H)] * w[i % H]);
    const replace = new Map<string, Float32Array | Float64Array>([
      [initializerNamed(byValue, lw1.down, 'down 1'), down1],
      [initializerNamed(byValue, lw4.o, 'o 4'), Float64Array.from(o4)],
    ]);
    const before = hashFolder(m.dir);
    const outDir = path.join(tmp, 'out', `repl-${v.name}`);
    const res = writePrunedPackage(openPackage(m.dir), { remove: [2], outDir, replace });
    assert.deepEqual(hashFolder(m.dir), before);
    await checkLogits(res.decoder, m, 4, { skipLayers: [2], replace: { layers: { 1: { down: down1 }, 4: { o: o4 } } } }, `${v.name} replaced`);
    // Without the replacement the logits differ (the check can fail).
    await assert.rejects(checkLogits(res.decoder, m, 4, { skipLayers: [2] }, 'unreplaced'), /max abs diff/);
    // A removed layer's weight cannot be replaced.
    const bad = new Map([[initializerNamed(byValue, m.weights.layers[2].down, 'down 2'), m.weights.layers[2].down]]);
    assert.throws(() => writePrunedPackage(openPackage(m.dir), { remove: [2], outDir: path.join(tmp, 'out', `repl-bad-${v.name}`), replace: bad }), /removed layer/);
    assert.ok(!fs.existsSync(path.join(tmp, 'out', `repl-bad-${v.name}`)));
    assert.deepEqual(partialsNextTo(outDir), []);
  }
});

test('failure paths: clear errors, no output and no partial folder left', () => {
  for (const v of [VARIANTS[0], VARIANTS[2], VARIANTS[4]]) {
    const m = writeVariant(tmp, v, { numLayers: 4, dir: path.join(tmp, `fail-${v.name}`) });
    const before = hashFolder(m.dir);
    const parent = path.join(tmp, `fail-out-${v.name}`);
    fs.mkdirSync(parent);
    const out = path.join(parent, 'pruned');
    const pkg = openPackage(m.dir);
    const noOutput = () => {
      assert.ok(!fs.existsSync(out), 'no output folder');
      assert.deepEqual(fs.readdirSync(parent), [], 'nothing left next to it');
    };
    assert.throws(() => writePrunedPackage(pkg, { remove: [4], outDir: out }), /layer 4 does not exist.*0\.\.3/);
    noOutput();
    assert.throws(() => writePrunedPackage(pkg, { remove: [1, -1], outDir: out }), /layer -1 does not exist/);
    noOutput();
    assert.throws(() => writePrunedPackage(pkg, { remove: [0, 1, 2, 3], outDir: out }), /cannot remove all 4 layers/);
    noOutput();
    // Output inside the model folder (or the folder itself).
    if (m.layout !== 'single') {
      assert.throws(() => writePrunedPackage(pkg, { remove: [1], outDir: path.join(m.dir, 'pruned') }), /outside the model folder/);
      assert.throws(() => writePrunedPackage(pkg, { remove: [1], outDir: path.join(m.dir, 'onnx', 'x') }), /outside the model folder/);
    }
    assert.throws(() => writePrunedPackage(pkg, { remove: [1], outDir: m.dir }), /outside the model folder/);
    // A folder holding the model: overwriting it would delete the source.
    assert.throws(() => writePrunedPackage(pkg, { remove: [1], outDir: tmp, overwrite: true }), /must not contain the model folder/);
    // Nothing is created when the layer list is bad, not even missing parent folders.
    assert.throws(() => writePrunedPackage(pkg, { remove: [7], outDir: path.join(parent, 'a', 'b') }), /does not exist/);
    noOutput();
    assert.deepEqual(hashFolder(m.dir), before, 'source unchanged');
    assert.deepEqual(partialsNextTo(m.dir), []);
    // An existing output folder is kept unless overwrite is given.
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
    assert.throws(() => writePrunedPackage(pkg, { remove: [1], outDir: out }), /already exists/);
    assert.deepEqual(fs.readdirSync(out), ['keep.txt']);
    assert.deepEqual(fs.readdirSync(parent), ['pruned']);
    const res = writePrunedPackage(pkg, { remove: [1], outDir: out, overwrite: true });
    assert.equal(res.numLayers, 3);
    assert.ok(!fs.existsSync(path.join(out, 'keep.txt')));
    assert.deepEqual(fs.readdirSync(parent), ['pruned'], 'no partial or old folder left after overwrite');
    // A failure during an overwrite keeps the old output.
    assert.throws(() => writePrunedPackage(pkg, { remove: [9], outDir: out, overwrite: true }), /does not exist/);
    assert.equal(openPackage(out).decoder, res.decoder);
    assert.deepEqual(fs.readdirSync(parent), ['pruned']);
    assert.deepEqual(hashFolder(m.dir), before, 'source unchanged');
  }
});

test('removeLayers leaves the model it was given untouched', () => {
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: 4, dir: path.join(tmp, 'untouched') });
  const f = OnnxFile.open(m.decoderPath);
  const snapshot = JSON.stringify(f.graph, (_k, x) => (typeof x === 'bigint' ? String(x) : x instanceof Uint8Array ? x.length : x));
  const r = removeLayers(f.model, [0, 3]);
  assert.equal(r.numLayers, 2);
  assert.equal(JSON.stringify(f.graph, (_k, x) => (typeof x === 'bigint' ? String(x) : x instanceof Uint8Array ? x.length : x)), snapshot);
  f.close();
});

test('per-layer config lists lose the removed entries (optimum text_config, genai decoder)', () => {
  for (const v of [VARIANTS[0], VARIANTS[4]]) {
    const m = writeVariant(tmp, v, { numLayers: 4, dir: path.join(tmp, `lists-${v.name}`) });
    const cfg = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
    const t = v.opts.layout === 'genai' ? cfg.model.decoder : cfg.text_config;
    t.layer_types = ['a0', 'a1', 'a2', 'a3'];
    t.no_rope_layers = [1, 0, 1, 0];
    t.other_list = [1, 2, 3, 4];
    fs.writeFileSync(m.configPath!, JSON.stringify(cfg));
    const res = writePrunedPackage(openPackage(m.dir), { remove: [1, 2], outDir: path.join(tmp, 'out', `lists-${v.name}`) });
    const out = JSON.parse(fs.readFileSync(path.join(res.outDir, path.basename(m.configPath!)), 'utf8'));
    const ot = v.opts.layout === 'genai' ? out.model.decoder : out.text_config;
    assert.equal(ot.num_hidden_layers, 2);
    assert.deepEqual(ot.layer_types, ['a0', 'a3']);
    assert.deepEqual(ot.no_rope_layers, [1, 0]);
    assert.deepEqual(ot.other_list, [1, 2, 3, 4], 'lists that are not per layer are kept');
  }
});
