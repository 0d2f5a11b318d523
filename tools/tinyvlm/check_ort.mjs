// Throwaway check of the exported tiny-llava ONNX files with onnxruntime-node directly.
//   node tools/tinyvlm/check_ort.mjs [--eval N] [--write-accuracy]
// 1. For the samples in data/tiny-vqa/reference/logits.json: preprocess + tokenize with
//    transformers.js' AutoProcessor, check input_ids == reference, run vision_encoder,
//    embed_tokens and decoder_model_merged with an EMPTY past (P=0), compare last logits with
//    PyTorch; then one generation step with the returned past (P>0), compare again.
// 2. Greedy-first-token accuracy over eval.jsonl (all items or the first N per family);
//    --write-accuracy stores it under "onnx" in data/tiny-vqa/reference/accuracy.json.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { env, AutoProcessor, RawImage } from '@huggingface/transformers';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const pkg = path.join(root, 'models', 'tiny-llava');
const dataDir = path.join(root, 'data', 'tiny-vqa');
const refDir = path.join(dataDir, 'reference');
const args = process.argv.slice(2);
const evalN = args.includes('--eval') ? Number(args[args.indexOf('--eval') + 1]) : Infinity;
const threads = Number(process.env.ORT_THREADS ?? 1);

env.allowRemoteModels = false;
env.localModelPath = path.dirname(pkg);
const processor = await AutoProcessor.from_pretrained('tiny-llava', { local_files_only: true });
const config = JSON.parse(fs.readFileSync(path.join(pkg, 'config.json'), 'utf8'));
const tc = config.text_config;
const opts = { intraOpNumThreads: threads, interOpNumThreads: 1 };
const vision = await ort.InferenceSession.create(path.join(pkg, 'onnx', 'vision_encoder.onnx'), opts);
const embed = await ort.InferenceSession.create(path.join(pkg, 'onnx', 'embed_tokens.onnx'), opts);
const decoder = await ort.InferenceSession.create(path.join(pkg, 'onnx', 'decoder_model_merged.onnx'), opts);
for (const [n, s] of [['vision_encoder', vision], ['embed_tokens', embed], ['decoder_model_merged', decoder]]) {
  console.log(`${n}: inputs ${s.inputNames.length} [${s.inputNames.slice(0, 5).join(', ')}${s.inputNames.length > 5 ? ', ...' : ''}] outputs ${s.outputNames.length} [${s.outputNames.slice(0, 3).join(', ')}${s.outputNames.length > 3 ? ', ...' : ''}]`);
}

function prompt(question) {
  const messages = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }];
  return processor.tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true });
}

async function prepare(imageRel, question) {
  const image = await RawImage.read(path.join(dataDir, imageRel));
  const inputs = await processor(image, prompt(question));
  return inputs;
}

function emptyPast() {
  const feeds = {};
  for (let i = 0; i < tc.num_hidden_layers; i++) {
    for (const kv of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, tc.num_key_value_heads, 0, tc.head_dim]);
    }
  }
  return feeds;
}

async function firstStep(inputs) {
  const ids = inputs.input_ids.data; // BigInt64Array
  const S = ids.length;
  const { image_features } = await vision.run({ pixel_values: new ort.Tensor('float32', inputs.pixel_values.data, inputs.pixel_values.dims) });
  const { inputs_embeds } = await embed.run({ input_ids: new ort.Tensor('int64', ids, [1, S]) });
  const H = tc.hidden_size;
  const emb = new Float32Array(inputs_embeds.data);
  let k = 0;
  for (let t = 0; t < S; t++) {
    if (Number(ids[t]) === config.image_token_index) {
      emb.set(image_features.data.subarray(k * H, (k + 1) * H), t * H);
      k++;
    }
  }
  if (k !== image_features.dims[1]) throw new Error(`image tokens ${k} != features ${image_features.dims[1]}`);
  const feeds = {
    inputs_embeds: new ort.Tensor('float32', emb, [1, S, H]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(S).fill(1n), [1, S]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: S }, (_, i) => BigInt(i)), [1, S]),
    ...emptyPast(),
  };
  const out = await decoder.run(feeds);
  return { out, S };
}

