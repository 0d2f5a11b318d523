// Whole-graph or layer-wise execution. The whole instrumented decoder in one session is the
// fastest when it fits: onnxruntime holds every weight (about the decoder's size) plus the
// activations the taps keep alive. Layer-wise execution holds one piece's weights plus the
// hidden states of the samples in flight, so it is chosen when the decoder would take more
// than half of the memory available now. Either can be forced.

import * as fs from 'fs';
import * as os from 'os';
import { expectedByteLength } from '../onnx/onnxFile';
import { ModelProto } from '../onnx/proto';

import type { Execution } from '../../protocol/engineApi';
export type { Execution };
import { EXECUTIONS } from '../../protocol/options';
export { EXECUTIONS };

/** Bytes of every initializer of a model (inline or external). */
export function weightBytes(model: ModelProto): number {
  let b = 0;
  for (const t of model.graph.initializer) b += expectedByteLength(t) ?? 0;
  return b;
}

/** Memory the system can give without swapping: MemAvailable on Linux, else free memory. */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

export interface ExecutionChoice {
  execution: 'whole' | 'layerwise';
  reason: string;
}

export function chooseExecution(requested: Execution, decoderBytes: number, available = availableMemory()): ExecutionChoice {
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  if (requested === 'whole' || requested === 'layerwise') return { execution: requested, reason: `${requested} (as asked)` };
  if (decoderBytes * 2 <= available) return { execution: 'whole', reason: `whole graph: decoder ${gb(decoderBytes)}, ${gb(available)} available` };
  return { execution: 'layerwise', reason: `layer-wise: decoder ${gb(decoderBytes)} is more than half of the ${gb(available)} available` };
}
