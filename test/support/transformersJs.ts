// Answers evaluation items with @huggingface/transformers (transformers.js) itself, loading a
// package from a local folder exactly as a user would: the compatibility proof that a pruned
// package works where the original did.

import * as path from 'path';
import { EvalItem, normalizeAnswer } from '../../src/engine/data/datasets';

/** `dtype` as transformers.js takes it: one for every file, or per file (`{decoder_model_merged: 'q4'}`). */
export async function transformersJsAnswers(packageDir: string, items: EvalItem[], maxNewTokens = 3, dtype: string | Record<string, string> = 'fp32'): Promise<string[]> {
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = path.dirname(path.resolve(packageDir)) + path.sep;
  const name = path.basename(packageDir);
  const processor: any = await t.AutoProcessor.from_pretrained(name, { local_files_only: true });
  const model: any = await t.LlavaForConditionalGeneration.from_pretrained(name, { local_files_only: true, dtype: dtype as any });
  try {
    const out: string[] = [];
    for (const item of items) {
      const text = processor.tokenizer.apply_chat_template([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: item.question }] }], { tokenize: false, add_generation_prompt: true });
      const image = await t.RawImage.read(item.image!);
      const inputs = await processor(image, text);
      const gen = await model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
      const newTokens = gen.slice(null, [inputs.input_ids.dims[1], null]);
      out.push(normalizeAnswer(processor.tokenizer.batch_decode(newTokens, { skip_special_tokens: true })[0]));
    }
    return out;
  } finally {
    await model.dispose?.();
  }
}