function lastLogits(logits) {
  const V = logits.dims[2];
  const S = logits.dims[1];
  return logits.data.subarray((S - 1) * V, S * V);
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---- 1. reference comparison (P = 0 and P > 0)
const ref = JSON.parse(fs.readFileSync(path.join(refDir, 'logits.json'), 'utf8'));
let worst = 0;
for (const s of ref.samples) {
  const inputs = await prepare(s.image, s.question);
  const ids = Array.from(inputs.input_ids.data, Number);
  const same = ids.length === s.input_ids.length && ids.every((x, i) => x === s.input_ids[i]);
  if (!same) throw new Error(`${s.id}: input_ids differ from the Python tokenizer:\n${ids}\n${s.input_ids}`);
  const { out, S } = await firstStep(inputs);
  const full = s.skips.find((x) => x.skip.length === 0);
  const d0 = maxAbsDiff(lastLogits(out.logits), full.logits_f32);
  // one generation step with the returned cache
  const { inputs_embeds } = await embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from([BigInt(s.next_token_id)]), [1, 1]) });
  const feeds = {
    inputs_embeds,
    attention_mask: new ort.Tensor('int64', new BigInt64Array(S + 1).fill(1n), [1, S + 1]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from([BigInt(S)]), [1, 1]),
  };
  for (let i = 0; i < tc.num_hidden_layers; i++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${i}.${kv}`] = out[`present.${i}.${kv}`];
  }
  const out2 = await decoder.run(feeds);
  const d1 = maxAbsDiff(lastLogits(out2.logits), full.next_logits_f32);
  worst = Math.max(worst, d0, d1);
  console.log(`${s.id}: ${ids.length} ids (${ids.filter((x) => x === config.image_token_index).length} image tokens) ok; ` +
    `max|dlogit| P=0 ${d0.toExponential(2)}, P=${S} step ${d1.toExponential(2)}; present.0.key dims [${out2['present.0.key'].dims}]`);
}
console.log(`worst logit difference vs PyTorch fp32: ${worst.toExponential(2)}`);
if (worst > 1e-3) throw new Error('ONNX does not match PyTorch');

// ---- 2. accuracy
const vocab = JSON.parse(fs.readFileSync(path.join(pkg, 'tokenizer.json'), 'utf8')).model.vocab;
const idToTok = Object.fromEntries(Object.entries(vocab).map(([t, i]) => [i, t]));
const recs = fs.readFileSync(path.join(dataDir, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const seen = {}, correct = {}, total = {};
const t0 = Date.now();
for (const r of recs) {
  seen[r.family] = (seen[r.family] ?? 0) + 1;
  if (seen[r.family] > evalN) continue;
  const { out } = await firstStep(await prepare(r.image, r.question));
  const l = lastLogits(out.logits);
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
  const ok = idToTok[best].toLowerCase() === r.answer.toLowerCase();
  correct[r.family] = (correct[r.family] ?? 0) + (ok ? 1 : 0);
  total[r.family] = (total[r.family] ?? 0) + 1;
}
const acc = {};
let c = 0, n = 0;
for (const f of Object.keys(total)) { acc[f] = Number((correct[f] / total[f]).toFixed(4)); c += correct[f]; n += total[f]; }
acc.mean = Number((c / n).toFixed(4));
console.log(`onnxruntime-node accuracy over ${n} items (${((Date.now() - t0) / 1000).toFixed(0)} s):`, acc);
if (args.includes('--write-accuracy')) {
  const p = path.join(refDir, 'accuracy.json');
  const j = JSON.parse(fs.readFileSync(p, 'utf8'));
  j.onnx = { runtime: 'onnxruntime-node 1.30 (fp32, CPU), preprocessing + tokenization by transformers.js 4.3.1', ...acc };
  fs.writeFileSync(p, JSON.stringify(j, null, 1));
  console.log(`wrote ${p}`);
}
