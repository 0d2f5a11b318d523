// Shared helpers for the engine tests: the fixture variants every engine test runs on,
// folder hashing (the source package must never change), initializer lookup by value (works
// for anonymous `onnx::MatMul_N` names too) and a float tolerance check.

import * as assert from 'node:assert/strict';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { maxAbs, maxAbsDiff } from './ortDecoder';
import { SynthModel, SynthOptions, writeSynthModel } from './synthModels';

export interface Variant {
  name: string;
  opts: Omit<SynthOptions, 'dir'>;
  /** Weight names follow the `layers.N` convention (not anonymous). */
  named: boolean;
}

/** The fixture variants of issue 2: both styles, all layouts, inline / chunked / anonymous / '/'-prefixed. */
export const VARIANTS: Variant[] = [
  { name: 'dec-optimum-inline', opts: { style: 'decomposed', layout: 'optimum' }, named: true },
  { name: 'dec-optimum-chunked', opts: { style: 'decomposed', layout: 'optimum', externalChunkBytes: 16384 }, named: true },
  { name: 'dec-single-anon', opts: { style: 'decomposed', layout: 'single', anonymousWeights: true }, named: false },
  { name: 'dec-optimum-slash', opts: { style: 'decomposed', layout: 'optimum', namePrefix: '/', externalData: true }, named: true },
  { name: 'fused-genai', opts: { style: 'fused', layout: 'genai' }, named: true },
  { name: 'fused-optimum', opts: { style: 'fused', layout: 'optimum', externalData: true }, named: true },
];

export function writeVariant(root: string, v: Variant, extra: Partial<SynthOptions> = {}): SynthModel {
  return writeSynthModel({ dir: path.join(root, v.name), seed: v.name, ...v.opts, ...extra });
}

/** sha256 of every file under dir (relative path -> hex), including hidden files; links by their target. */
export function hashFolder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymbolicLink()) out.set(r, `link -> ${fs.readlinkSync(path.join(d, e.name))}`);
      else if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.set(r, crypto.createHash('sha256').update(fs.readFileSync(path.join(d, e.name))).digest('hex'));
    }
  };
  walk(dir, '');
  return out;
}

export function valueKey(v: Float32Array): string {
  return crypto.createHash('sha1').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex');
}

/** Float initializers of a decoder file, keyed by the hash of their values -> names. */
export function initializersByValue(file: OnnxFile): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const t of file.graph.initializer) {
    if (t.dataType !== 1 || t.dims.length === 0) continue;
    const k = valueKey(file.tensorFloat32(t));
    m.set(k, [...(m.get(k) ?? []), t.name]);
  }
  return m;
}

/** The one initializer holding exactly these values (by value, not by name). */
export function initializerNamed(byValue: Map<string, string[]>, v: Float32Array, what: string): string {
  const names = byValue.get(valueKey(v));
  assert.ok(names && names.length === 1, `${what}: expected one initializer with these values, found ${names?.length ?? 0}`);
  return names[0];
}

/** Relative float tolerance: max |got - want| < rel * max(1, max |want|). */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rel = 1e-4): void {
  const diff = maxAbsDiff(got, want);
  const tol = rel * Math.max(1, maxAbs(want));
  assert.ok(diff < tol, `${what}: max abs diff ${diff} >= ${tol}`);
}

/** Folders next to `dir` left behind by an interrupted write. */
export function partialsNextTo(dir: string): string[] {
  const parent = path.dirname(dir);
  if (!fs.existsSync(parent)) return [];
  return fs.readdirSync(parent).filter((n) => n.includes('.partial-'));
}
