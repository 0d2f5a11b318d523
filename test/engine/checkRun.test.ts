// The run form's check (engine op `checkRun`): the model's decoder and family, the calibration
// preview and every problem a prune or sweep would refuse, listed per field. Expectations are
// read from the files themselves (config.json, the calibration JSON, the image bytes), and a
// calibration file the preview calls broken must fail the real loader with its first problem.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkRun } from '../../src/engine/commands/checkRun';
import { loadCalibration } from '../../src/engine/data/datasets';

const REPO = path.resolve(__dirname, '..', '..', '..');
const MODEL = path.join(REPO, 'models', 'tiny-llava');
const CALIB = path.join(REPO, 'data', 'tiny-vqa', 'calib.json');
const EVAL = path.join(REPO, 'data', 'tiny-vqa', 'eval.jsonl');

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'check-run-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a valid prune: the decoder that will be pruned, its family, the calibration preview, no problems', async () => {
  const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
  const records = JSON.parse(fs.readFileSync(CALIB, 'utf8')) as { id: string; image: string; conversations: { value: string }[] }[];
  const out = path.join(tmp, 'out-ok');
  const r = await checkRun({ kind: 'prune', model: path.join(MODEL, 'onnx', 'vision_encoder.onnx'), calib: CALIB, out, options: { ratio: 0.25, samples: 10 }, previews: 3 });
  assert.deepEqual(r.problems, []);
  assert.equal(r.model?.root, MODEL);
  assert.equal(r.model?.decoder, path.join('onnx', 'decoder_model_merged.onnx'), 'a right-click on the vision encoder still prunes the decoder, and the form says so');
  assert.equal(r.model?.variant, 'fp32');
  assert.equal(r.model?.family, `${config.model_type} (LlavaForConditionalGeneration)`);
  assert.equal(r.model?.numLayers, config.text_config.num_hidden_layers);
  assert.equal(r.calib?.records, records.length);
  assert.equal(r.calib?.samples, 10, '--samples 10 reads 10 samples');
  assert.deepEqual(
    r.calib?.previews.map((p) => [p.id, p.prompt, p.image]),
    records.slice(0, 3).map((x) => [x.id, x.conversations[0].value.replace('<image>\n', ''), path.resolve(path.dirname(CALIB), x.image)]),
  );
  const png = fs.readFileSync(path.resolve(path.dirname(CALIB), records[0].image));
  assert.equal(r.calib?.previews[0].thumbnail, `data:image/png;base64,${png.toString('base64')}`);
  assert.ok(r.sweepMethods.includes('svl'));
  assert.equal(fs.existsSync(out), false, 'the check writes nothing');
});

test('a calibration file with a missing image, a line that does not parse, a record in the wrong format and an image that is not one', async () => {
  const img = path.resolve(path.dirname(CALIB), 'images', 'calib_0000.png');
  fs.writeFileSync(path.join(tmp, 'text.png'), 'not an image\n');
  const rec = (id: string, image: string) => JSON.stringify({ id, image, conversations: [{ from: 'human', value: '<image>\nWhat colour?' }, { from: 'gpt', value: 'red' }] });
  const file = path.join(tmp, 'bad.jsonl');
  fs.writeFileSync(file, [rec('a', img), rec('b', 'missing.png'), '{"id": "c", "image": ', JSON.stringify({ id: 'd', question: 'q?' }), rec('e', 'text.png'), ''].join('\n'));
  const r = await checkRun({ kind: 'prune', model: MODEL, calib: file, out: path.join(tmp, 'o1'), options: {} });
  const expected = [
    `${file}:3: invalid JSON line (${jsonError('{"id": "c", "image": ')})`,
    `bad.jsonl line 2: image missing.png not found (looked in ${path.join(tmp, 'missing.png')})`,
    'bad.jsonl line 4: expected LLaVA conversation format {id, image, conversations: [{from, value}]}',
    `bad.jsonl line 5: cannot read image ${path.join(tmp, 'text.png')}: not a PNG, JPEG, GIF, WebP, BMP, TIFF or AVIF file`,
  ];
  assert.deepEqual(r.problems, expected.map((message) => ({ field: 'calib', message })));
  assert.equal(r.calib?.records, 4, 'four records parse');
  assert.equal(r.calib?.samples, 1, 'one of them is a usable sample');
  assert.deepEqual(r.calib?.previews.map((p) => p.id), ['a']);
  // The run agrees: the loader stops at the first problem the preview lists.
  assert.throws(() => loadCalibration(file), { message: expected[0] });
});

