// Structural layer discovery on every fixture variant: the layers found, their KV anchors and
// the weights named for each role are checked against the fixture's own weights (by value, so
// anonymous `onnx::MatMul_N` initializers are checked too), never against the engine's output.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { discoverLayers } from '../../src/engine/graph/layers';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { initializerNamed, initializersByValue, VARIANTS, writeVariant } from '../support/engineFixtures';
import { LayerWeights } from '../support/synthModels';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layers-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const v of VARIANTS) {
  test(`discoverLayers: ${v.name}`, () => {
    const m = writeVariant(tmp, v, { numLayers: 5 });
    const file = OnnxFile.open(m.decoderPath);
    try {
      const s = discoverLayers(file.graph);
      const L = m.dims.numLayers;
      assert.equal(s.layers.length, L);
      assert.equal(s.style, m.style);
      assert.equal(s.embeddings, 'inputs_embeds');
      assert.equal(s.logits, 'logits');
      assert.equal(s.hiddenSize, m.dims.hidden);
      assert.deepEqual(s.warnings, []);
      const byValue = initializersByValue(file);
      const inits = file.initializerMap();
      const nameOf = (w: Float32Array, what: string) => initializerNamed(byValue, w, what);

      for (let i = 0; i < L; i++) {
        const l = s.layers[i];
        const lw = m.weights.layers[i];
        assert.equal(l.index, i);
        assert.equal(l.kvIndex, i);
        assert.equal(l.pastKey, `past_key_values.${i}.key`);
        assert.equal(l.pastValue, `past_key_values.${i}.value`);
        assert.equal(l.presentKey, `present.${i}.key`);
        assert.equal(l.presentValue, `present.${i}.value`);
        if (v.named) assert.equal(l.nameIndex, i);

        assert.equal(l.oProj?.name, nameOf(lw.o, `layer ${i} o_proj`), `layer ${i} o_proj`);
        assert.equal(l.downProj?.name, nameOf(lw.down, `layer ${i} down_proj`), `layer ${i} down_proj`);
        assert.equal(l.oProj!.inOut, true);
        assert.equal(l.downProj!.inOut, true);
        assert.deepEqual(inits.get(l.oProj!.name)!.dims, [m.dims.heads * m.dims.headDim, m.dims.hidden]);
        assert.deepEqual(inits.get(l.downProj!.name)!.dims, [m.dims.intermediate, m.dims.hidden]);

        const sorted = (xs: string[]) => [...xs].sort();
        const want = (keys: Array<keyof LayerWeights>) => sorted(keys.map((k) => nameOf(lw[k], `layer ${i} ${k}`)));
        assert.deepEqual(sorted(l.attnInputWeights.map((w) => w.name)), want(['q', 'k', 'v']), `layer ${i} q/k/v`);
        assert.deepEqual(sorted(l.mlpInputWeights.map((w) => w.name)), want(['gate', 'up']), `layer ${i} gate/up`);
        for (const w of [...l.attnInputWeights, ...l.mlpInputWeights]) assert.equal(w.inOut, true);

        if (m.style === 'decomposed') {
          assert.equal(l.attention?.kind, 'probs');
          const softmax = file.graph.node.find((n) => n.output[0] === l.attention!.probs);
          assert.equal(softmax?.opType, 'Softmax');
          assert.equal(l.inputNorm, undefined);
        } else {
          const a = l.attention!;
          assert.equal(a.kind, 'qk');
          assert.equal(a.node?.opType, 'GroupQueryAttention');
          assert.equal(a.numHeads, m.dims.heads);
          assert.equal(a.kvNumHeads, m.dims.kvHeads);
          assert.equal(a.doRotary, true);
          assert.equal(a.rotaryInterleaved, false);
          assert.equal(a.presentKey, `present.${i}.key`);
          assert.equal(a.cosCache, 'cos_cache');
          assert.equal(a.sinCache, 'sin_cache');
          // The query tap is the q_proj output (before rotary).
          assert.equal(file.graph.node.find((n) => n.output[0] === a.query)?.input[1], nameOf(lw.q, 'q'));
          assert.equal(l.inputNorm?.opType, i === 0 ? 'SimplifiedLayerNormalization' : 'SkipSimplifiedLayerNormalization');
          assert.equal(l.inputNorm!.input[l.inputNorm!.opType.startsWith('Skip') ? 2 : 1], nameOf(lw.inputNorm, 'input norm'));
        }
      }
      // The residual chain is contiguous: each layer starts where the previous one ended.
      assert.equal(s.layers[0].residualIn, 'inputs_embeds');
      for (let i = 1; i < L; i++) assert.equal(s.layers[i].residualIn, s.layers[i - 1].residualOut);
      if (m.style === 'fused') {
        assert.equal(s.finalNorm?.opType, 'SkipSimplifiedLayerNormalization');
        assert.equal(s.finalNorm!.input[2], nameOf(m.weights.finalNorm, 'final norm'));
      } else {
        assert.equal(s.finalResidual, s.layers[L - 1].residualOut);
      }
    } finally {
      file.close();
    }
  });
}

test('discoverLayers: layers are anchored on their KV inputs, not on input order or names', () => {
  // Shuffle graph inputs and node order; rename every node: discovery must not change.
  const m = writeVariant(tmp, VARIANTS[0], { numLayers: 4, dir: path.join(tmp, 'shuffled') });
  const file = OnnxFile.open(m.decoderPath);
  try {
    const g = file.graph;
    g.input.reverse();
    g.output.reverse();
    g.node.reverse();
    g.node.forEach((n, i) => (n.name = `n${i}`));
    const s = discoverLayers(g);
    assert.equal(s.layers.length, 4);
    for (const l of s.layers) {
      assert.equal(l.kvIndex, l.index);
      assert.equal(l.nameIndex, undefined);
    }
    const byValue = initializersByValue(file);
    assert.equal(s.layers[2].downProj?.name, initializerNamed(byValue, m.weights.layers[2].down, 'down 2'));
  } finally {
    file.close();
  }
});
