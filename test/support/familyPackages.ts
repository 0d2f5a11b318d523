// The miniature family packages (tools/vlmfamilies) and their PyTorch references, and a way
// to run one in transformers.js with the family's own model class and processor, loaded
// offline from its folder as a user would.

import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { loadWithTransformersJs } from './transformersJs';

export const repo = path.resolve(__dirname, '../../..');
export const vqaDir = path.join(repo, 'data/tiny-vqa');

export interface FamilySpec {
  name: 'smolvlm' | 'gemma3' | 'llava_onevision';
  dir: string;
  /** transformers.js' class for the family. */
  className: string;
}

export const FAMILIES: FamilySpec[] = [
  { name: 'smolvlm', dir: path.join(repo, 'models/tiny-smolvlm'), className: 'SmolVLMForConditionalGeneration' },
  { name: 'gemma3', dir: path.join(repo, 'models/tiny-gemma3'), className: 'Gemma3ForConditionalGeneration' },
  // transformers.js exports LlavaOnevisionForConditionalGeneration as LLaVA's class itself.
  { name: 'llava_onevision', dir: path.join(repo, 'models/tiny-onevision'), className: 'LlavaForConditionalGeneration' },
];

export interface RefSample {
  id: string;
  image: string;
  question: string;
  prompt: string;
  input_ids: number[];
  skips: { skip: number[]; logits_f32: number[] }[];
  greedy: { skip: number[]; tokens: number[] }[];
  bidirectional?: { skip: number[]; logits_f32: number[] };
}

export interface FamilyRef {
  vocab_size: number;
  eos_token_id: number;
  max_new_tokens: number;
  samples: RefSample[];
}

export function familyRef(name: string): FamilyRef {
  return JSON.parse(fs.readFileSync(path.join(vqaDir, 'reference', `${name}.json`), 'utf8'));
}

export interface ItemRun {
  ids: number[];
  lastLogits: Float32Array;
  /** Greedy tokens after the prompt (end-of-sequence included when produced). */
  generated: number[];
}

/** Loads `dir` with the transformers.js class its config names (asserted to be `className`). */
export async function openInTransformersJs(dir: string, className: string) {
  const m = await loadWithTransformersJs(dir);
  assert.equal(m.model.constructor.name, className);
  return {
    async run(question: string, image: string, maxNewTokens: number): Promise<ItemRun> {
      const inputs = await m.inputs({ question, image });
      const out = await m.model(inputs);
      const [, S, V] = out.logits.dims;
      const lastLogits = Float32Array.from((out.logits.data as Float32Array).subarray((S - 1) * V, S * V));
      const gen = await m.model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
      const generated = Array.from(gen.slice(null, [S, null]).data as BigInt64Array, Number);
      return { ids: Array.from(inputs.input_ids.data as BigInt64Array, Number), lastLogits, generated };
    },
    rendered: (question: string) => m.processor.tokenizer.apply_chat_template([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }], { tokenize: false, add_generation_prompt: true }) as string,
    dispose: () => m.dispose(),
  };
}

/** max |a - b| <= 1e-4 x max(1, max |b|): float32 runs of the same function. */
export function assertLogitsClose(got: Float32Array, want: number[], what: string): number {
  assert.equal(got.length, want.length, `${what}: vocabulary size`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(diff <= 1e-4 * Math.max(1, scale), `${what}: max |diff| ${diff} (scale ${scale})`);
  return diff;
}

/** Relative L2 distance of `x` from the reference `ref`: |x - ref| / |ref|. */
export function relL2(ref: ArrayLike<number>, x: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (x[i] - ref[i]) ** 2;
    n += ref[i] ** 2;
  }
  return Math.sqrt(d / n);
}
