// Issue 11, families end to end on the project's miniature packages (tools/vlmfamilies):
// SmolVLM / Idefics3 style (image splitting, pixel_attention_mask, row/column tokens) and
// Gemma 3 style (scaled embeddings, sandwich norms, positions from 1, sliding-window layers).
// transformers.js' own class and processor must reproduce PyTorch's prompt, token ids, logits
// and greedy answers, and a package with layers removed by the CLI must match PyTorch run
// with those layers skipped.

import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { evalMessages, loadCalibration, loadEval } from '../../src/engine/data/datasets';
import { discoverLayers } from '../../src/engine/graph/layers';
import { removeLayers } from '../../src/engine/graph/surgery';
import { CalibrationSession } from '../../src/engine/method/calibrate';
import { lastVisible } from '../../src/engine/method/tis';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { VlmFrontend } from '../../src/engine/runtime/vlmFrontend';
import { Recipe, Report } from '../../src/protocol/report';
import { assertLogitsClose, FAMILIES, familyRef, openInTransformersJs, repo, vqaDir } from '../support/familyPackages';
import { transformersJsAnswers } from '../support/transformersJs';

const cli = path.join(repo, 'dist/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-families-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const calib = path.join(vqaDir, 'calib.json');
const pruned = (name: string) => path.join(tmp, `${name}-calibrated`);
/** Image tokens per prompt: SmolVLM 4 tiles + the global image x 16; Gemma 3 one block of 16. */
const IMAGE_TOKENS = { smolvlm: 80, gemma3: 16 };

before(() => {
  assert.ok(fs.existsSync(cli), 'run npm run build first');
  for (const fam of FAMILIES) {
    execFileSync(process.execPath, [cli, 'prune', fam.dir, '--calib', calib, '--method', 'svl', '--ratio', '0.25', '--samples', '12', '--out', pruned(fam.name), '--quiet'], { stdio: 'ignore' });
  }
  const gemma = FAMILIES.find((f) => f.name === 'gemma3')!;
  execFileSync(process.execPath, [cli, 'prune', gemma.dir, '--calib', calib, '--method', 'svl', '--ratio', '0.25', '--samples', '12', '--scp-target', 'input', '--out', pruned('gemma3-input'), '--quiet'], { stdio: 'ignore' });
});

function decoderInputs(dir: string): string[] {
  const f = OnnxFile.open(path.join(dir, 'onnx/decoder_model_merged.onnx'));
  try {
    return f.graph.input.map((v) => v.name);
  } finally {
    f.close();
  }
}

for (const fam of FAMILIES) {
  const ref = familyRef(fam.name);

  test(`${fam.name}: the package has transformers.js' layout for the family and is small`, () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(fam.dir, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, fam.name);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'processor_config.json', 'generation_config.json']) {
      assert.ok(fs.existsSync(path.join(fam.dir, f)), f);
    }
    const inputs = decoderInputs(fam.dir);
    const L = cfg.text_config.num_hidden_layers;
    assert.deepEqual(inputs.slice(0, 3), ['inputs_embeds', 'attention_mask', 'position_ids']);
    assert.equal(inputs.length, 3 + 2 * L, 'no inputs beyond embeddings, mask, positions and the cache');
    const vision = OnnxFile.open(path.join(fam.dir, 'onnx/vision_encoder.onnx'));
    const visionInputs = vision.graph.input.map((v) => v.name);
    vision.close();
    assert.deepEqual(visionInputs, fam.name === 'smolvlm' ? ['pixel_values', 'pixel_attention_mask'] : ['pixel_values']);
    const bytes = fs.readdirSync(path.join(fam.dir, 'onnx')).reduce((a, f) => a + fs.statSync(path.join(fam.dir, 'onnx', f)).size, 0);
    assert.ok(bytes < 4 * 2 ** 20, `${bytes} bytes`);
  });

  test(`${fam.name}: layer discovery: q/k/v and gate/up are the input-side weights, also behind Gemma's sandwich norms`, () => {
    const f = OnnxFile.open(path.join(fam.dir, 'onnx/decoder_model_merged.onnx'));
    try {
      const init = new Map(f.graph.initializer.map((t) => [t.name, t.dims.map(Number)]));
      const { layers } = discoverLayers(f.graph);
      const [H, I] = [64, 128];
      for (const l of layers) {
        // [in, out] layout: q [H, 4x16], k and v [H, 2x16]; gate and up [H, I].
        assert.deepEqual(l.attnInputWeights.map((w) => init.get(w.name)).sort(), [[H, 32], [H, 32], [H, 64]], `layer ${l.index} attention inputs`);
        assert.deepEqual(l.mlpInputWeights.map((w) => init.get(w.name)), [[H, I], [H, I]], `layer ${l.index} MLP inputs`);
        // A norm follows Gemma's o_proj and down_proj: nothing writes linearly into the residual stream.
        assert.equal(l.downProj === undefined, fam.name === 'gemma3');
        assert.equal(l.oProj === undefined, fam.name === 'gemma3');
      }
    } finally {
      f.close();
    }
  });

  test(`${fam.name}: transformers.js' own class and processor reproduce PyTorch (prompt, ids, logits, greedy answer)`, async () => {
    const m = await openInTransformersJs(fam.dir, fam.className);
    try {
      for (const s of ref.samples) {
        const r = await m.run(s.question, path.join(vqaDir, s.image), ref.max_new_tokens);
        assert.equal(m.rendered(s.question), s.prompt, `${s.id}: chat template`);
        assert.deepEqual(r.ids, s.input_ids, `${s.id}: token ids after image-token expansion`);
        assertLogitsClose(r.lastLogits, s.skips.find((k) => k.skip.length === 0)!.logits_f32, `${s.id}: logits`);
        assert.deepEqual(r.generated, s.greedy.find((g) => g.skip.length === 0)!.tokens, `${s.id}: greedy answer`);
        if (s.bidirectional) {
          // transformers.js passes no token_type_ids to a Gemma 3 decoder: the package attends
          // causally, and PyTorch with bidirectional image blocks gives other logits.
          let d = 0;
          s.bidirectional.logits_f32.forEach((x, i) => (d = Math.max(d, Math.abs(x - r.lastLogits[i]))));
          assert.ok(d > 1e-2, `${s.id}: bidirectional logits differ (${d})`);
        }
      }
    } finally {
      await m.dispose();
    }
  });

  test(`${fam.name}: layers removed by the CLI match PyTorch with those layers skipped, in transformers.js`, async () => {
    const skips = ref.samples[0].skips.map((k) => k.skip).filter((k) => k.length > 0);
    assert.ok(skips.length >= 4);
    for (const skip of skips) {
      const withGreedy = ref.samples[0].greedy.some((g) => g.skip.join() === skip.join());
      const out = path.join(tmp, `${fam.name}-${skip.join('_')}`);
      execFileSync(process.execPath, [cli, 'prune', fam.dir, '--layers', skip.join(','), '--no-scp', '--out', out, '--quiet'], { stdio: 'ignore' });
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
      const L = JSON.parse(fs.readFileSync(path.join(fam.dir, 'config.json'), 'utf8')).text_config.num_hidden_layers;
      assert.equal(cfg.text_config.num_hidden_layers, L - skip.length);
      if (cfg.text_config.layer_types) assert.equal(cfg.text_config.layer_types.length, L - skip.length);
      const m = await openInTransformersJs(out, fam.className);
      try {
        for (const s of ref.samples.slice(0, withGreedy ? 2 : 1)) {
          const r = await m.run(s.question, path.join(vqaDir, s.image), ref.max_new_tokens);
          assertLogitsClose(r.lastLogits, s.skips.find((k) => k.skip.join() === skip.join())!.logits_f32, `${s.id} without [${skip}]`);
          const want = s.greedy.find((g) => g.skip.join() === skip.join());
          if (want) assert.deepEqual(r.generated, want.tokens, `${s.id} without [${skip}]: greedy answer`);
        }
      } finally {
        await m.dispose();
      }
    }
  });
}

