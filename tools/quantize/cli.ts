// Writes dtype variants of a transformers.js package's fp32 decoder next to it:
//   node out/tools/quantize/cli.js <package> [--q4] [--fp16] [--block 32] [--zero-points]
// onnx/decoder_model_merged.onnx -> decoder_model_merged_q4.onnx / _fp16.onnx (the package
// is modified: run it on a copy).

import * as path from 'path';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { toFp16, toQ4 } from './variants';

export function writeVariants(pkgDir: string, which: { q4?: boolean; fp16?: boolean; blockSize?: number; zeroPoints?: boolean }): string[] {
  const src = path.join(pkgDir, 'onnx', 'decoder_model_merged.onnx');
  const file = OnnxFile.open(src);
  const written: string[] = [];
  try {
    if (which.q4) {
      const out = path.join(pkgDir, 'onnx', 'decoder_model_merged_q4.onnx');
      writeOnnx(toQ4(file, { blockSize: which.blockSize, zeroPoints: which.zeroPoints }), file, out);
      written.push(out);
    }
    if (which.fp16) {
      const out = path.join(pkgDir, 'onnx', 'decoder_model_merged_fp16.onnx');
      writeOnnx(toFp16(file), file, out);
      written.push(out);
    }
  } finally {
    file.close();
  }
  return written;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const dir = args.find((a) => !a.startsWith('--'));
  if (!dir) {
    console.error('usage: cli.js <package folder> [--q4] [--fp16] [--block 32] [--zero-points]');
    process.exit(2);
  }
  const block = args.indexOf('--block');
  try {
    const out = writeVariants(dir, { q4: args.includes('--q4'), fp16: args.includes('--fp16'), blockSize: block >= 0 ? Number(args[block + 1]) : undefined, zeroPoints: args.includes('--zero-points') });
    for (const f of out) console.log(f);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
