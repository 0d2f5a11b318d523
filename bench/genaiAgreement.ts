// Figures (not a test): how closely the onnxruntime-genai miniatures (test/fixtures/genai-phi3v-*)
// run in onnxruntime-node through the engine's genai front end agree with their PyTorch float64
// references: the package's vision -> embedding -> decoder chain with genai's decoder feeds,
// and copies with layers removed exactly (against PyTorch with those layers skipped).
//   node out/bench/genaiAgreement.js
// Results are copied to bench/RESULTS.md by hand from the printed table.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openPackage } from '../src/engine/package/modelPackage';
import { writePrunedPackage } from '../src/engine/package/writePackage';
import { DecoderRunner } from '../src/engine/runtime/decoderRunner';
import { GenaiFrontend } from '../src/engine/runtime/genaiFrontend';
import { toFloat32 } from '../src/engine/runtime/ort';

const fixtures = path.resolve(__dirname, '../../test/fixtures');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'genai-agreement-'));

interface Reference {
  input_ids: number[];
  image_sizes: number[][];
  crops: number;
  hidden: number;
  cases: { skip: number[]; last_prompt_logits: number[]; next_logits: number[] }[];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function agreement(dir: string, ref: Reference, skip: number[]): Promise<string[]> {
  const c = ref.cases.find((x) => x.skip.join() === skip.join())!;
  const pkg = openPackage(dir);
  const fe = await GenaiFrontend.open(pkg);
  const dec = await DecoderRunner.fromFile(pkg.decoder, {}, { kvHeads: pkg.text.numKvHeads, headDim: pkg.text.headDim });
  try {
    const n = ref.crops * 3 * 336 * 336;
    const pixels = new Float32Array(n);
    for (let i = 0; i < n; i++) pixels[i] = (((i * 7919) % 251) - 125) / 64;
    const feats = await fe.runVision({ data: pixels, dims: [1, ref.crops, 3, 336, 336] }, { data: BigInt64Array.from(ref.image_sizes.flat(), BigInt), dims: [1, 2] });
    const x = Float32Array.from(toFloat32(await fe.runEmbedding(ref.input_ids, feats)));
    const S = ref.input_ids.length - 1;
    const s1 = await fe.decoderStep(dec, x.slice(0, S * ref.hidden), S);
    const s2 = await fe.decoderStep(dec, x.slice(S * ref.hidden), 1, s1.cache);
    const scale = Math.max(...c.next_logits.map(Math.abs));
    return [maxAbsDiff(s1.lastLogits, c.last_prompt_logits).toExponential(1), maxAbsDiff(s2.lastLogits, c.next_logits).toExponential(1), scale.toFixed(2)];
  } finally {
    await dec.dispose();
    await fe.dispose();
  }
}

async function main(): Promise<void> {
  const rows: string[][] = [['package', 'layers removed', 'prompt logits max |diff|', 'next-token logits max |diff|', 'max |logit|']];
  for (const name of ['genai-phi3v-gqa', 'genai-phi3v-rope']) {
    const src = path.join(fixtures, name);
    const ref = JSON.parse(fs.readFileSync(path.join(src, 'reference.json'), 'utf8')) as Reference;
    for (const skip of ref.cases.map((c) => c.skip)) {
      let dir = src;
      if (skip.length) {
        dir = path.join(tmp, `${name}-${skip.join('-')}`);
        writePrunedPackage(openPackage(src), { remove: skip, outDir: dir });
      }
      rows.push([name, skip.length ? skip.join(', ') : '-', ...(await agreement(dir, ref, skip))]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((v, i) => v.padEnd(widths[i])).join('  '));
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
