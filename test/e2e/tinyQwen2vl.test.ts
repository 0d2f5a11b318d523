// Issue 11, the Qwen2-VL family end to end on the miniature made by tools/tinyqwen2vl/make.py
// (flattened-patch vision encoder with grid_thw and spatial merge, M-RoPE decoder, GQA):
// transformers.js' own Qwen2VLForConditionalGeneration reproduces PyTorch's logits and greedy
// answers; the engine, which lets that class build the decoder's inputs, reproduces PyTorch's
// logits with layers skipped and feeds the decoder the 3-D positions of Qwen2-VL's
// get_rope_index (as computed in Python); calibrate -> prune with compensation -> bench work
// from the CLI, and the pruned package loads and answers in transformers.js with the family's
// class. References are read at run time (written with the package by make.py).

import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { evalMessages, loadEval } from '../../src/engine/data/datasets';
import { removeLayers } from '../../src/engine/graph/surgery';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { ort } from '../../src/engine/runtime/ort';
import { VlmFrontend } from '../../src/engine/runtime/vlmFrontend';
import { Report } from '../../src/protocol/report';
import { loadWithTransformersJs, transformersJsAnswers } from '../support/transformersJs';

const repo = path.resolve(__dirname, '../../..');
const cli = path.join(repo, 'dist/cli.js');
const model = path.join(repo, 'models/tiny-qwen2vl');
const data = path.join(repo, 'data/tiny-vqa');
const ref = JSON.parse(fs.readFileSync(path.join(data, 'reference-qwen2vl/logits.json'), 'utf8')) as {
  samples: Array<{ id: string; image: string; question: string; answer: string; family: string; input_ids: number[]; position_ids: number[][]; greedy_ids: number[]; skips: Array<{ skip: number[]; logits_f32: number[] }> }>;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-qwen2vl-'));
const pruned = path.join(tmp, 'pruned');

function maxDiff(got: ArrayLike<number>, want: number[]): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { diff, scale };
}

