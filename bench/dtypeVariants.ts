// Every dtype variant of the bundled model, before and after pruning: makes the variants with
// tools/quantize, prunes all of them in one Short-LVLM run (20 %, TIS, SCP), and prints per
// dtype the accuracy of the original and the pruned decoder, the pruned one's agreement and
// KL against its own original, its speed-up and the decoder's size.
//   npm run build && node out/bench/dtypeVariants.js [--eval-samples 200] [--samples 128]

import * as fs from 'fs';
import * as path from 'path';
import { benchModels } from '../src/engine/bench/evaluate';
import { table } from '../src/engine/bench/format';
import { loadEval } from '../src/engine/data/datasets';
import { pruneJob } from '../src/engine/jobs';
import { DTYPES, writeVariants } from '../tools/quantize/cli';

async function main(): Promise<void> {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const repo = path.resolve(__dirname, '../..');
  const work = path.join(repo, 'bench/out/dtype-variants');
  const orig = path.join(work, 'tiny-llava');
  const pruned = path.join(work, 'tiny-llava-pruned');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  fs.cpSync(path.join(repo, 'models/tiny-llava'), orig, { recursive: true });
  writeVariants(orig, DTYPES);
  const r = await pruneJob({ model: orig, calib: path.join(repo, 'data/tiny-vqa/calib.json'), out: pruned, options: { ratio: 0.2, samples: arg('samples', 128) } });
  console.log(`removed layers ${r.removed.join(', ')}; ${(r.variants ?? []).map((v) => `${path.basename(v.file)}: ${v.status}`).join(', ')}`);
  const items = loadEval(path.join(repo, 'data/tiny-vqa/eval.jsonl'), arg('eval-samples', 200));
  const rows = [['dtype', 'acc', 'pruned acc', 'rel', 'agree', 'KL', 'speedup', 'decoder MiB']];
  for (const d of ['fp32', ...DTYPES]) {
    const file = `onnx/decoder_model_merged${d === 'fp32' ? '' : `_${d}`}.onnx`;
    const [a, b] = await benchModels([path.join(orig, file), path.join(pruned, file)], items);
    const pct = (x: number | undefined) => (x === undefined ? '-' : (100 * x).toFixed(1));
    rows.push([d, pct(a.accuracy), pct(b.accuracy), pct(b.relativeAccuracy), pct(b.agreement), (b.klMean ?? 0).toFixed(3), `${(b.samplesPerSecond / a.samplesPerSecond).toFixed(2)}x`, (fs.statSync(path.join(pruned, file)).size / 2 ** 20).toFixed(2)]);
  }
  console.log(table(rows));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
