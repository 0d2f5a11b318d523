// The mutation fuzzer of issue 13, run as its own process by test/engine/fuzz.test.ts so that
// a V8 fatal error or a stack overflow shows as a dead child, not a dead test runner.
//
//   node out/test/support/fuzzRunner.js <work dir> <seed> <cases>
//
// Valid packages are mutated (bit flips and truncations of the decoder, field mutations of
// its protobuf, shape/data mismatches, external-data ranges, config edits, symlink loops),
// then `inspect` and `prune --layers 1 --no-scp` run on each through the engine's entry
// points. Every case prints one JSON line: how it ended and whether it kept the rules.

import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { inspectModel } from '../../src/engine/commands/inspect';
import { describeError } from '../../src/protocol/errorText';
import { pruneJob } from '../../src/engine/jobs';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { decodeModel, encodeModel, ModelProto } from '../../src/engine/onnx/proto';
import { hashFolder, VARIANTS, writeVariant } from './engineFixtures';
import { copyPackage, isInternal, leftovers } from './hostileCorpus';
import { Rng } from './prng';
import { SynthModel } from './synthModels';

export interface CaseResult {
  id: number;
  kind: string;
  /** 'error': refused with a clear line; 'ok': pruned, and the output checked valid. */
  outcome: 'error' | 'ok' | 'violation';
  detail: string;
}

type Mutation = { kind: string; apply: (pkgDir: string, decoder: string, rng: Rng) => void };

const int = (rng: Rng, n: number) => Math.floor(rng.uniform() * n);
const pick = <T>(rng: Rng, xs: T[]): T => xs[int(rng, xs.length)];

function edit(decoder: string, fn: (m: ModelProto) => void): void {
  const m = decodeModel(fs.readFileSync(decoder));
  fn(m);
  fs.writeFileSync(decoder, encodeModel(m));
}

function editConfig(pkgDir: string, fn: (text: Record<string, unknown>) => void): void {
  const file = ['config.json', 'genai_config.json'].map((f) => path.join(pkgDir, f)).find((f) => fs.existsSync(f))!;
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  fn(file.endsWith('genai_config.json') ? j.model.decoder : (j.text_config ?? j));
  fs.writeFileSync(file, JSON.stringify(j));
}

const WEIRD_NUMBERS = [0, -1, 1, 2, 3, 5, 7, 64, 2 ** 31, 2 ** 53, 1e300, -0.5, 2.5];

const MUTATIONS: Mutation[] = [
  {
    kind: 'bit flips',
    apply: (_, dec, rng) => {
      const b = fs.readFileSync(dec);
      for (let k = 1 + int(rng, 4); k > 0; k--) b[int(rng, b.length)] ^= 1 << int(rng, 8);
      fs.writeFileSync(dec, b);
    },
  },
  {
    kind: 'truncation',
    apply: (_, dec, rng) => {
      const b = fs.readFileSync(dec);
      fs.writeFileSync(dec, b.subarray(0, int(rng, b.length)));
    },
  },
  {
    kind: 'dims',
    apply: (_, dec, rng) =>
      edit(dec, (m) => {
        const t = pick(rng, m.graph.initializer);
        const r = int(rng, 5);
        if (r === 0) t.dims = [...t.dims, pick(rng, [2, 2 ** 31, 0])];
        else if (r === 1) t.dims = t.dims.slice(1);
        else if (t.dims.length) t.dims = t.dims.map((d, i) => (i === int(rng, t.dims.length) ? pick(rng, [-1, d + 1, d * 2, 2 ** 31, 2 ** 40, 0]) : d));
        else t.dims = [pick(rng, [-1, 2, 2 ** 40])];
      }),
  },
  {
    kind: 'data length',
    apply: (_, dec, rng) =>
      edit(dec, (m) => {
        const ts = m.graph.initializer.filter((t) => t.rawData && t.rawData.length > 0);
        const t = pick(rng, ts);
        const r = int(rng, 3);
        if (r === 0) t.rawData = t.rawData!.subarray(0, int(rng, t.rawData!.length));
        else if (r === 1) t.rawData = new Uint8Array(t.rawData!.length + 1 + int(rng, 8));
        else t.dataType = pick(rng, [2, 7, 10, 11, 8, 99]);
      }),
  },
  {
    kind: 'topology',
    apply: (_, dec, rng) =>
      edit(dec, (m) => {
        const nodes = m.graph.node;
        const n = pick(rng, nodes);
        const r = int(rng, 4);
        const someOutput = () => pick(rng, nodes).output[0];
        if (r === 0 && n.input.length) n.input[int(rng, n.input.length)] = someOutput(); // may close a cycle or change shapes
        else if (r === 1 && n.input.length) n.input[int(rng, n.input.length)] = `ghost_${int(rng, 100)}`;
        else if (r === 2) n.output[0] = someOutput();
        else nodes.splice(nodes.indexOf(n), 1);
      }),
  },
  {
    kind: 'external data',
    apply: (pkgDir, dec, rng) => {
      const data = fs.readdirSync(path.dirname(dec)).filter((f) => /_data|\.data$/.test(f));
      if (data.length && rng.uniform() < 0.4) {
        const f = path.join(path.dirname(dec), pick(rng, data));
        fs.truncateSync(f, int(rng, fs.statSync(f).size));
        return;
      }
      edit(dec, (m) => {
        const ext = m.graph.initializer.filter((t) => t.dataLocation === 1);
        if (!ext.length) {
          m.graph.initializer[0].dataLocation = 1;
          return;
        }
        const t = pick(rng, ext);
        const kv = pick(rng, t.externalData!);
        kv[1] = kv[0] === 'location' ? pick(rng, ['../escape.bin', '/etc/passwd', 'missing.bin', '', '.']) : String(pick(rng, [-8, 1, 1e15, 2 ** 53 + 1, 'x' as unknown as number]));
      });
    },
  },
  {
    kind: 'config',
    apply: (pkgDir, _, rng) => {
      if (rng.uniform() < 0.15) {
        const file = ['config.json', 'genai_config.json'].map((f) => path.join(pkgDir, f)).find((f) => fs.existsSync(f))!;
        const b = fs.readFileSync(file);
        fs.writeFileSync(file, b.subarray(0, int(rng, b.length)));
        return;
      }
      editConfig(pkgDir, (t) => {
        const io = t.inputs as Record<string, string> | undefined;
        if (io && rng.uniform() < 0.25) {
          // onnxruntime-genai's KV-cache name templates.
          io[pick(rng, ['past_key_names', 'past_value_names'])] = pick(rng, ['past.%d.key', 'past_key_values.%d', 'kv.%d.value']);
          return;
        }
        const keys = ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'head_size'].filter((k) => k in t);
        t[pick(rng, keys)] = rng.uniform() < 0.8 ? pick(rng, WEIRD_NUMBERS) : pick(rng, ['6', null, [], {}]);
      });
    },
  },
  {
    kind: 'symlink loop',
    apply: (pkgDir, dec, rng) => {
      const where = rng.uniform() < 0.5 ? pkgDir : path.dirname(dec);
      fs.symlinkSync('loop-2', path.join(where, 'loop-1'));
      fs.symlinkSync('loop-1', path.join(where, 'loop-2'));
    },
  },
];

