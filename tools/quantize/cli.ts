// Writes dtype variants of a transformers.js package's fp32 decoder next to it:
//   node out/tools/quantize/cli.js <package> [--q4] [--fp16] [--q4f16] [--quantized] [--int8]
//     [--uint8] [--bnb4] [--block 32] [--zero-points] [--qdq (int8 as DequantizeLinear + MatMul)]
// onnx/decoder_model_merged.onnx -> decoder_model_merged_<dtype>.onnx (the package is
// modified: run it on a copy).

import * as path from 'path';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { toBnb4, toDynamicInt8, toFp16, toQ4, toQdqInt8 } from './variants';

export const DTYPES = ['q4', 'fp16', 'q4f16', 'quantized', 'int8', 'uint8', 'bnb4'] as const;
export type MadeDtype = (typeof DTYPES)[number];

/** Writes `onnx/decoder_model_merged_<dtype>.onnx` for each dtype asked; returns the paths. */
export function writeVariants(pkgDir: string, dtypes: readonly MadeDtype[], q4: { blockSize?: number; zeroPoints?: boolean; int8Qdq?: boolean } = {}): string[] {
  const src = path.join(pkgDir, 'onnx', 'decoder_model_merged.onnx');
  const file = OnnxFile.open(src);
  const written: string[] = [];
  try {
    for (const d of dtypes) {
      const model =
        d === 'q4' ? toQ4(file, q4)
        : d === 'fp16' ? toFp16(file)
        : d === 'q4f16' ? toQ4(file, q4, toFp16(file))
        : d === 'bnb4' ? toBnb4(file)
        : d === 'int8' && q4.int8Qdq ? toQdqInt8(file)
        : toDynamicInt8(file, { signed: d !== 'uint8' });
      const out = path.join(pkgDir, 'onnx', `decoder_model_merged_${d}.onnx`);
      writeOnnx(model, file, out);
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
    console.error(`usage: cli.js <package folder> [--${DTYPES.join('] [--')}] [--block 32] [--zero-points] [--qdq]`);
    process.exit(2);
  }
  const block = args.indexOf('--block');
  try {
    const out = writeVariants(dir, DTYPES.filter((d) => args.includes(`--${d}`)), { blockSize: block >= 0 ? Number(args[block + 1]) : undefined, zeroPoints: args.includes('--zero-points'), int8Qdq: args.includes('--qdq') });
    for (const f of out) console.log(f);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
