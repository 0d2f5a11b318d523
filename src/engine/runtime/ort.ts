// The one module that talks to onnxruntime-node: session creation (from a file, or from an
// edited model that still reads the original's external data) and tensor conversions.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { OnnxFile, externalLocations, halfToFloat, floatToHalf } from '../onnx/onnxFile';
import { encodeModel, ModelProto } from '../onnx/proto';
import { makeScratchDir, removeScratchDir } from '../scratch';
import { SESSION_PREFIX } from '../../protocol/files';
import { Device, providerOptions } from './device';

export { ort };
export type Feeds = Record<string, ort.Tensor>;

export interface RuntimeOptions {
  /** Graph optimisation: instrumented runs use 'basic' so tapped tensors are not fused away. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Intra-op threads (0 = onnxruntime's default). */
  threads?: number;
  /** Execution provider (default cpu). */
  device?: Device;
}

export function sessionOptions(o: RuntimeOptions = {}): ort.InferenceSession.SessionOptions {
  const so: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: o.optimization ?? 'all',
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
  if (o.threads && o.threads > 0) so.intraOpNumThreads = o.threads;
  return { ...so, ...providerOptions(o.device) };
}

export async function openSession(file: string, o?: RuntimeOptions): Promise<ort.InferenceSession> {
  const so = sessionOptions(o); // a missing execution provider is reported as it is
  try {
    return await ort.InferenceSession.create(file, so);
  } catch (e) {
    throw new Error(`onnxruntime could not load ${path.basename(file)}: ${(e as Error).message.split('\n')[0]}`);
  }
}

export interface OwnedSession {
  session: ort.InferenceSession;
  dispose(): Promise<void>;
}

/**
 * Opens a session on an edited copy of `source`'s model. Inline models load from memory.
 * A model with external data is written to a temporary folder next to hard links to the
 * original data files (onnxruntime resolves symlinks and refuses data outside the model's
 * folder), so no weight is copied and the original folder is not touched. The folder is
 * made beside the model's folder, on the same file system, so the links can be made.
 */
export async function openEditedSession(model: ModelProto, source: OnnxFile, o?: RuntimeOptions): Promise<OwnedSession> {
  const locations = externalLocations(model);
  const so = sessionOptions(o);
  if (!locations.length) {
    const session = await ort.InferenceSession.create(encodeModel(model), so);
    return { session, dispose: () => session.release() };
  }
  const dir = linkedCopyDir(source, locations);
  try {
    const file = path.join(dir, path.basename(source.filePath));
    fs.writeFileSync(file, encodeModel(model));
    const session = await ort.InferenceSession.create(file, so);
    return {
      session,
      dispose: async () => {
        try {
          await session.release();
        } finally {
          removeScratchDir(dir);
        }
      },
    };
  } catch (e) {
    removeScratchDir(dir);
    throw e;
  }
}

/**
 * A fresh folder from which a model written there resolves `source`'s external data:
 * hard links (same file system), else copies. The caller removes it.
 */
export function linkedCopyDir(source: OnnxFile, locations: string[]): string {
  // Beside the package (a decoder in `onnx/` belongs to the folder above it), never inside it.
  const modelDir = path.resolve(source.dir);
  const packageDir = path.basename(modelDir) === 'onnx' ? path.dirname(modelDir) : modelDir;
  const parents = [path.dirname(packageDir), os.tmpdir()];
  for (const parent of parents) {
    let dir: string | undefined;
    try {
      dir = makeScratchDir(parent, `.${SESSION_PREFIX}`);
      for (const loc of locations) {
        const link = path.join(dir, loc);
        fs.mkdirSync(path.dirname(link), { recursive: true });
        fs.linkSync(source.resolveExternal(loc), link);
      }
      return dir;
    } catch {
      if (dir) removeScratchDir(dir);
    }
  }
  // Last resort (no writable folder on the model's file system): copy the data.
  const dir = makeScratchDir(os.tmpdir(), SESSION_PREFIX);
  try {
    for (const loc of locations) {
      const dst = path.join(dir, loc);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.copyFileSync(source.resolveExternal(loc), dst);
    }
  } catch (e) {
    removeScratchDir(dir);
    throw e;
  }
  return dir;
}

/** Any floating-point output as float32 (fp16 comes back as Uint16Array). */
export function toFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') {
    const u = t.data as Uint16Array;
    const out = new Float32Array(u.length);
    for (let i = 0; i < u.length; i++) out[i] = halfToFloat(u[i]);
    return out;
  }
  if (t.type === 'float64') return Float32Array.from(t.data as Float64Array);
  throw new Error(`expected a floating-point tensor, got ${t.type}`);
}

/** A float tensor in the element type a model input expects. */
export function floatTensor(type: 'float32' | 'float16', data: Float32Array, dims: number[]): ort.Tensor {
  if (type === 'float32') return new ort.Tensor('float32', data, dims);
  const u = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) u[i] = floatToHalf(data[i]);
  return new ort.Tensor('float16', u, dims);
}

export function int64Tensor(data: ArrayLike<number | bigint>, dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(Array.from(data, (x) => BigInt(x))), dims);
}
