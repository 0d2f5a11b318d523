// A little graph assembler for the synthetic fixtures: nodes named the way exporters name
// them (torch: `/model/layers.0/self_attn/Mul_1` with outputs `..._output_0`; onnxruntime-genai
// builder: `/model/layers.0/attn/q_proj/MatMul` with outputs `.../output_0`), shared constant
// initializers, and float initializers that wrap a Float32Array without copying it (so that a
// 0.5B-parameter model is held once in memory).

import { makeNode, AttrValue } from '../../src/engine/onnx/builder';
import { DataType, NodeProto, TensorProto } from '../../src/engine/onnx/proto';

export type OutputNaming = 'torch' | 'genai';

/** A float32 initializer whose raw data is a view on `data` (little-endian host assumed). */
export function f32Initializer(name: string, dims: number[], data: Float32Array): TensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims}]`);
  return { name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), unknown: [] };
}

export function i64Initializer(name: string, dims: number[], values: number[]): TensorProto {
  const b = BigInt64Array.from(values, (v) => BigInt(v));
  return { name, dataType: DataType.INT64, dims, rawData: new Uint8Array(b.buffer), unknown: [] };
}

export class NamedGraph {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private counts = new Map<string, number>();
  private shared = new Map<string, string>();
  private constCounter = 0;

  constructor(readonly naming: OutputNaming, readonly constScope: string) {}

  private uniqueName(scope: string, op: string): string {
    const base = `${scope}/${op}`;
    const n = this.counts.get(base) ?? 0;
    this.counts.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  outputName(nodeName: string, i: number): string {
    return this.naming === 'torch' ? `${nodeName}_output_${i}` : `${nodeName}/output_${i}`;
  }

  /**
   * Adds a node named after `scope` and `op` (or `opts.name`); outputs are named after the node
   * unless given (`''` = an omitted optional output). Returns the output names.
   */
  add(
    scope: string,
    op: string,
    inputs: string[],
    opts: { attrs?: Record<string, AttrValue>; domain?: string; outputs?: string[]; nOut?: number; name?: string } = {},
  ): string[] {
    const name = opts.name ?? this.uniqueName(scope, op);
    const outputs = opts.outputs ?? Array.from({ length: opts.nOut ?? 1 }, (_, i) => this.outputName(name, i));
    this.nodes.push(makeNode(op, inputs, outputs, { name, domain: opts.domain, attrs: opts.attrs }));
    return outputs;
  }

  /** Adds one node and returns its first output. */
  op(scope: string, op: string, inputs: string[], opts: { attrs?: Record<string, AttrValue>; domain?: string; name?: string } = {}): string {
    return this.add(scope, op, inputs, opts)[0];
  }

  init(t: TensorProto): string {
    this.initializers.push(t);
    return t.name;
  }

  /** A shared int64 constant initializer (one per distinct value and shape). */
  i64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.constName('INT64', dims, values);
      this.shared.set(key, name);
      this.init(i64Initializer(name, dims, values));
    }
    return name;
  }

  /** A shared float32 constant initializer. */
  f32(values: number[], dims: number[] = []): string {
    const key = `f32:${dims.join('x')}:${values.join(',')}`;
    let name = this.shared.get(key);
    if (!name) {
      name = this.constName('FLOAT', dims, values);
      this.shared.set(key, name);
      this.init(f32Initializer(name, dims, Float32Array.from(values)));
    }
    return name;
  }

  private constName(type: string, dims: number[], values: number[]): string {
    if (this.naming === 'genai') {
      // e.g. /model/constants/INT64/1D/1 (scalars: /model/constants/FLOAT/0D/1e-05)
      return `${this.constScope}/constants/${type}/${dims.length}D/${values.join(',')}`;
    }
    return `${this.constScope}/Constant_${this.constCounter++}_output_0`;
  }

  /** A Constant node holding an int64 tensor (as torch exports shape constants inside a layer's scope). */
  constNode(scope: string, values: number[]): string {
    const b = BigInt64Array.from(values, (v) => BigInt(v));
    const value: TensorProto = { name: '', dataType: DataType.INT64, dims: [values.length], rawData: new Uint8Array(b.buffer), unknown: [] };
    return this.op(scope, 'Constant', [], { attrs: { value } });
  }
}
