// Answers evaluation items with @huggingface/transformers (transformers.js) itself, loading a
// package from a local folder exactly as a user would, with the class its config.json names
// (LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration, ...): the compatibility
// proof that a pruned package works where the original did.

import * as fs from 'fs';
import * as path from 'path';
import { EvalItem, normalizeAnswer } from '../../src/engine/data/datasets';

export interface TjsModel {
  t: typeof import('@huggingface/transformers');
  processor: any;
  model: any;
  /** Processor outputs for one image + question, the prompt made by the package's chat template. */
  inputs(item: { image?: string; question: string }): Promise<any>;
  dispose(): Promise<void>;
}

/** `dtype` as transformers.js takes it: one for every file, or per file (`{decoder_model_merged: 'q4'}`). */
export async function loadWithTransformersJs(packageDir: string, dtype: string | Record<string, string> = 'fp32'): Promise<TjsModel> {
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = path.dirname(path.resolve(packageDir)) + path.sep;
  const name = path.basename(packageDir);
  const arch: string = JSON.parse(fs.readFileSync(path.join(packageDir, 'config.json'), 'utf8')).architectures[0];
  const processor: any = await t.AutoProcessor.from_pretrained(name, { local_files_only: true });
  const model: any = await (t as any)[arch].from_pretrained(name, { local_files_only: true, dtype: dtype as any });
  // LLaVA's and PaliGemma's processors take (images, text); the others (text, images).
  const imagesFirst = /^(Llava|PaliGemma)/.test(arch);
  return {
    t,
    processor,
    model,
    async inputs(item) {
      const text = processor.tokenizer.apply_chat_template([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: item.question }] }], { tokenize: false, add_generation_prompt: true });
      const image = await t.RawImage.read(item.image!);
      return imagesFirst ? processor(image, text) : processor(text, image);
    },
    dispose: async () => void (await model.dispose?.()),
  };
}

export async function transformersJsAnswers(packageDir: string, items: EvalItem[], maxNewTokens = 3, dtype: string | Record<string, string> = 'fp32'): Promise<string[]> {
  const m = await loadWithTransformersJs(packageDir, dtype);
  try {
    const out: string[] = [];
    for (const item of items) {
      const inputs = await m.inputs(item);
      const gen = await m.model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
      const newTokens = gen.slice(null, [inputs.input_ids.dims[1], null]);
      out.push(normalizeAnswer(m.processor.tokenizer.batch_decode(newTokens, { skip_special_tokens: true })[0]));
    }
    return out;
  } finally {
    await m.dispose();
  }
}