before(() => {
  assert.ok(fs.existsSync(cli), 'run npm run build first');
  execFileSync(process.execPath, [cli, 'prune', model, '--calib', path.join(data, 'calib.json'), '--method', 'svl', '--ratio', '0.25', '--samples', '16', '--out', pruned, '--json', '--quiet'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
});

test('the miniature is a Qwen2-VL package and small', () => {
  const pkg = openPackage(model);
  assert.equal((pkg.config as any).model_type, 'qwen2_vl');
  for (const f of ['onnx/vision_encoder.onnx', 'onnx/embed_tokens.onnx', 'onnx/decoder_model_merged.onnx', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(pkg.files.includes(f), f);
  const dec = OnnxFile.open(pkg.decoder);
  const pos = dec.graph.input.find((v) => v.name === 'position_ids');
  dec.close();
  assert.equal(pos?.shape?.length, 3, 'position_ids is [3, batch, seq]');
  const bytes = pkg.files.reduce((a, f) => a + fs.statSync(path.join(model, f)).size, 0);
  assert.ok(bytes < 8 * 2 ** 20, `${bytes} bytes`);
});

test('transformers.js\' own Qwen2VLForConditionalGeneration matches PyTorch: token ids, logits, greedy answers', async (t) => {
  const m = await loadWithTransformersJs(model);
  let worst = 0;
  try {
    assert.equal(m.model.constructor.name, 'Qwen2VLForConditionalGeneration');
    for (const s of ref.samples) {
      const inputs = await m.inputs({ image: path.join(data, s.image), question: s.question });
      assert.deepEqual(Array.from(inputs.input_ids.data as BigInt64Array, Number), s.input_ids, `${s.id}: ids`);
      const out = await m.model({ ...inputs });
      const V = out.logits.dims[2];
      const last = (out.logits.data as Float32Array).slice(out.logits.data.length - V);
      const { diff, scale } = maxDiff(last, s.skips[0].logits_f32);
      assert.ok(diff <= 1e-4 * Math.max(1, scale), `${s.id}: max |diff| ${diff}`);
      worst = Math.max(worst, diff);
      const gen = await m.model.generate({ ...inputs, max_new_tokens: s.greedy_ids.length + 1, do_sample: false });
      const eos = (JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as { eos_token_id: number }).eos_token_id;
      const answer = Array.from(gen.slice(null, [s.input_ids.length, null]).data as BigInt64Array, Number).filter((x) => x !== eos);
      assert.deepEqual(answer.slice(0, s.greedy_ids.length), s.greedy_ids, `${s.id}: greedy answer (KV cache, M-RoPE decoding positions)`);
    }
    t.diagnostic(`${ref.samples.length} prompts: largest |logit diff| transformers.js vs PyTorch ${worst.toExponential(2)}`);
  } finally {
    await m.dispose();
  }
});

test('the engine feeds the decoder what Qwen2-VL\'s class builds: Python\'s M-RoPE positions; logits match PyTorch with layers skipped', async (t) => {
  const pkg = openPackage(model);
  const fe = await VlmFrontend.open(pkg);
  const src = OnnxFile.open(pkg.decoder);
  const runners = new Map<string, DecoderRunner>();
  try {
    let checked = 0;
    let worst = 0;
    for (const s of ref.samples) {
      const item = { id: s.id, image: path.join(data, s.image), question: s.question, answer: s.answer, family: s.family };
      const enc = await fe.encode(evalMessages(item), item.image, true);
      assert.deepEqual(enc.ids, s.input_ids, `${s.id}: ids`);
      assert.equal(enc.isImage.reduce((a, b) => a + b, 0), 64, 'one image token per merged 2x2 patch window');
      assert.deepEqual(enc.imageGrid, [8, 8]);
      for (const sk of s.skips) {
        const key = sk.skip.join(',');
        if (!runners.has(key)) runners.set(key, await DecoderRunner.fromModel(sk.skip.length ? removeLayers(src.model, sk.skip).model : src.model, src));
        const out = await fe.prefill(enc, runners.get(key)!);
        const pos = out.feeds.position_ids;
        assert.deepEqual(pos.dims, [3, 1, s.input_ids.length]);
        assert.deepEqual(Array.from(pos.data as BigInt64Array, Number), s.position_ids.flat(), `${s.id}: position ids`);
        const { diff, scale } = maxDiff(out.lastLogits, sk.logits_f32);
        assert.ok(diff <= 1e-4 * Math.max(1, scale), `${s.id} skipping [${sk.skip}]: max |diff| ${diff}`);
        worst = Math.max(worst, diff);
        checked++;
        if (!sk.skip.length && checked === 1) {
          // The check has teeth: LLaVA-style 1-D positions in all three rows give other logits.
          const S = s.input_ids.length;
          const flat = Array.from({ length: 3 * S }, (_, i) => BigInt(i % S));
          const oneD = await runners.get(key)!.run({ ...out.feeds, position_ids: new ort.Tensor('int64', BigInt64Array.from(flat), [3, 1, S]) });
          assert.ok(maxDiff(oneD.lastLogits, sk.logits_f32).diff > 1e-3, '1-D positions should not reproduce PyTorch');
        }
      }
    }
    assert.ok(checked >= 24);
    t.diagnostic(`${checked} prompt x skip-set cases: largest |logit diff| engine vs PyTorch ${worst.toExponential(2)}`);
  } finally {
    for (const r of runners.values()) await r.dispose();
    src.close();
    await fe.dispose();
  }
});

test('the engine\'s benchmark (generation through the family\'s class) answers as PyTorch did', async () => {
  const acc = JSON.parse(fs.readFileSync(path.join(data, 'reference-qwen2vl/accuracy.json'), 'utf8')) as { items: number; torch_fp32: Record<string, number> };
  // make.py scored the first items of each family, in file order.
  const all = loadEval(path.join(data, 'eval.jsonl'));
  const families = Object.keys(acc.torch_fp32);
  const per = acc.items / families.length;
  const items = families.flatMap((f) => all.filter((it) => it.family === f).slice(0, per));
  const [r] = await benchModels([model], items);
  for (const f of families) assert.ok(Math.abs(r.families[f].accuracy - acc.torch_fp32[f]) <= 1 / per + 1e-9, `${f}: engine ${r.families[f].accuracy} vs PyTorch ${acc.torch_fp32[f]}`);
});

test('calibrate -> prune with compensation -> bench; the pruned package answers in transformers.js as in the engine', async () => {
  const report = JSON.parse(fs.readFileSync(path.join(pruned, 'short-lvlm-report.json'), 'utf8')) as Report;
  const L = report.model.numLayers;
  assert.equal(report.removed.length, Math.round(0.25 * L));
  assert.equal(report.pairs.length, report.removed.length, 'every removed layer compensated');
  assert.equal(report.calibration.visualTokensMean, 64, 'calibration prompts carry the image (LLaVA-JSON <image> turned into the template\'s image entry)');
  assert.deepEqual(report.tokenSamples[0].imageGrid, [8, 8]);
  const cfg = JSON.parse(fs.readFileSync(path.join(pruned, 'config.json'), 'utf8'));
  assert.equal(cfg.num_hidden_layers, L - report.removed.length);
  const items = loadEval(path.join(data, 'eval.jsonl'), 12);
  const rows = await benchModels([model, pruned], items);
  assert.equal(rows[1].numLayers, L - report.removed.length);
  for (const [i, dir] of [model, pruned].entries()) {
    assert.deepEqual(await transformersJsAnswers(dir, items), rows[i].answers.map((a) => a.predicted), `${path.basename(dir)}: transformers.js vs engine`);
  }
});

test('a package of a family transformers.js does not run as image-text-to-text is a one-line error naming it', () => {
  const bad = path.join(tmp, 'unsupported');
  fs.cpSync(model, bad, { recursive: true });
  const cfgFile = path.join(bad, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, model_type: 'mamba_vl' }));
  const r = spawnSync(process.execPath, [cli, 'prune', bad, '--calib', path.join(data, 'calib.json'), '--out', path.join(tmp, 'never')], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /mamba_vl/);
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  fs.rmSync(path.join(bad, 'onnx/embed_tokens.onnx'));
  const r2 = spawnSync(process.execPath, [cli, 'bench', bad, '--eval', path.join(data, 'eval.jsonl'), '--samples', '2', '--no-save'], { encoding: 'utf8' });
  assert.notEqual(r2.status, 0);
  assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
  assert.match(r2.stderr, /qwen2_vl.*embed_tokens/);
  assert.ok(!fs.existsSync(path.join(tmp, 'never')));
});
