// A pruned package carries the model's own files and not the user's other data in the model
// folder (issue 15 item 6): configs, tokenizer, processor, chat template, generation config,
// model card, licence, the onnx/ folder (and a genai package's graphs with their .data, named
// by its config) are copied; calibration/evaluation sets, images, notes and other folders are
// not, and the report and the job's summary list what was left out. The expected sets are
// written out here by hand, from what each file is.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pruneJob } from '../../src/engine/jobs';
import { openPackage } from '../../src/engine/package/modelPackage';
import { writePrunedPackage } from '../../src/engine/package/writePackage';
import { REPORT_FILE, RECIPE_FILE } from '../../src/protocol/files';
import type { Report } from '../../src/protocol/report';

const repo = path.resolve(__dirname, '..', '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pkg-contents-'));

function filesUnder(dir: string, rel = ''): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? filesUnder(dir, r) : [r];
  });
}

function write(root: string, rel: string, text = `${rel}\n`): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), text);
}

/** What a user keeps in a model folder besides the model. */
const USER_FILES = ['calib.json', 'eval.jsonl', 'images/cat.png', 'experiments/run1/log.txt', 'notes.txt', 'my-prompts.md'];

test('transformers.js package: model files copied, the user files beside them left out and listed in the report', async () => {
  const model = path.join(tmp, 'tiny-llava');
  fs.cpSync(path.join(repo, 'models', 'tiny-llava'), model, { recursive: true });
  // Model files an exporter or a model repository adds.
  const modelExtras = ['README.md', 'LICENSE', 'chat_template.jinja', 'added_tokens.json', 'onnx/notes-from-exporter.txt'];
  for (const f of [...modelExtras, ...USER_FILES]) write(model, f);
  // The calibration set is the user's, in the model folder, as in the walk-through
  // (two samples of the bundled set, images referred to where they are).
  const calib = path.join(model, 'calib.json');
  const samples = JSON.parse(fs.readFileSync(path.join(repo, 'data', 'tiny-vqa', 'calib.json'), 'utf8')) as { image: string }[];
  fs.writeFileSync(calib, JSON.stringify(samples.slice(0, 2).map((s) => ({ ...s, image: path.join(repo, 'data', 'tiny-vqa', s.image) }))));

  const expectedModel = [
    'config.json',
    'generation_config.json',
    'preprocessor_config.json',
    'processor_config.json',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'onnx/decoder_model_merged.onnx',
    'onnx/embed_tokens.onnx',
    'onnx/vision_encoder.onnx',
    ...modelExtras,
  ].sort();
  const expectedLeftOut = [...USER_FILES].sort();

  // Without calibration (a hand-made choice): the summary lists what was left out.
  const manual = await pruneJob({ model, out: path.join(tmp, 'manual'), options: { layers: [3, 9], scp: false } });
  assert.deepEqual(filesUnder(manual.out).sort(), expectedModel);
  assert.deepEqual(manual.leftOut?.slice().sort(), expectedLeftOut);
  assert.equal(fs.readFileSync(path.join(manual.out, 'README.md'), 'utf8'), 'README.md\n', 'model card copied unchanged');

  // Calibrated: the report records the same list.
  const auto = await pruneJob({ model, calib, out: path.join(tmp, 'auto'), options: { ratio: 0.1, samples: 2, scp: false } });
  assert.deepEqual(filesUnder(auto.out).sort(), [...expectedModel, REPORT_FILE, RECIPE_FILE].sort());
  const report = JSON.parse(fs.readFileSync(path.join(auto.out, REPORT_FILE), 'utf8')) as Report;
  assert.deepEqual(report.output.leftOut?.slice().sort(), expectedLeftOut);
  // The pruned package still opens as the same layout with the same decoder.
  assert.equal(path.relative(auto.out, openPackage(auto.out).decoder), 'onnx/decoder_model_merged.onnx');
});

test('onnxruntime-genai package: the graphs and data its config names are kept, user files left out', () => {
  const model = path.join(tmp, 'genai');
  fs.cpSync(path.join(repo, 'test', 'fixtures', 'genai-phi3v-gqa'), model, { recursive: true });
  fs.rmSync(path.join(model, 'reference.json')); // the fixture's test data, not part of the model
  for (const f of [...USER_FILES, 'LICENSE.txt', 'README.md']) write(model, f);
  const res = writePrunedPackage(openPackage(model), { remove: [0], outDir: path.join(tmp, 'genai-out') });
  assert.deepEqual(
    filesUnder(res.outDir).sort(),
    ['LICENSE.txt', 'README.md', 'embedding.onnx', 'embedding.onnx.data', 'genai_config.json', 'model.onnx', 'model.onnx.data', 'processor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'vision.onnx', 'vision.onnx.data'].sort(),
  );
  assert.deepEqual(res.leftOut.slice().sort(), [...USER_FILES].sort());
});
