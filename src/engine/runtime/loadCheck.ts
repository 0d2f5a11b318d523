// Would onnxruntime accept this graph? The engine's own reader checks shapes, data and
// topology, but not operator schemas and types (an op that does not exist, a float fed to an
// integer input, a constant of a type its consumer cannot take). onnxruntime resolves exactly
// that when it loads a model, so the graph is loaded once without its weights: every large or
// external initializer becomes a graph input of the same type and shape, which costs no
// memory whatever the model's size, and the session is released at once.

import { makeValueInfo } from '../onnx/builder';
import { encodeModel, forEachGraph, GraphProto, ModelProto } from '../onnx/proto';
import { ort } from './ort';

/** Inline initializers below this size stay: shape constants inform type and shape inference. */
const KEEP_INLINE_BYTES = 4096;

function weightless(model: ModelProto): ModelProto | undefined {
  let nestedExternal = false;
  forEachGraph(model.graph, (g) => {
    if (g !== model.graph && g.initializer.some((t) => t.dataLocation === 1)) nestedExternal = true;
  });
  if (nestedExternal) return undefined; // external weights inside subgraphs cannot be turned into inputs
  const g = model.graph;
  const inputs = new Set(g.input.map((v) => v.name));
  const moved = g.initializer.filter((t) => t.dataLocation === 1 || (t.rawData?.length ?? 0) >= KEEP_INLINE_BYTES || (t.floatData?.length ?? 0) * 4 >= KEEP_INLINE_BYTES);
  const movedNames = new Set(moved.map((t) => t.name));
  const graph: GraphProto = {
    ...g,
    initializer: g.initializer.filter((t) => !movedNames.has(t.name)),
    input: [...g.input, ...moved.filter((t) => !inputs.has(t.name)).map((t) => makeValueInfo(t.name, t.dataType, t.dims))],
  };
  return { ...model, graph };
}

/** Throws one line naming the file when onnxruntime refuses the graph. */
export async function checkLoadsInRuntime(model: ModelProto, file: string): Promise<void> {
  const light = weightless(model);
  if (!light) return;
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(encodeModel(light), { graphOptimizationLevel: 'disabled', logSeverityLevel: 4 });
  } catch (e) {
    const msg = String((e as Error).message).split('\n')[0].replace(/^.*?This is an invalid model\.\s*/, '').replace(/^\/onnxruntime_src\/\S+ \S+\(.*?\) /, '');
    throw new Error(`${file} is not a model onnxruntime can load: ${msg}`);
  } finally {
    await session?.release();
  }
}
