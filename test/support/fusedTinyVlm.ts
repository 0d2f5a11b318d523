// A fused-style miniature VLM package: the bundled tiny LLaVA's tokenizer, processor, vision
// encoder and embeddings with a synthetic genai-style decoder (GroupQueryAttention with rotary
// inside, SkipSimplifiedLayerNormalization) of the same hidden size and vocabulary, so that
// calibration runs end to end on the fused attention style too. Weights are random: the
// package is for comparing execution paths, not for answers.

import * as fs from 'fs';
import * as path from 'path';
import { writeOnnx } from '../../src/engine/onnx/onnxFile';
import { buildFusedDecoder, makeSynthWeights, resolveDims } from './synthModels';

export function writeFusedTinyVlm(tinyLlava: string, dir: string, numLayers = 6): string {
  fs.cpSync(tinyLlava, dir, { recursive: true });
  const cfgPath = path.join(dir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  const t = cfg.text_config;
  // Head size 48: GroupQueryAttention applies its rotary only to multiples of 16.
  const dims = resolveDims({ style: 'fused', numLayers, hidden: t.hidden_size, heads: 2, kvHeads: 1, intermediate: t.intermediate_size, vocab: t.vocab_size, maxPositions: t.max_position_embeddings });
  writeOnnx(buildFusedDecoder(makeSynthWeights(dims, 'fused-tiny-vlm')), undefined, path.join(dir, 'onnx', 'decoder_model_merged.onnx'));
  Object.assign(t, { num_hidden_layers: numLayers, num_attention_heads: dims.heads, num_key_value_heads: dims.kvHeads, head_dim: dims.headDim });
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
  return dir;
}
