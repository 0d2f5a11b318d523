// Issue 11, families end to end on the project's miniature packages (tools/vlmfamilies):
// SmolVLM / Idefics3 style (image splitting, pixel_attention_mask, row/column tokens) and
// Gemma 3 style (scaled embeddings, sandwich norms, positions from 1, sliding-window layers).
// transformers.js' own class and processor must reproduce PyTorch's prompt, token ids, logits
// and greedy answers, and a package with layers removed by the CLI must match PyTorch run
// with those layers skipped.

import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { assertLogitsClose, FAMILIES, familyRef, openInTransformersJs, repo, vqaDir } from '../support/familyPackages';

const cli = path.join(repo, 'dist/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-families-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

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

  test(`${fam.name}: transformers.js' own class and processor reproduce PyTorch (prompt, ids, logits, greedy answer)`, async () => {
    const m = await openInTransformersJs(fam.dir, fam.className);
    try {
      for (const s of ref.samples) {
        const r = await m.run(s.question, path.join(vqaDir, s.image), ref.max_new_tokens);
        assert.equal(r.prompt, s.prompt, `${s.id}: chat template`);
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