async function outputIsValid(out: string, layers: number): Promise<string | undefined> {
  const r = inspectModel(out);
  if (r.numLayers !== layers) return `output has ${r.numLayers} layers, expected ${layers}`;
  const dec = path.join(out, r.decoder);
  OnnxFile.open(dec).close();
  try {
    const s = await ort.InferenceSession.create(dec, { logSeverityLevel: 4 });
    await s.release();
  } catch (e) {
    return `onnxruntime refuses the output: ${(e as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

export async function runCase(id: number, base: SynthModel, m: Mutation, seed: number, work: string): Promise<CaseResult> {
  const rng = new Rng(seed);
  const parent = path.join(work, `c${id}`);
  const pkgDir = copyPackage(base.dir, path.join(parent, 'model'));
  const dec = path.join(pkgDir, path.relative(base.dir, base.decoderPath));
  m.apply(pkgDir, dec, rng);
  const before = hashFolder(pkgDir);
  const outParent = path.join(parent, 'out');
  fs.mkdirSync(outParent);
  const out = path.join(outParent, 'pruned');
  const res = (outcome: CaseResult['outcome'], detail: string): CaseResult => ({ id, kind: m.kind, outcome, detail });
  let result: CaseResult;
  try {
    await pruneJob({ model: pkgDir, out, options: { layers: [1], scp: false } });
    const bad = await outputIsValid(out, base.dims.numLayers - 1);
    result = bad ? res('violation', `exit 0 with a bad package: ${bad}`) : res('ok', 'pruned; output valid');
    fs.rmSync(out, { recursive: true, force: true });
  } catch (e) {
    const line = describeError(e);
    const internal = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || isInternal(line);
    result = internal ? res('violation', `internal error: ${(e as Error).stack?.split('\n').slice(0, 3).join(' | ')}`) : res('error', line);
    if (fs.readdirSync(outParent).length) result = res('violation', `left in the output's parent: ${fs.readdirSync(outParent).join(', ')}`);
  }
  // inspect on the same input: a clear line or a report, never a crash.
  if (result.outcome !== 'violation') {
    try {
      inspectModel(pkgDir);
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError || isInternal(describeError(e))) result = res('violation', `inspect: internal error ${(e as Error).message}`);
    }
  }
  const left = leftovers(parent);
  if (left.length) result = res('violation', `left beside the model: ${left.join(', ')}`);
  if (JSON.stringify([...hashFolder(pkgDir)]) !== JSON.stringify([...before])) result = res('violation', 'source modified');
  fs.rmSync(parent, { recursive: true, force: true });
  return result;
}

async function main(): Promise<void> {
  const [work, seedArg, countArg] = process.argv.slice(2);
  const seed = Number(seedArg);
  const count = Number(countArg);
  const bases = [0, 1, 4].map((i) => writeVariant(path.join(work, 'valid'), VARIANTS[i], { numLayers: 4 }));
  const rng = new Rng(seed);
  for (let id = 0; id < count; id++) {
    const m = MUTATIONS[id % MUTATIONS.length];
    const base = bases[int(rng, bases.length)];
    const caseSeed = rng.nextU32();
    // Announced first: if the process dies in this case, the parent knows which one.
    process.stdout.write(JSON.stringify({ start: id, kind: m.kind, base: path.basename(base.dir), seed: caseSeed }) + '\n');
    const r = await runCase(id, base, m, caseSeed, work);
    process.stdout.write(JSON.stringify(r) + '\n');
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`fuzz runner failed: ${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
