// Issue 13, targeted cases: crafted and inconsistent packages through the CLI as a user runs
// it. Each must end with one clear line and a non-zero exit, write nothing (no output, no
// partial folder, no session folder), and leave the source byte for byte as it was.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { pruneJob } from '../../src/engine/jobs';
import { decodeModel } from '../../src/engine/onnx/proto';
import { fsErrorSentence } from '../../src/protocol/errorText';
import { hashFolder, VARIANTS, writeVariant } from '../support/engineFixtures';
import { assertCleanFailure, copyPackage, deeplyNestedNode, editDecoder, editJson, largestWeight, leftovers, REPO, runCli } from '../support/hostileCorpus';
import { SynthModel } from '../support/synthModels';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let optimum: SynthModel;
let genai: SynthModel;
before(() => {
  optimum = writeVariant(path.join(tmp, 'valid'), VARIANTS[0]); // config.json + inline decoder
  genai = writeVariant(path.join(tmp, 'valid'), VARIANTS[4]); // genai_config.json + fused decoder
});

const DECODER = path.join('onnx', 'decoder_model_merged.onnx');
let n = 0;

/** Copies a valid package, breaks it, then runs inspect and prune on it: both must fail cleanly. */
function refused(base: SynthModel, breakIt: (dir: string) => void, re: RegExp, what: string, commands: Array<'inspect' | 'prune'> = ['inspect', 'prune']): void {
  const parent = path.join(tmp, `case-${n++}`);
  const dir = copyPackage(base.dir, path.join(parent, 'model'));
  breakIt(dir);
  const before = hashFolder(dir);
  const outParent = path.join(parent, 'out');
  fs.mkdirSync(outParent);
  const out = path.join(outParent, 'pruned');
  for (const c of commands) {
    const r = c === 'inspect' ? runCli(parent, 'inspect', dir) : runCli(parent, 'prune', dir, '--layers', '1', '--no-scp', '--out', out);
    assertCleanFailure(r, re, `${what} (${c})`);
  }
  assert.deepEqual(fs.readdirSync(outParent), [], `${what}: nothing written in the output's parent`);
  assert.deepEqual(leftovers(parent), [], `${what}: nothing left beside the model`);
  assert.deepEqual(hashFolder(dir), before, `${what}: source unchanged`);
}

test('tensor data: short raw_data, absurd and negative dims, typed fields of the wrong length, no data', () => {
  const dec = (dir: string) => path.join(dir, DECODER);
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    const w = largestWeight(m);
    w.rawData = w.rawData!.subarray(0, w.rawData!.length - 8);
  }), /needs \d+ bytes, but its data has \d+/, 'raw_data shorter than its dims');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    largestWeight(m).dims = [2 ** 31, 2 ** 31];
  }), /more elements than any file can hold/, 'dims 2^31 x 2^31');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    largestWeight(m).dims = [2 ** 40, 2 ** 40];
  }), /more elements than any file can hold/, 'dims 2^40 x 2^40');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    const w = largestWeight(m);
    w.dims = [-1, ...w.dims.slice(1)];
  }), /invalid dimension -1/, 'negative dim');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    const w = largestWeight(m);
    const n = w.dims.reduce((a, b) => a * b, 1);
    w.rawData = undefined;
    w.floatData = new Float32Array(n - 1);
  }), /float_data holds \d+ values/, 'float_data one value short');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    largestWeight(m).rawData = undefined;
  }), /carries no data/, 'weight without data');
});

test('graph topology: a cycle, a read of nothing, a tensor produced twice, subgraphs nested 5000 deep', () => {
  const dec = (dir: string) => path.join(dir, DECODER);
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    // The first residual Add reads the logits, which depend on it.
    const add = m.graph.node.find((x) => x.opType === 'Add' && x.input.includes('inputs_embeds'))!;
    add.input[add.input.indexOf('inputs_embeds')] = 'logits';
  }), /has a cycle/, 'cycle');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    m.graph.node[5].input[0] = 'nowhere';
  }), /reads "nowhere", which no node, input or initializer produces/, 'dangling read');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    m.graph.node[7].output[0] = m.graph.node[6].output[0];
  }), /is produced twice/, 'two producers');
  refused(optimum, (d) => editDecoder(dec(d), (m) => {
    m.graph.unknown.push(deeplyNestedNode(5000));
  }), /subgraphs nested more than 64 deep/, 'deep nesting');
});