for (const fam of FAMILIES) {
  test(`${fam.name}: calibrate -> prune -> bench; the pruned package answers in transformers.js as in the engine`, async () => {
    const report = JSON.parse(fs.readFileSync(path.join(pruned(fam.name), 'short-lvlm-report.json'), 'utf8')) as Report;
    const L = report.model.numLayers;
    assert.equal(report.removed.length, Math.round(0.25 * L));
    assert.equal(report.calibration.visualTokensMean, IMAGE_TOKENS[fam.name], 'calibration prompts carry the image');
    if (fam.name === 'gemma3') {
      // A norm follows Gemma's down_proj and o_proj: nothing to fold SCP into, and the report says so.
      assert.deepEqual(report.pairs, []);
      assert.match(report.warnings.join('\n'), /SCP skipped.*normalization/);
    } else {
      assert.equal(report.pairs.length, report.removed.length, 'every removed layer compensated');
      // The held-out check may say SCP raised the KL (svl keeps it as published); nothing else.
      assert.deepEqual(report.warnings.filter((w) => !/held-out KL/.test(w)), []);
    }
    const items = loadEval(path.join(vqaDir, 'eval.jsonl'), 8);
    const rows = await benchModels([fam.dir, pruned(fam.name)], items);
    assert.equal(rows[1].numLayers, L - report.removed.length);
    for (const [i, dir] of [fam.dir, pruned(fam.name)].entries()) {
      assert.deepEqual(await transformersJsAnswers(dir, items), rows[i].answers.map((a) => a.predicted), `${path.basename(dir)}: transformers.js vs engine`);
    }
  });

  test(`${fam.name}: the engine, through the family's class, feeds the decoder what PyTorch sees; logits match with layers skipped`, async () => {
    const ref = familyRef(fam.name);
    const pkg = openPackage(fam.dir);
    const fe = await VlmFrontend.open(pkg);
    const src = OnnxFile.open(pkg.decoder);
    try {
      for (const s of ref.samples.slice(0, 2)) {
        const item = { id: s.id, image: path.join(vqaDir, s.image), question: s.question, answer: '', family: '' };
        const enc = await fe.encode(evalMessages(item), item.image, true);
        assert.deepEqual(enc.ids, s.input_ids, `${s.id}: ids`);
        for (const sk of s.skips) {
          const runner = await DecoderRunner.fromModel(sk.skip.length ? removeLayers(src.model, sk.skip).model : src.model, src);
          try {
            assertLogitsClose((await fe.prefill(enc, runner)).lastLogits, sk.logits_f32, `${s.id} skipping [${sk.skip}]`);
          } finally {
            await runner.dispose();
          }
        }
      }
    } finally {
      src.close();
      await fe.dispose();
    }
  });

  test(`${fam.name}: TIS counts exactly the attention the decoder applies (its real mask)`, async () => {
    // Every row's attention lies inside the mask TIS assumes (row sums 1) and reaches its last
    // visible key: the assumed mask is neither narrower nor wider than the decoder's. Gemma 3
    // run by transformers.js is causal (no token_type_ids reach its decoder).
    const cs = await CalibrationSession.open(openPackage(fam.dir));
    try {
      const [sample] = loadCalibration(calib, 1);
      const enc = await cs.encode(sample);
      assert.equal(enc.isImage.reduce((a, b) => a + b, 0), IMAGE_TOKENS[fam.name]);
      const layers = Array.from({ length: cs.numLayers }, (_, i) => i);
      const taps = await cs.run(enc, layers);
      for (const l of layers) {
        const a = taps.attention(l);
        const S = a.seqLen;
        for (let q = 0; q < S; q++) {
          let sum = 0;
          for (let k = 0; k < S; k++) sum += a.probs[q * S + k];
          assert.ok(Math.abs(sum - 1) < 1e-4, `layer ${l} row ${q}: attention inside the mask sums to ${sum}`);
          assert.ok(a.probs[q * S + lastVisible(a.lastKey, q)] > 0, `layer ${l} row ${q}: last visible key unattended`);
        }
      }
    } finally {
      await cs.dispose();
    }
  });
}

