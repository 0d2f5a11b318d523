// Checks a pruned package written by the engine against the fixture it came from: the
// decoder runs in onnxruntime-node (prompt with an empty past, then one more token with the
// present fed back as past) and matches the independent reference with those layers skipped;
// its cache inputs/outputs, initializers, names and config agree with the smaller model.

import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { discoverLayers } from '../../src/engine/graph/layers';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { assertClose, initializersByValue, partialsNextTo, valueKey } from './engineFixtures';
import { runDecoderStep, maxAbsDiff } from './ortDecoder';
import { referenceForward, ReferenceOptions } from './referenceForward';
import { LAYER_WEIGHT_KEYS, randomEmbeds, SynthModel } from './synthModels';

export const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  logSeverityLevel: 3,
};

/** Runs `decoderPath` (numLayers layers) for a prompt and one more token; compares with the reference. */
export async function checkLogits(decoderPath: string, m: SynthModel, numLayers: number, ref: ReferenceOptions, what: string, seqLen = 5): Promise<void> {
  const dims = { ...m.dims, numLayers };
  const H = m.dims.hidden;
  const V = m.dims.vocab;
  const session = await ort.InferenceSession.create(decoderPath, sessionOptions);
  try {
    const all = randomEmbeds(seqLen + 1, H, 17);
    const step1 = await runDecoderStep(session, dims, all.slice(0, seqLen * H));
    const ref1 = referenceForward(m.weights, all.subarray(0, seqLen * H), ref);
    assertClose(step1.logits, ref1.logits, `${what}: prompt logits`);
    const step2 = await runDecoderStep(session, dims, all.slice(seqLen * H), step1.present);
    assert.deepEqual(step2.present[numLayers - 1].key.dims, [1, m.dims.kvHeads, seqLen + 1, m.dims.headDim]);
    const ref2 = referenceForward(m.weights, all, ref);
    assertClose(step2.logits, ref2.logits.subarray(seqLen * V), `${what}: next-token logits`);
    // The check can fail: the unpruned model gives other logits.
    if ([...(ref.skipLayers ?? [])].length) {
      const full = referenceForward(m.weights, all.subarray(0, seqLen * H));
      assert.ok(maxAbsDiff(full.logits, ref1.logits) > 1e-2, `${what}: removing layers changes the logits`);
    }
  } finally {
    await session.release();
  }
}