test('config against graph: layer count, hidden size, head counts, KV-cache names, each naming file, field and both values', () => {
  refused(optimum, (d) => editJson(path.join(d, 'config.json'), (j) => (j.text_config.num_hidden_layers = 7)),
    /config\.json: text_config\.num_hidden_layers is 7, but the decoder onnx\/decoder_model_merged\.onnx has 6 layers/, 'config.json layer count');
  refused(genai, (d) => editJson(path.join(d, 'genai_config.json'), (j) => (j.model.decoder.num_hidden_layers = 5)),
    /genai_config\.json: model\.decoder\.num_hidden_layers is 5, but the decoder model\.onnx has 6 layers/, 'genai_config.json layer count');
  refused(optimum, (d) => editJson(path.join(d, 'config.json'), (j) => (j.text_config.hidden_size = 48)),
    /text_config\.hidden_size is 48, but .* has hidden size 32/, 'hidden size');
  refused(optimum, (d) => editJson(path.join(d, 'config.json'), (j) => (j.text_config.num_key_value_heads = 4)),
    /text_config\.num_key_value_heads is 4, but .* has 2 key\/value heads/, 'kv heads');
  refused(genai, (d) => editJson(path.join(d, 'genai_config.json'), (j) => (j.model.decoder.num_attention_heads = 8)),
    /model\.decoder\.num_attention_heads is 8, but .* has 4 attention heads/, 'attention heads');
  refused(genai, (d) => editJson(path.join(d, 'genai_config.json'), (j) => (j.model.decoder.head_size = 32)),
    /model\.decoder\.head_size is 32, but .* has head size 16/, 'head size');
  refused(genai, (d) => editJson(path.join(d, 'genai_config.json'), (j) => (j.model.decoder.inputs.past_key_names = 'past.%d.key')),
    /model\.decoder\.inputs\.past_key_names .* input "past\.0\.key"/, 'KV-cache names');
  refused(optimum, (d) => editJson(path.join(d, 'config.json'), (j) => (j.text_config.num_hidden_layers = '6')),
    /text_config\.num_hidden_layers must be a positive integer, but it is "6"/, 'layer count as a string');
});

test('file system: an output under a file, a symlink loop in the package, the model itself a loop; plain sentences with the path', () => {
  const parent = path.join(tmp, 'fs');
  const dir = copyPackage(optimum.dir, path.join(parent, 'model'));
  const before = hashFolder(dir);
  fs.writeFileSync(path.join(parent, 'a-file'), 'x');
  assertCleanFailure(runCli(parent, 'prune', dir, '--layers', '1', '--no-scp', '--out', path.join(parent, 'a-file', 'pruned')), /a-file is a file, not a folder/, 'out under a file');
  if (fs.existsSync('/dev/null')) {
    assertCleanFailure(runCli(parent, 'prune', dir, '--layers', '1', '--no-scp', '--out', '/dev/null/pruned'), /\/dev\/null is a file, not a folder/, 'out under /dev/null');
  }
  assert.deepEqual(hashFolder(dir), before);

  const loopy = copyPackage(optimum.dir, path.join(parent, 'loopy'));
  fs.symlinkSync('loop-b', path.join(loopy, 'loop-a'));
  fs.symlinkSync('loop-a', path.join(loopy, 'loop-b'));
  for (const c of [['inspect', loopy], ['prune', loopy, '--layers', '1', '--no-scp', '--out', path.join(parent, 'out-loopy')]]) {
    assertCleanFailure(runCli(parent, ...c), /loop-a is a symbolic link that loops back on itself/, `symlink loop (${c[0]})`);
  }
  fs.symlinkSync('self', path.join(parent, 'self'));
  assertCleanFailure(runCli(parent, 'inspect', path.join(parent, 'self')), /self is a symbolic link that loops back on itself or points to nothing/, 'model path is a loop');
  assert.deepEqual(leftovers(parent), []);
  assert.ok(!fs.existsSync(path.join(parent, 'out-loopy')));
});

