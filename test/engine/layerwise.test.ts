// The layer-wise runner against independent references: the chained pieces (prologue, layers,
// head) give the logits of the whole decoder run as one onnxruntime session and of the float64
// reference; skipping layers gives the logits of the package with those layers removed by the
// engine's surgery (written, then run as a plain forward pass); a state cached after the
// prologue or after some layers resumes to the same result; taps and hidden states match the
// reference's residual stream; a one-piece weight budget gives the same numbers.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openPackage } from '../../src/engine/package/modelPackage';
import { writePrunedPackage } from '../../src/engine/package/writePackage';
import { LayerwiseDecoder } from '../../src/engine/runtime/layerwise';
import { toFloat32 } from '../../src/engine/runtime/ort';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { assertClose, hashFolder, VARIANTS, writeVariant } from '../support/engineFixtures';
import { maxAbsDiff, plainPromptFeeds } from '../support/ortDecoder';
import { referenceForward } from '../support/referenceForward';
import { randomEmbeds } from '../support/synthModels';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerwise-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TINY = path.join(ROOT, 'models', 'tiny-llava');
const L = 5;
const S = 7;
const TOL = 1e-5;

/** Whole-graph logits [S, V] of a decoder file, one plain onnxruntime session. */
async function wholeGraphLogits(file: string, embeds: Float32Array, seqLen: number, fallback?: { kvHeads?: number; headDim?: number }): Promise<Float32Array> {
  const r = await DecoderRunner.fromFile(file, { threads: 1 }, fallback);
  try {
    const out = await r.run(feedsFor(r.session.inputNames, embeds, r.spec.hidden));
    assert.equal(embeds.length, seqLen * r.spec.hidden);
    return toFloat32(out.outputs[r.spec.logits]);
  } finally {
    await r.dispose();
  }
}

// The prompt feeds as a frontend prepares them for a text-only prompt (mask, 0..S-1 positions).
const feedsFor = (names: readonly string[], x: Float32Array, H: number) => plainPromptFeeds(names, x, H);
const lwFeeds = (lw: LayerwiseDecoder, x: Float32Array) => feedsFor(lw.cut.model.graph.input.map((v) => v.name), x, lw.spec.hidden);

const all = (n: number) => Array.from({ length: n }, (_, i) => i);

// Inline, chunked external data, anonymous weights, fused genai (external), fused optimum.
for (const v of [VARIANTS[0], VARIANTS[1], VARIANTS[2], VARIANTS[4], VARIANTS[5]]) {
  test(`layer-wise pieces reproduce the whole decoder and layer removal: ${v.name}`, async () => {
    const m = writeVariant(tmp, v, { numLayers: L });
    const before = hashFolder(m.dir);
    const H = m.dims.hidden;
    const V = m.dims.vocab;
    const x = randomEmbeds(S, H, 31);
    const ref = referenceForward(m.weights, x);
    const lw = LayerwiseDecoder.fromFile(m.decoderPath, { threads: 1 });
    try {
      // Whole graph (plain session on the package's file) and float64 reference.
      const whole = await wholeGraphLogits(m.decoderPath, x, S);
      const state0 = await lw.prologue(lwFeeds(lw, x));
      const end = await lw.run(state0, L);
      const { logits, vocab } = await lw.logits(end, all(S));
      assert.equal(vocab, V);
      assertClose(logits, whole, 'pieces vs whole graph', TOL);
      assertClose(logits, ref.logits, 'pieces vs float64 reference', 1e-4);
      // Hidden states between pieces are the reference's residual stream.
      await lw.run(state0, L, {
        onLayer: (k, _i, input, taps) => {
          assertClose(toFloat32(input.residual), ref.layerInputs[k], `layer ${k} input`, 1e-4);
          assertClose(toFloat32(taps[lw.cut.residuals[k + 1]]), ref.layerOutputs[k], `layer ${k} output`, 1e-4);
        },
      });
      // Resume from a cached state: layers [0, 2) then [2, L) from the kept hidden state.
      const mid = await lw.run(state0, 2);
      assert.equal(mid.layer, 2);
      const resumed = await lw.logits(await lw.run(mid, L), [S - 1, 0]);
      assertClose(resumed.logits.subarray(0, V), whole.subarray((S - 1) * V), 'resumed, last position', TOL);
      assertClose(resumed.logits.subarray(V), whole.subarray(0, V), 'resumed, position 0', TOL);

      // Skips against the engine's surgery: the pruned package run as one plain session.
      for (const skip of [[0], [2], [L - 1], [1, 3]]) {
        const outDir = path.join(tmp, 'pruned', `${v.name}-${skip.join('-')}`);
        const res = writePrunedPackage(openPackage(m.dir), { remove: skip, outDir });
        const pruned = await wholeGraphLogits(res.decoder, x, S);
        const skipped = await lw.forward(lwFeeds(lw, x), { skip, positions: all(S) });
        assertClose(skipped.logits, pruned, `skip [${skip}] vs surgery`, TOL);
        assertClose(skipped.logits, referenceForward(m.weights, x, { skipLayers: skip }).logits, `skip [${skip}] vs reference`, 1e-4);
        assert.ok(maxAbsDiff(skipped.logits, whole) > 1e-3, `skip [${skip}] changes the logits`);
        // From a state cached after the prologue, skipping only layers after a point.
        const partial = await lw.runMany([await lw.run(state0, 1)], L, { skip: skip.filter((k) => k >= 1) });
        if (skip.every((k) => k >= 1)) assertClose((await lw.logits(partial[0], all(S))).logits, pruned, `skip [${skip}] from layer 1`, TOL);
      }
    } finally {
      await lw.dispose();
    }
    assert.deepEqual(hashFolder(m.dir), before, 'package unchanged');
    assert.deepEqual(fs.readdirSync(path.dirname(m.dir)).filter((f) => f.startsWith('.short-lvlm-session-')), [], 'session folders removed');
  });
}

