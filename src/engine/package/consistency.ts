// Does the package's config describe the decoder graph it ships? Layer count, hidden size,
// head counts and KV-cache names of config.json / genai_config.json are compared with what
// the graph itself says. transformers.js and onnxruntime-genai build their inputs from the
// config, so a package whose two halves disagree cannot run; writing a pruned copy with a
// "repaired" count would hide that. The error names the file, the field and both values.

import * as path from 'path';
import { DecoderStructure } from '../graph/layers';
import { OnnxFile } from '../onnx/onnxFile';
import { GraphProto } from '../onnx/proto';
import { ModelPackage, PackageError } from './modelPackage';

interface Field {
  /** Dotted path in the config file, as the user would look it up. */
  path: string;
  value: unknown;
}

type Key = 'layers' | 'hidden' | 'heads' | 'kvHeads' | 'headDim';

const OPTIMUM_KEYS: Record<Key, string[]> = {
  layers: ['num_hidden_layers', 'n_layer', 'num_layers'],
  hidden: ['hidden_size', 'n_embd', 'd_model'],
  heads: ['num_attention_heads', 'n_head'],
  kvHeads: ['num_key_value_heads'],
  headDim: ['head_dim'],
};

const GENAI_KEYS: Record<Key, string[]> = {
  layers: ['num_hidden_layers'],
  hidden: ['hidden_size'],
  heads: ['num_attention_heads'],
  kvHeads: ['num_key_value_heads'],
  headDim: ['head_size'],
};

function isObject(o: unknown): o is Record<string, unknown> {
  return !!o && typeof o === 'object' && !Array.isArray(o);
}

/** The config object holding the text model's fields and its dotted prefix. */
function textSection(pkg: ModelPackage): { obj: Record<string, unknown>; prefix: string } | undefined {
  const cfg = pkg.config;
  if (!cfg) return undefined;
  if (pkg.layout === 'genai') {
    const d = isObject(cfg.model) && isObject(cfg.model.decoder) ? cfg.model.decoder : undefined;
    return d ? { obj: d, prefix: 'model.decoder.' } : undefined;
  }
  return isObject(cfg.text_config) ? { obj: cfg.text_config, prefix: 'text_config.' } : { obj: cfg, prefix: '' };
}

function field(pkg: ModelPackage, key: Key): Field | undefined {
  const sec = textSection(pkg);
  if (!sec) return undefined;
  for (const k of (pkg.layout === 'genai' ? GENAI_KEYS : OPTIMUM_KEYS)[key]) {
    if (k in sec.obj) return { path: sec.prefix + k, value: sec.obj[k] };
  }
  return undefined;
}

/** A static dimension of a graph input (undefined when symbolic or absent). */
function inputDim(g: GraphProto, name: string | undefined, axis: number): number | undefined {
  const v = name ? g.input.find((i) => i.name === name)?.shape?.[axis]?.value : undefined;
  return v !== undefined && v > 0 ? v : undefined;
}

export function checkPackageConsistency(pkg: ModelPackage, file: OnnxFile, s?: DecoderStructure): void {
  if (!pkg.configFile || !pkg.config) return;
  const cfgName = path.relative(pkg.root, pkg.configFile) || path.basename(pkg.configFile);
  const decName = path.relative(pkg.root, pkg.decoder);
  const g = file.graph;
  const pastKeys = g.input.map((v) => v.name).filter((n) => /^past.*?\d+.*key/.test(n));
  const attention = s?.layers[0]?.attention;
  const graph: Record<Key, { value?: number; has: (v: number) => string }> = {
    layers: { value: s ? s.layers.length : pastKeys.length || undefined, has: (v) => `${v} layers` },
    hidden: { value: s?.hiddenSize ?? inputDim(g, s?.embeddings ?? 'inputs_embeds', 2), has: (v) => `hidden size ${v}` },
    heads: { value: attention?.numHeads, has: (v) => `${v} attention heads` },
    kvHeads: { value: inputDim(g, pastKeys[0], 1) ?? attention?.kvNumHeads, has: (v) => `${v} key/value heads` },
    headDim: { value: inputDim(g, pastKeys[0], 3), has: (v) => `head size ${v}` },
  };
  const fields: Partial<Record<Key, number>> = {};
  for (const key of Object.keys(graph) as Key[]) {
    const f = field(pkg, key);
    if (!f) continue;
    if (typeof f.value !== 'number' || !Number.isSafeInteger(f.value) || f.value <= 0) {
      throw new PackageError(`${cfgName}: ${f.path} must be a positive integer, but it is ${JSON.stringify(f.value)}`);
    }
    fields[key] = f.value;
    const gv = graph[key];
    if (gv.value !== undefined && gv.value !== f.value) {
      throw new PackageError(`${cfgName}: ${f.path} is ${f.value}, but the decoder ${decName} has ${gv.has(gv.value)}; the package is inconsistent (the config must describe this decoder)`);
    }
  }
  checkKvNames(pkg, g, cfgName, decName, fields.layers);
}

/** The KV-cache names the runtimes will build from the config must exist in the graph. */
function checkKvNames(pkg: ModelPackage, g: GraphProto, cfgName: string, decName: string, layers: number | undefined): void {
  if (layers === undefined) return;
  const inputs = new Set(g.input.map((v) => v.name));
  const outputs = new Set(g.output.map((v) => v.name));
  const templates: { field: string; template: string; names: Set<string>; kind: string }[] = [];
  if (pkg.layout === 'genai') {
    const d = textSection(pkg)?.obj ?? {};
    const io = (side: 'inputs' | 'outputs', k: string): string | undefined => {
      const sec = d[side];
      return isObject(sec) && typeof sec[k] === 'string' ? (sec[k] as string) : undefined;
    };
    for (const [side, k] of [['inputs', 'past_key_names'], ['inputs', 'past_value_names'], ['outputs', 'present_key_names'], ['outputs', 'present_value_names']] as const) {
      const t = io(side, k);
      if (t) templates.push({ field: `model.decoder.${side}.${k}`, template: t, names: side === 'inputs' ? inputs : outputs, kind: side === 'inputs' ? 'input' : 'output' });
    }
  } else if ([...inputs].some((n) => n.startsWith('past_key_values.'))) {
    // transformers.js feeds past_key_values.{i}.key/value for every i below num_hidden_layers.
    for (const part of ['key', 'value']) {
      templates.push({ field: 'num_hidden_layers', template: `past_key_values.%d.${part}`, names: inputs, kind: 'input' });
    }
  }
  for (const t of templates) {
    for (let i = 0; i < layers; i++) {
      const name = t.template.replace('%d', String(i));
      if (!t.names.has(name)) {
        throw new PackageError(`${cfgName}: ${t.field} makes the runtime look for ${t.kind} "${name}" (layer ${i} of ${layers}), which the decoder ${decName} does not have; the package is inconsistent`);
      }
    }
  }
}