test('fsErrorSentence turns EEXIST, ENOTDIR, ELOOP, EACCES, ENOSPC into sentences with the path', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'errno-'));
  const file = path.join(dir, 'file');
  fs.writeFileSync(file, 'x');
  fs.symlinkSync('loop', path.join(dir, 'loop'));
  const caught = (f: () => void): unknown => {
    try {
      f();
    } catch (e) {
      return e;
    }
    assert.fail('expected an error');
  };
  const cases: Array<[unknown, RegExp]> = [
    [caught(() => fs.mkdirSync(file)), new RegExp(`cannot create the folder ${file}: a file with that name is in the way`)],
    [caught(() => fs.mkdirSync(path.join(file, 'sub'))), new RegExp(`cannot create the folder ${file}/sub: a part of this path is a file, not a folder`)],
    [caught(() => fs.readFileSync(path.join(dir, 'loop'))), new RegExp(`cannot open ${dir}/loop: its symbolic links loop back on themselves`)],
    // Root ignores permissions and disks are rarely full on demand: these two are made as Node makes them.
    [Object.assign(new Error("EACCES: permission denied, open '/m/x.onnx'"), { code: 'EACCES', errno: -13, syscall: 'open', path: '/m/x.onnx' }), /cannot open \/m\/x\.onnx: permission denied/],
    [Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write', path: '/out/.p.partial-1/model.onnx_data' }), /cannot write \/out\/\.p\.partial-1\/model\.onnx_data: the disk is full/],
  ];
  for (const [e, re] of cases) {
    const s = fsErrorSentence(e);
    assert.ok(s, `no sentence for ${(e as Error).message}`);
    assert.match(s, re);
    assert.doesNotMatch(s, /\bE[A-Z]{3,}\b/, 'no errno code in the sentence');
  }
  assert.equal(fsErrorSentence(new Error('not a file-system error')), undefined);
});