/** Graph-level checks of a pruned decoder: caches, initializers, names. */
export function checkPrunedGraph(prunedPath: string, m: SynthModel, removed: number[], named: boolean): void {
  const L = m.dims.numLayers;
  const Lp = L - removed.length;
  const retained = [...Array(L).keys()].filter((i) => !removed.includes(i));
  const src = OnnxFile.open(m.decoderPath);
  const f = OnnxFile.open(prunedPath);
  try {
    const g = f.graph;
    const past = g.input.filter((v) => v.name.startsWith('past_key_values.')).map((v) => v.name);
    const present = g.output.filter((v) => v.name.startsWith('present.')).map((v) => v.name);
    const expect = (pre: string) => [...Array(Lp).keys()].flatMap((i) => [`${pre}${i}.key`, `${pre}${i}.value`]);
    assert.deepEqual(past, expect('past_key_values.'), 'contiguous past_key_values inputs');
    assert.deepEqual(present, expect('present.'), 'contiguous present outputs');
    assert.equal(g.output[0].name, 'logits');
    assert.equal(g.input.length, past.length + (m.style === 'decomposed' ? 3 : 2));

    // Big initializers (weights, norms, rotary caches): exactly the original ones minus the
    // removed layers', compared by value.
    const big = (file: OnnxFile) => {
      const keys = new Map<string, string>();
      for (const t of file.graph.initializer) {
        if (t.dataType === 1 && t.dims.reduce((a, b) => a * b, 1) >= m.dims.hidden) keys.set(valueKey(file.tensorFloat32(t)), t.name);
      }
      return keys;
    };
    const removedKeys = new Set(removed.flatMap((k) => LAYER_WEIGHT_KEYS.map((w) => valueKey(m.weights.layers[k][w]))));
    const srcBig = big(src);
    const want = [...srcBig.keys()].filter((k) => !removedKeys.has(k)).sort();
    const gotBig = big(f);
    assert.deepEqual([...gotBig.keys()].sort(), want, 'initializers: removed layers dropped, everything else kept');
    for (const k of [m.weights.finalNorm, m.weights.lmHead]) assert.ok(gotBig.has(valueKey(k)), 'final norm and lm_head kept');
    const rotary = src.graph.initializer.filter((t) => /cos|sin/.test(t.name)).map((t) => t.name);
    assert.ok(rotary.length >= 2);
    for (const r of rotary) assert.ok(g.initializer.some((t) => t.name === r), `shared rotary cache ${r} kept`);

    // The pruned graph is a decoder of Lp layers again (it can be pruned further).
    const s = discoverLayers(g);
    assert.equal(s.layers.length, Lp);
    assert.deepEqual(s.warnings, []);
    const prunedByValue = initializersByValue(f);
    s.layers.forEach((l, j) => {
      assert.equal(l.kvIndex, j);
      assert.equal(l.oProj?.name, prunedByValue.get(valueKey(m.weights.layers[retained[j]].o))?.[0], `pruned layer ${j} o_proj`);
      assert.equal(l.downProj?.name, prunedByValue.get(valueKey(m.weights.layers[retained[j]].down))?.[0], `pruned layer ${j} down_proj`);
    });

    // Names renumbered contiguously.
    const byValue = initializersByValue(f);
    const srcByValue = initializersByValue(src);
    if (named) {
      retained.forEach((orig, j) => {
        for (const key of LAYER_WEIGHT_KEYS) {
          const k = valueKey(m.weights.layers[orig][key]);
          const got = byValue.get(k)![0];
          const before = srcByValue.get(k)![0];
          assert.equal(got, before.replace(`layers.${orig}.`, `layers.${j}.`), `layer ${orig} -> ${j}: ${key} renamed`);
        }
      });
    }
    const layerNums = (s: string) => [...s.matchAll(/layers?[._/](\d+)(?=[._/:]|$)/g)].map((x) => Number(x[1]));
    const finalNormName = byValue.get(valueKey(m.weights.finalNorm))![0];
    const check = (name: string, kind: string) => {
      for (const n of layerNums(name)) {
        const finalNorm = /final_norm/.test(name);
        assert.ok(finalNorm ? n === Lp : n < Lp, `${kind} "${name}" has layers.${n} with ${Lp} layers`);
      }
    };
    for (const t of g.initializer) check(t.name, 'initializer');
    for (const n of g.node) {
      check(n.name, 'node');
      for (const t of [...n.input, ...n.output]) check(t, 'tensor');
    }
    if (m.style === 'fused') assert.equal(finalNormName, `model.layers.${Lp}.final_norm_layernorm.weight`);
    const nodeNames = g.node.map((n) => n.name).filter(Boolean);
    assert.equal(new Set(nodeNames).size, nodeNames.length, 'node names unique');
    const produced = g.node.flatMap((n) => n.output.filter(Boolean));
    assert.equal(new Set(produced).size, produced.length, 'every tensor has one producer');
    // Every layer-numbered node of the pruned graph: each retained layer keeps its full node set.
    if (named) {
      const perLayer = (file: OnnxFile, i: number) =>
        file.graph.node.filter((n) => layerNums(n.name)[0] === i && !/final_norm/.test(n.name)).length;
      retained.forEach((orig, j) => {
        assert.equal(perLayer(f, j), perLayer(src, orig), `layer ${orig} -> ${j}: node count`);
      });
    }
  } finally {
    f.close();
    src.close();
  }
}

/** The pruned package's config and external data agree with the graph. */
export function checkPrunedConfig(outDir: string, m: SynthModel, Lp: number): void {
  const decoderRel = path.relative(m.dir, m.decoderPath);
  const decoder = path.join(outDir, decoderRel);
  assert.ok(fs.existsSync(decoder));
  assert.deepEqual(partialsNextTo(outDir), [], 'no partial folder left');
  const decoderDir = path.dirname(decoder);
  const base = path.basename(decoder);
  const dataFiles = fs.readdirSync(decoderDir).filter((f) => f.startsWith(base + '_data') || f === base + '.data').sort();
  const refs = new Set<string>();
  const f = OnnxFile.open(decoder);
  for (const t of f.graph.initializer) for (const [k, v] of t.externalData ?? []) if (k === 'location') refs.add(v);
  f.close();
  assert.deepEqual([...refs].sort(), dataFiles, 'every data file written is referenced, and only those');
  if (m.layout === 'genai') {
    const cfg = JSON.parse(fs.readFileSync(path.join(outDir, 'genai_config.json'), 'utf8'));
    assert.equal(cfg.model.decoder.num_hidden_layers, Lp);
    assert.deepEqual(dataFiles, ['model.onnx.data']);
  } else if (m.layout === 'optimum') {
    const cfg = JSON.parse(fs.readFileSync(path.join(outDir, 'config.json'), 'utf8'));
    assert.equal(cfg.text_config.num_hidden_layers, Lp);
    const src = JSON.parse(fs.readFileSync(m.configPath!, 'utf8'));
    if (m.dataFiles.length) {
      const n = cfg['transformers.js_config'].use_external_data_format[base];
      assert.equal(n, dataFiles.length, 'use_external_data_format chunk count');
      assert.deepEqual(dataFiles, [...Array(n).keys()].map((i) => (i === 0 ? `${base}_data` : `${base}_data_${i}`)).sort());
    } else {
      assert.deepEqual(dataFiles, []);
      assert.equal(cfg['transformers.js_config'], undefined);
    }
    // Nothing else in the config changed.
    src.text_config.num_hidden_layers = Lp;
    delete src['transformers.js_config'];
    delete cfg['transformers.js_config'];
    assert.deepEqual(cfg, src);
  }
}