test('gemma3: SCP on the input side (q, k, v, gate, up) compensates every removed layer; the package answers in transformers.js as in the engine', async () => {
  const gemma = FAMILIES.find((f) => f.name === 'gemma3')!;
  const dir = pruned('gemma3-input');
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'short-lvlm-report.json'), 'utf8')) as Report;
  const recipe = JSON.parse(fs.readFileSync(path.join(dir, 'recipe.json'), 'utf8')) as Recipe;
  assert.deepEqual(report.warnings.filter((w) => !/held-out KL/.test(w)), []);
  assert.equal(report.pairs.length, report.removed.length);
  const src = OnnxFile.open(path.join(gemma.dir, 'onnx/decoder_model_merged.onnx'));
  const { layers } = discoverLayers(src.graph);
  src.close();
  for (const c of recipe.compensation) {
    const want = [...layers[c.partner].attnInputWeights, ...layers[c.partner].mlpInputWeights].map((w) => w.name).sort();
    assert.deepEqual(c.weights.map((w) => w.name).sort(), want, `partner ${c.partner}: its five input-side weights`);
    assert.ok(c.weights.every((w) => w.side === 'input'));
  }
  const items = loadEval(path.join(vqaDir, 'eval.jsonl'), 8);
  const [row] = await benchModels([dir], items);
  assert.deepEqual(await transformersJsAnswers(dir, items), row.answers.map((a) => a.predicted));
});
