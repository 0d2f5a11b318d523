// Throwaway check: load models/tiny-llava with @huggingface/transformers (offline), apply the
// chat template, generate greedily for eval items and compare with the expected answers.
//   node tools/tinyvlm/check_transformersjs.mjs [--per-family N] [--tokenizer-only]
// Also checks that transformers.js tokenizes exactly like the Python tokenizer (common.py):
// the ids are compared with data/tiny-vqa/reference/logits.json and with a few extra strings
// printed by `python3 common.py`-style expectations below.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { env, AutoProcessor, LlavaForConditionalGeneration, RawImage } from '@huggingface/transformers';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const dataDir = path.join(root, 'data', 'tiny-vqa');
const args = process.argv.slice(2);
const perFamily = args.includes('--per-family') ? Number(args[args.indexOf('--per-family') + 1]) : 5;

env.allowRemoteModels = false;
env.localModelPath = path.join(root, 'models');
const processor = await AutoProcessor.from_pretrained('tiny-llava', { local_files_only: true });
const tok = processor.tokenizer;

// ---- tokenizer round trip against the Python tokenizer
const tokRef = JSON.parse(fs.readFileSync(path.join(dataDir, 'reference', 'tokenizer_cases.json'), 'utf8'));
let tokOk = 0;
for (const c of tokRef) {
  const ids = Array.from(tok(c.text).input_ids.data, Number);
  const same = ids.length === c.ids.length && ids.every((x, i) => x === c.ids[i]);
  if (!same) throw new Error(`tokenizer mismatch for ${JSON.stringify(c.text)}:\n js ${ids}\n py ${c.ids}`);
  const chat = tok.apply_chat_template(
    [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: c.question }] }],
    { tokenize: false, add_generation_prompt: true });
  if (c.prompt !== undefined && chat !== c.prompt) throw new Error(`chat template mismatch:\n${JSON.stringify(chat)}\n${JSON.stringify(c.prompt)}`);
  if (c.decoded !== undefined && tok.decode(ids, { skip_special_tokens: true }) !== c.decoded) {
    throw new Error(`decode mismatch: ${JSON.stringify(tok.decode(ids, { skip_special_tokens: true }))} vs ${JSON.stringify(c.decoded)}`);
  }
  tokOk++;
}
console.log(`tokenizer: ${tokOk} strings tokenize, template and decode identically in transformers.js and Python`);
console.log(`special ids: bos ${tok.bos_token_id} eos ${tok.eos_token_id} pad ${tok.pad_token_id} unk ${tok.unk_token_id} <image> ${tok.convert_tokens_to_ids ? tok.convert_tokens_to_ids('<image>') : '?'}`);
if (args.includes('--tokenizer-only')) process.exit(0);

const model = await LlavaForConditionalGeneration.from_pretrained('tiny-llava', { local_files_only: true, dtype: 'fp32' });
const recs = fs.readFileSync(path.join(dataDir, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const predPath = path.join(dataDir, 'reference', 'predictions.json');
const torchPred = fs.existsSync(predPath) ? JSON.parse(fs.readFileSync(predPath, 'utf8')).predictions : {};
const seen = {}, correct = {}, total = {};
let agree = 0, compared = 0;
for (const r of recs) {
  seen[r.family] = (seen[r.family] ?? 0) + 1;
  if (seen[r.family] > perFamily) continue;
  const text = tok.apply_chat_template(
    [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: r.question }] }],
    { tokenize: false, add_generation_prompt: true });
  const image = await RawImage.read(path.join(dataDir, r.image));
  const inputs = await processor(image, text);
  const out = await model.generate({ ...inputs, max_new_tokens: 3, do_sample: false });
  const gen = out.slice(null, [inputs.input_ids.dims[1], null]);
  const answer = tok.batch_decode(gen, { skip_special_tokens: true })[0].trim();
  const first = (answer.split(/\s+/)[0] ?? '').toLowerCase().replace(/[^\w]/g, '');
  const ok = first === r.answer.toLowerCase();
  const tp = torchPred[r.id];
  if (tp !== undefined) { compared++; if (tp.toLowerCase() === first) agree++; }
  correct[r.family] = (correct[r.family] ?? 0) + (ok ? 1 : 0);
  total[r.family] = (total[r.family] ?? 0) + 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${r.id} [${inputs.input_ids.dims[1]} ids] ${r.question} -> ${JSON.stringify(answer)} (expected ${r.answer}; PyTorch ${tp ?? '?'})`);
}
let c = 0, n = 0;
for (const f of Object.keys(total)) { c += correct[f]; n += total[f]; console.log(`${f}: ${correct[f]}/${total[f]}`); }
console.log(`transformers.js: ${c}/${n} correct; agrees with PyTorch's first token on ${agree}/${compared}`);
if (compared && agree !== compared) process.exitCode = 1;