test('an empty calibration file, and a JSON array that does not parse', async () => {
  const empty = path.join(tmp, 'empty.json');
  fs.writeFileSync(empty, '');
  const r = await checkRun({ kind: 'prune', model: MODEL, calib: empty, out: path.join(tmp, 'o2'), options: {} });
  assert.deepEqual(r.problems, [{ field: 'calib', message: `${empty}: no calibration samples` }]);
  assert.equal(r.calib?.samples, 0);
  // Filled in since: the next check reads it again (unchanged files are not re-read).
  fs.writeFileSync(empty, fs.readFileSync(CALIB, 'utf8').replace(/"images\//g, `"${path.dirname(CALIB)}/images/`));
  const filled = await checkRun({ kind: 'prune', model: MODEL, calib: empty, out: path.join(tmp, 'o2'), options: { samples: 5 } });
  assert.deepEqual(filled.problems, []);
  assert.equal(filled.calib?.samples, 5);
  const broken = path.join(tmp, 'broken.json');
  fs.writeFileSync(broken, '[{"id": 1},');
  const b = await checkRun({ kind: 'prune', model: MODEL, calib: broken, out: path.join(tmp, 'o3'), options: {} });
  assert.deepEqual(b.problems, [{ field: 'calib', message: `${broken}: invalid JSON (${jsonError('[{"id": 1},')})` }]);
});

test('a decoder that is not there, an output folder that exists, a ratio the candidates cannot hold: each named by its field', async () => {
  const noDecoder = path.join(tmp, 'no-decoder');
  fs.mkdirSync(path.join(noDecoder, 'onnx'), { recursive: true });
  for (const f of fs.readdirSync(MODEL)) if (f.endsWith('.json')) fs.copyFileSync(path.join(MODEL, f), path.join(noDecoder, f));
  fs.copyFileSync(path.join(MODEL, 'onnx', 'vision_encoder.onnx'), path.join(noDecoder, 'onnx', 'vision_encoder.onnx'));
  const exists = path.join(tmp, 'exists');
  fs.mkdirSync(exists);
  const r = await checkRun({ kind: 'prune', model: noDecoder, calib: CALIB, out: exists, options: {} });
  assert.deepEqual(r.problems, [
    { field: 'model', message: `${noDecoder}: no onnx/decoder_model_merged*.onnx found` },
    { field: 'out', message: `${exists} already exists; choose another folder` },
  ]);
  assert.equal(r.model, undefined);

  const L = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8')).text_config.num_hidden_layers as number;
  const n = Math.round(0.5 * L);
  const c = await checkRun({ kind: 'prune', model: MODEL, calib: CALIB, out: path.join(tmp, 'o4'), options: { ratio: 0.5, candidates: [L - 2, L - 1] } });
  assert.deepEqual(c.problems, [
    { field: 'ratio', message: `0.5 removes ${n} of ${L} layers but the candidate range ${L - 2}-${L - 1} holds 2; widen the range or lower the ratio` },
  ]);
});

test('a quality budget replaces the ratio: a ratio the candidates could not hold is not checked', async () => {
  const L = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8')).text_config.num_hidden_layers as number;
  const r = await checkRun({ kind: 'prune', model: MODEL, calib: CALIB, out: path.join(tmp, 'o5'), options: { ratio: 0.5, minAgreement: 0.9, candidates: [L - 2, L - 1] } });
  assert.deepEqual(r.problems, []);
});

test('a sweep: evaluation data, ratios and methods checked; nothing missing means no problems', async () => {
  const ok = await checkRun({ kind: 'sweep', model: MODEL, calib: CALIB, eval: EVAL, ratios: [0.25], methods: ['svl'], evalSamples: 12 });
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.eval?.items, 12);
  const bad = await checkRun({ kind: 'sweep', model: MODEL, calib: CALIB, eval: path.join(tmp, 'nope.jsonl'), ratios: [], methods: ['best'] });
  assert.deepEqual(bad.problems, [
    { field: 'ratios', message: 'give at least one ratio' },
    { field: 'methods', message: `unknown sweep method best (known: ${bad.sweepMethods.join(', ')})` },
    { field: 'eval', message: `cannot read ${path.join(tmp, 'nope.jsonl')}` },
  ]);
});

/** The message JSON.parse gives for this text (Node's wording varies across versions). */
function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('parsed');
}