test('engine API: layer lists that are not valid indices of this model are refused before any work', async () => {
  const outParent = path.join(tmp, 'api-out');
  fs.mkdirSync(outParent);
  const before = hashFolder(optimum.dir);
  const bad: Array<[unknown, RegExp]> = [
    [[1e20], /layer 100000000000000000000 does not exist/],
    [[6], /layer 6 does not exist/],
    [[2 ** 53 + 2], /layer 9007199254740994 does not exist/],
    [[1.5], /1\.5 is not a layer index/],
    [[-1], /layer -1 does not exist/],
    [['3'], /"3" is not a layer index/],
    [Array.from({ length: 1e6 }, (_, i) => i), /layer 6 does not exist/],
    ['3,5', /must be a list of layer indices/],
  ];
  for (const [layers, re] of bad) {
    const t0 = Date.now();
    await assert.rejects(pruneJob({ model: optimum.dir, out: path.join(outParent, 'p'), options: { layers: layers as number[], scp: false } }), (e: Error) => {
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.ok(Date.now() - t0 < 30000, 'refused without a long computation');
  }
  assert.deepEqual(fs.readdirSync(outParent), []);
  assert.deepEqual(hashFolder(optimum.dir), before);
});

test('the engine process reports the same one line as the CLI (what the extension shows with "Show Log")', async () => {
  const parent = path.join(tmp, 'worker');
  const broken = [
    copyPackage(optimum.dir, path.join(parent, 'cycle')),
    copyPackage(optimum.dir, path.join(parent, 'count')),
    copyPackage(optimum.dir, path.join(parent, 'loop')),
  ];
  editDecoder(path.join(broken[0], DECODER), (m) => {
    const add = m.graph.node.find((x) => x.opType === 'Add' && x.input.includes('inputs_embeds'))!;
    add.input[add.input.indexOf('inputs_embeds')] = 'logits';
  });
  editJson(path.join(broken[1], 'config.json'), (j) => (j.text_config.num_hidden_layers = 9));
  fs.symlinkSync('loop', path.join(broken[2], 'loop'));
  const worker = fork(path.join(REPO, 'dist', 'engineWorker.js'), [], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const answers = new Map<number, { type: string; message?: string }>();
  worker.on('message', (m: { type: string; id?: number; message?: string }) => {
    if (m.id !== undefined && (m.type === 'error' || m.type === 'result')) answers.set(m.id, m);
  });
  const ask = async (id: number, req: object) => {
    worker.send({ ...req, id });
    while (!answers.has(id)) {
      assert.equal(worker.exitCode, null, 'the engine process died');
      await new Promise((r) => setTimeout(r, 20));
    }
    return answers.get(id)!;
  };
  let id = 0;
  try {
    for (const dir of broken) {
      const out = path.join(parent, `${path.basename(dir)}-out`);
      for (const [req, args] of [
        [{ type: 'inspect', model: dir }, ['inspect', dir]],
        [{ type: 'prune', model: dir, out, options: { layers: [1], scp: false } }, ['prune', dir, '--layers', '1', '--no-scp', '--out', out]],
      ] as const) {
        const a = await ask(++id, req);
        const cli = runCli(parent, ...args).stderr.trim();
        assert.equal(a.type, 'error', `${req.type} ${dir}`);
        assert.ok(!a.message!.includes('\n'));
        assert.equal(`short-lvlm: ${a.message}`, cli, `${req.type} ${path.basename(dir)}: engine and CLI say the same`);
      }
    }
  } finally {
    worker.kill();
  }
  assert.deepEqual(leftovers(parent), []);
});

test('damaged recipes: one line each, nothing written; the intact recipe applies', () => {
  const parent = path.join(tmp, 'recipes');
  fs.mkdirSync(parent);
  const dec = optimum.decoderPath;
  const weight = decodeModel(fs.readFileSync(dec)).graph.initializer.find((t) => t.dims.length === 2 && /down_proj/.test(t.name))!;
  const intact = { format: 'short-lvlm-recipe/1', model: { decoder: DECODER, numLayers: 6, bytes: fs.statSync(dec).size }, removed: [1], compensation: [], options: {} };
  const basis = (rows: number, cols: number, bytes: number) => ({ rows, cols, float64: Buffer.alloc(bytes).toString('base64') });
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{"format": "short-lvlm-recipe/1", ', /is not valid JSON/],
    ['not a recipe', { hello: 1 }, /is not a Short-LVLM recipe/],
    ['removed not a list', { ...intact, removed: 'x' }, /incomplete or damaged/],
    ['huge layer', { ...intact, removed: [1e20] }, /incomplete or damaged/],
    ['no model', { ...intact, model: undefined }, /incomplete or damaged/],
    ['layer out of range', { ...intact, removed: [6] }, /layer 6 does not exist/],
    ['basis too short', { ...intact, compensation: [{ basis: basis(weight.dims[1], 1, 8), weights: [{ name: weight.name, side: 'output', inOut: true }] }] }, /compensation 0 is damaged: its basis holds 8 bytes/],
    ['basis not finite', { ...intact, compensation: [{ basis: { rows: 1, cols: 1, float64: Buffer.from(new Float64Array([NaN]).buffer).toString('base64') }, weights: [] }] }, /not finite/],
  ];
  const out = path.join(parent, 'out');
  for (const [what, recipe, re] of cases) {
    const file = path.join(parent, 'recipe.json');
    fs.writeFileSync(file, typeof recipe === 'string' ? recipe : JSON.stringify(recipe));
    assertCleanFailure(runCli(parent, 'prune', optimum.dir, '--recipe', file, '--out', out), re, what);
    assert.ok(!fs.existsSync(out), `${what}: no output`);
  }
  fs.writeFileSync(path.join(parent, 'recipe.json'), JSON.stringify(intact));
  const ok = runCli(parent, 'prune', optimum.dir, '--recipe', path.join(parent, 'recipe.json'), '--out', out, '--json');
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout).removed, [1]);
});

test('a later layer that reads a removed layer\'s internals: that removal is refused in one line, others still work', () => {
  refused(optimum, (d) => editDecoder(path.join(d, DECODER), (m) => {
    m.graph.node.find((x) => x.name === '/model/layers.3/self_attn/Mul_1')!.input[1] = '/model/layers.1/self_attn/Reshape_1_output_0';
  }), /layer 1 cannot be removed: node "\/model\/layers\.3\/self_attn\/Mul_1" outside it reads "\/model\/layers\.1\/self_attn\/Reshape_1_output_0", computed inside layer 1/, 'cross-layer read', ['prune']);
});

test('a shared node named after a removed layer keeps its name; the renumbered nodes do not collide with it', async () => {
  const parent = path.join(tmp, 'shared-name');
  const dir = copyPackage(optimum.dir, path.join(parent, 'model'));
  editDecoder(path.join(dir, DECODER), (m) => {
    // A node outside every layer (it reads only the attention mask) named as one of layer 2's
    // nodes will be after renumbering.
    m.graph.node.find((x) => x.input.includes('attention_mask'))!.name = '/model/layers.1/extra/X';
    m.graph.node.find((x) => x.name === '/model/layers.2/self_attn/Softmax')!.name = '/model/layers.2/extra/X';
  });
  const out = path.join(parent, 'out');
  const r = runCli(parent, 'prune', dir, '--layers', '1', '--no-scp', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const dec = path.join(out, DECODER);
  const names = decodeModel(fs.readFileSync(dec)).graph.node.map((x) => x.name).filter(Boolean);
  assert.equal(new Set(names).size, names.length, 'node names unique');
  const session = await ort.InferenceSession.create(dec);
  await session.release();
});