test('layer-wise with a one-piece weight budget, several samples layer by layer, taps', async () => {
  const m = writeVariant(tmp, VARIANTS[4], { numLayers: L });
  const H = m.dims.hidden;
  const lw = LayerwiseDecoder.fromFile(m.decoderPath, { threads: 1, maxOpenBytes: 1 });
  try {
    const xs = [randomEmbeds(S, H, 1), randomEmbeds(S - 3, H, 2), randomEmbeds(S + 2, H, 3)];
    const states = await Promise.all(xs.map((x) => lw.prologue(lwFeeds(lw, x))));
    const mids: Float32Array[][] = xs.map(() => []);
    const tap = (k: number) => lw.cut.structure.layers[k].residualMid;
    const ends = await lw.runMany(states, L, {
      onLayer: async (k, i, input) => {
        // Taps on request: the residual stream between attention and MLP.
        const r = await lw.layer(input, [tap(k)]);
        mids[i][k] = toFloat32(r.taps[tap(k)]);
      },
    });
    for (let i = 0; i < xs.length; i++) {
      const seq = xs[i].length / H;
      const ref = referenceForward(m.weights, xs[i]);
      assertClose((await lw.logits(ends[i], all(seq))).logits, ref.logits, `sample ${i} logits`, 1e-4);
      for (let k = 0; k < L; k++) assertClose(mids[i][k], ref.layerMids[k], `sample ${i} layer ${k} mid`, 1e-4);
    }
    assert.ok(lw.pieceBytes(0) > 0 && lw.pieceBytes(L) > 0, 'piece weight sizes are known');
  } finally {
    await lw.dispose();
  }
});

test('layer-wise on models/tiny-llava: whole-graph logits and removal of a layer', async () => {
  const pkg = openPackage(TINY);
  const fallback = { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim };
  const lw = LayerwiseDecoder.fromFile(pkg.decoder, { threads: 1, fallback });
  const Lt = lw.numLayers;
  const H = lw.spec.hidden;
  const seq = 12;
  const x = randomEmbeds(seq, H, 77);
  try {
    const whole = await wholeGraphLogits(pkg.decoder, x, seq, fallback);
    const pieces = await lw.forward(lwFeeds(lw, x), { positions: all(seq) });
    assertClose(pieces.logits, whole, 'tiny-llava pieces vs whole graph', TOL);
    const k = Math.floor(Lt / 2);
    const res = writePrunedPackage(pkg, { remove: [k], outDir: path.join(tmp, 'tiny-pruned') });
    const pruned = await wholeGraphLogits(res.decoder, x, seq, fallback);
    const skipped = await lw.forward(lwFeeds(lw, x), { skip: [k], positions: all(seq) });
    assertClose(skipped.logits, pruned, `tiny-llava skip ${k} vs surgery`, TOL);
    assert.ok(maxAbsDiff(skipped.logits, whole) > 1e-4, 'skipping changes the logits');
  } finally {
    await lw.dispose();
  }
});

test('layer-wise errors: out-of-range layer and position, head before the last layer', async () => {
  const m = writeVariant(tmp, VARIANTS[0], { numLayers: 3 });
  const lw = LayerwiseDecoder.fromFile(m.decoderPath, { threads: 1 });
  try {
    const s = await lw.prologue(lwFeeds(lw, randomEmbeds(3, m.dims.hidden, 4)));
    await assert.rejects(lw.logits(s), /after the last layer/);
    await assert.rejects(lw.run(s, 4), /cannot run from layer 0 to layer 4/);
    await assert.rejects(lw.logits(await lw.run(s, 3), [3]), /outside the sequence/);
  } finally {
    await lw.dispose();
  }
});
