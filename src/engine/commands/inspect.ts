// `inspect`: what the engine understands of a model package, as one JSON-able object.

import * as fs from 'fs';
import * as path from 'path';
import { discoverLayers, WeightRef } from '../graph/layers';
import { OnnxFile, externalLocations } from '../onnx/onnxFile';
import { DATA_TYPE_NAMES } from '../onnx/proto';
import { checkPackageConsistency } from '../package/consistency';
import { ModelPackage, openPackage } from '../package/modelPackage';
import { genaiModel, genaiUnsupported } from '../runtime/genaiFrontend';
import type { InspectReport, WeightInfo } from '../../protocol/engineApi';

export type { InspectReport };

export function inspectModel(input: string): InspectReport {
  const pkg = openPackage(input);
  const file = OnnxFile.open(pkg.decoder);
  try {
    const s = discoverLayers(file.graph);
    const inits = file.initializerMap();
    // A package that cannot be pruned is reported here rather than halfway through a prune:
    // the file was validated on opening (external data included), the config must match it.
    checkPackageConsistency(pkg, file, s);
    const w = (r?: WeightRef): WeightInfo | undefined => {
      if (!r) return undefined;
      const t = inits.get(r.name);
      return { name: r.name, shape: t?.dims ?? [], dtype: DATA_TYPE_NAMES[t?.dataType ?? 0] ?? String(t?.dataType), layout: r.inOut ? 'in,out' : 'out,in' };
    };
    const warnings = [...s.warnings];
    return {
      root: pkg.root,
      layout: pkg.layout,
      decoder: path.relative(pkg.root, pkg.decoder),
      variant: pkg.variant || 'fp32',
      otherDecoderVariants: pkg.otherDecoderVariants,
      decoderVariants: pkg.decoderVariants ?? [],
      embedTokens: pkg.embedTokens && path.relative(pkg.root, pkg.embedTokens),
      visionEncoder: pkg.visionEncoder && path.relative(pkg.root, pkg.visionEncoder),
      family: familyOf(pkg),
      genai: pkg.layout === 'genai' ? { type: genaiModel(pkg).type, unsupported: genaiUnsupported(pkg) } : undefined,
      files: (pkg.layout === 'single' ? [path.relative(pkg.root, pkg.decoder), ...pkg.files] : pkg.files).map((f) => ({ path: f, bytes: fs.statSync(path.join(pkg.root, f)).size })),
      externalData: externalLocations(file.model),
      attentionStyle: s.style,
      numLayers: s.layers.length,
      configLayers: pkg.text.numLayers,
      hiddenSize: s.hiddenSize ?? pkg.text.hiddenSize,
      numHeads: pkg.text.numHeads ?? s.layers[0]?.attention?.numHeads,
      numKvHeads: pkg.text.numKvHeads ?? s.layers[0]?.attention?.kvNumHeads,
      headDim: pkg.text.headDim,
      vocabSize: pkg.text.vocabSize,
      embeddings: s.embeddings,
      logits: s.logits,
      layers: s.layers.map((l) => ({
        index: l.index,
        kvIndex: l.kvIndex,
        residualIn: l.residualIn,
        residualOut: l.residualOut,
        attention: l.attention ? (l.attention.kind === 'probs' ? `softmax ${l.attention.probs}` : `${l.attention.node?.opType} (q/k captured; rotary ${l.attention.rotary === 'nodes' ? 'by RotaryEmbedding nodes' : l.attention.rotary === 'in-attention' ? 'inside the op' : 'none'})`) : 'not found',
        oProj: w(l.oProj),
        downProj: w(l.downProj),
        inputWeights: [...l.attnInputWeights, ...l.mlpInputWeights].map((x) => w(x)!),
      })),
      warnings,
    };
  } finally {
    file.close();
  }
}

/** The family name the package's own config gives, if any. */
function familyOf(pkg: ModelPackage): string | undefined {
  const t = pkg.layout === 'genai' ? (pkg.config?.model as Record<string, unknown> | undefined)?.type : pkg.config?.model_type;
  return typeof t === 'string' && t ? t : undefined;
}

export function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  const mb = (b: number) => (b / 2 ** 20).toFixed(1) + ' MiB';
  lines.push(`${r.root}`);
  lines.push(`  layout        ${r.layout}${r.layout === 'optimum' ? ' (transformers.js / Optimum)' : r.layout === 'genai' ? ' (onnxruntime-genai)' : ' (lone decoder)'}`);
  if (r.family && !r.genai) lines.push(`  family        ${r.family}`);
  lines.push(`  decoder       ${r.decoder} [${r.variant}]${r.externalData.length ? ` + ${r.externalData.join(', ')}` : ''}`);
  if (r.embedTokens) lines.push(`  embeddings    ${r.embedTokens}`);
  if (r.visionEncoder) lines.push(`  vision        ${r.visionEncoder}`);
  if (r.genai) lines.push(`  genai type    ${r.genai.type || '?'}: ${r.genai.unsupported ? `layers only (${r.genai.unsupported.replace(/^[^:]*: /, '')})` : 'calibration runs its vision and embedding models'}`);
  if (r.decoderVariants.length) lines.push(`  dtype variants ${r.decoderVariants.join(', ')} (pruned together with it)`);
  const others = r.otherDecoderVariants.filter((v) => !r.decoderVariants.includes(v));
  if (others.length) lines.push(`  other decoders ${others.join(', ')} (not carried into a pruned package)`);
  lines.push(`  attention     ${r.attentionStyle}`);
  lines.push(`  layers        ${r.numLayers}${r.configLayers !== undefined ? ` (config: ${r.configLayers})` : ''}`);
  lines.push(`  hidden size   ${r.hiddenSize ?? '?'}, heads ${r.numHeads ?? '?'}, kv heads ${r.numKvHeads ?? '?'}, vocab ${r.vocabSize ?? '?'}`);
  lines.push(`  size          ${mb(r.files.reduce((a, f) => a + f.bytes, 0))} in ${r.files.length} files`);
  lines.push('');
  lines.push('  layer  kv  o_proj                                    down_proj');
  for (const l of r.layers) {
    const fmt = (x?: WeightInfo) => (x ? `${x.name} [${x.shape.join('x')}]` : '-');
    lines.push(`  ${String(l.index).padStart(5)}  ${String(l.kvIndex).padStart(2)}  ${fmt(l.oProj).padEnd(40)}  ${fmt(l.downProj)}`);
  }
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
