// Model families (src/engine/runtime/family.ts): the processor argument order read from
// transformers.js' own processors agrees with the documented facts (LLaVA and PaliGemma take
// (images, text); Qwen2-VL, Idefics3 / SmolVLM and Gemma 3 take (text, images)), and packages
// no family class can run are refused in one line that names the family and what is missing.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'path';
import { ModelPackage } from '../../src/engine/package/modelPackage';
import { FamilyError, imagesFirst, resolveFamily } from '../../src/engine/runtime/family';
import { transformers } from '../../src/engine/runtime/vlmFrontend';

test('processor argument order, from the processors themselves', async () => {
  const t = (await transformers()) as any;
  const order: Record<string, boolean> = {
    LlavaProcessor: true,
    PaliGemmaProcessor: true,
    Qwen2VLProcessor: false,
    Idefics3Processor: false,
    SmolVLMProcessor: false,
    Gemma3Processor: false,
  };
  for (const [name, first] of Object.entries(order)) assert.equal(imagesFirst(t[name].prototype), first, name);
  assert.throws(() => imagesFirst(t.WhisperProcessor.prototype), /not an image-text processor/);
});

test('families: the class for a model_type, and one-line refusals naming what is missing', async () => {
  const t = await transformers();
  const pkg = (config: Record<string, unknown>, over: Partial<ModelPackage> = {}): ModelPackage => ({
    root: '/m', layout: 'optimum', decoder: '/m/onnx/decoder_model_merged.onnx', embedTokens: '/m/onnx/embed_tokens.onnx', visionEncoder: '/m/onnx/vision_encoder.onnx',
    variant: '', otherDecoderVariants: [], config, configFile: path.join('/m', 'config.json'), text: {}, files: [], ...over,
  });
  for (const [type, cls] of [['llava', 'LlavaForConditionalGeneration'], ['qwen2_vl', 'Qwen2VLForConditionalGeneration'], ['idefics3', 'Idefics3ForConditionalGeneration'], ['smolvlm', 'SmolVLMForConditionalGeneration'], ['gemma3', 'Gemma3ForConditionalGeneration']]) {
    const f = resolveFamily(t, pkg({ model_type: type }));
    assert.equal(f.className, cls);
    assert.equal(f.modelClass, (t as any)[cls]);
  }
  const refusals: Array<[ModelPackage, RegExp]> = [
    [pkg({ model_type: 'mamba_vl' }), /"mamba_vl" is not one transformers.js runs/],
    [pkg({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }), /"llama" is a text-only decoder/],
    [pkg({ model_type: 'florence2', is_encoder_decoder: true }), /"florence2" is encoder-decoder/],
    [pkg({ model_type: 'qwen2_vl' }, { embedTokens: undefined }), /"qwen2_vl".*needs onnx\/embed_tokens.onnx/],
    [pkg({ model_type: 'gemma3' }, { visionEncoder: undefined }), /"gemma3".*needs onnx\/vision_encoder.onnx/],
    [pkg({}), /no model_type/],
    [pkg({}, { layout: 'single' }), /lone decoder/],
  ];
  for (const [p, re] of refusals) {
    assert.throws(() => resolveFamily(t, p), (e: Error) => e instanceof FamilyError && re.test(e.message) && !e.message.includes('\n'));
  }
});
