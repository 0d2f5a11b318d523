// Issue 13: every exit path of a prune leaves the workspace as it was. The bundled tiny VLM is
// rewritten with external data, so calibration opens its edited session in a
// `.short-lvlm-session-*` folder beside the model (hard links to the weights). After a failed
// calibration, Ctrl-C during calibration, a cancel during compensation or writing, and a kill
// of the CLI or of the engine process (swept on the next start), nothing may remain beside or
// inside the model folder or in the output's parent, and the source is unchanged.

import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pruneJob } from '../../src/engine/jobs';
import { makeNode } from '../../src/engine/onnx/builder';
import { OnnxFile, writeOnnx } from '../../src/engine/onnx/onnxFile';
import { hashFolder } from '../support/engineFixtures';
import { assertCleanFailure, copyPackage, editDecoder, editJson, leftovers, REPO, runCli, startCli } from '../support/hostileCorpus';
import { writeSynthModel } from '../support/synthModels';

const MODEL = path.join(REPO, 'models', 'tiny-llava');
const CALIB = path.join(REPO, 'data', 'tiny-vqa', 'calib.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cleanup-'));
const models = path.join(tmp, 'models');
const outParent = path.join(tmp, 'out');
let pkg = '';
let sourceHash: Map<string, string>;
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

before(() => {
  pkg = copyPackage(MODEL, path.join(models, 'tiny-ext'));
  const dec = path.join(pkg, 'onnx', 'decoder_model_merged.onnx');
  const staging = fs.mkdtempSync(path.join(tmp, 'staging-'));
  const f = OnnxFile.open(dec);
  writeOnnx(f.model, f, path.join(staging, 'decoder_model_merged.onnx'), { baseName: 'decoder_model_merged.onnx_data' });
  f.close();
  for (const name of fs.readdirSync(staging)) fs.renameSync(path.join(staging, name), path.join(pkg, 'onnx', name));
  fs.rmSync(staging, { recursive: true });
  editJson(path.join(pkg, 'config.json'), (j) => (j['transformers.js_config'].use_external_data_format = 1));
  fs.mkdirSync(outParent);
  sourceHash = hashFolder(pkg);
});

/** Nothing beside or inside the model folder, nothing in the output's parent, source unchanged. */
function assertClean(what: string): void {
  assert.deepEqual(leftovers(models), [], `${what}: left beside the model`);
  assert.deepEqual(fs.readdirSync(models), ['tiny-ext'], `${what}: beside the model`);
  assert.deepEqual(fs.readdirSync(outParent), [], `${what}: in the output's parent`);
  assert.deepEqual(hashFolder(pkg), sourceHash, `${what}: source changed`);
}

async function waitFor(what: string, cond: () => boolean, limitMs = 180000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function exited(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) resolve({ code: p.exitCode, signal: p.signalCode });
    else p.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

const sessionDirs = () => leftovers(models).filter((n) => n.startsWith('.short-lvlm-session-'));

/** A CLI prune running its calibration (its session folder exists and progress has started). */
async function pruneInCalibration(): Promise<{ proc: ChildProcess; stderr: () => string }> {
  const proc = startCli(tmp, 'prune', pkg, '--calib', CALIB, '--samples', '320', '--out', path.join(outParent, 'p'));
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  try {
    await waitFor('calibration to start', () => /calibrate \d+\/\d+/.test(err) || proc.exitCode !== null);
    assert.equal(proc.exitCode, null, `the prune ended early: ${err}`);
    assert.equal(sessionDirs().length, 1, 'the calibration session folder exists beside the model');
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  return { proc, stderr: () => err };
}

test('a calibration that fails on a bad sample: one line, nothing left', () => {
  const calib = path.join(tmp, 'bad-calib.json');
  const notAnImage = path.join(tmp, 'not-an-image.png');
  fs.writeFileSync(notAnImage, 'this is text, not a PNG\n');
  const good = JSON.parse(fs.readFileSync(CALIB, 'utf8')).slice(0, 3).map((s: { image: string }) => ({ ...s, image: path.resolve(path.dirname(CALIB), s.image) }));
  fs.writeFileSync(calib, JSON.stringify([...good, { ...good[0], id: 'bad', image: notAnImage }]));
  const r = runCli(tmp, 'prune', pkg, '--calib', calib, '--quiet', '--out', path.join(outParent, 'p'));
  assertCleanFailure(r, /cannot read image .*not-an-image\.png/, 'bad image');
  assertClean('failed calibration');
});

test('a calibration the engine cannot run (fused attention without rotary caches): one line, its session folder removed', () => {
  // A fused decoder sized to the bundled model's frontend, whose attention rotates with cos/sin
  // caches that are computed tensors, not initializers: onnxruntime runs it, the engine cannot
  // read the caches to recompute its attention for TIS. (An op that rotates nothing, or gets q
  // and k rotated by RotaryEmbedding nodes, needs no caches and calibrates.)
  const dir = path.join(models, 'fused-norope');
  const m = writeSynthModel({ dir, style: 'fused', layout: 'optimum', externalData: true, numLayers: 2, hidden: 96, heads: 6, kvHeads: 2, headDim: 16, vocab: 58, extras: false });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json', 'processor_config.json', 'onnx/embed_tokens.onnx', 'onnx/vision_encoder.onnx']) {
    fs.copyFileSync(path.join(MODEL, f), path.join(dir, f));
  }
  fs.copyFileSync(path.join(MODEL, 'config.json'), path.join(dir, 'config.json'));
  editJson(path.join(dir, 'config.json'), (j) => {
    Object.assign(j.text_config, { num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 16 });
    j['transformers.js_config'].use_external_data_format = 1;
  });
  editDecoder(m.decoderPath, (model) => {
    for (const n of model.graph.node.filter((x) => x.opType === 'GroupQueryAttention')) {
      n.input[7] = 'cos_cache_computed';
      n.input[8] = 'sin_cache_computed';
    }
    model.graph.node.unshift(makeNode('Identity', ['cos_cache'], ['cos_cache_computed'], { name: 'cos_identity' }), makeNode('Identity', ['sin_cache'], ['sin_cache_computed'], { name: 'sin_identity' }));
  });
  const before = hashFolder(dir);
  const r = runCli(tmp, 'prune', dir, '--calib', CALIB, '--samples', '2', '--quiet', '--out', path.join(outParent, 'p'));
  assertCleanFailure(r, /fused attention without cos\/sin cache/, 'unsupported attention');
  assert.deepEqual(hashFolder(dir), before);
  fs.rmSync(dir, { recursive: true });
  assertClean('failed session open');
});

test('Ctrl-C (SIGINT) during calibration: exit 130, one line, nothing left', async () => {
  const { proc, stderr } = await pruneInCalibration();
  proc.kill('SIGINT');
  const { code, signal } = await exited(proc);
  assert.equal(signal, null);
  assert.equal(code, 130);
  assert.equal(stderr().trim().split('\n').pop(), 'short-lvlm: cancelled; temporary files removed');
  assertClean('SIGINT during calibration');
});

test('cancel from the extension during calibration (engine process): reported as cancelled, nothing left', async () => {
  const worker = fork(path.join(REPO, 'dist', 'engineWorker.js'), [], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  try {
    let calibrating = false;
    let answer: { type: string; cancelled?: boolean } | undefined;
    worker.on('message', (m: { type: string; stage?: string; cancelled?: boolean }) => {
      if (m.type === 'progress' && m.stage === 'calibrate') calibrating = true;
      if (m.type === 'error' || m.type === 'result') answer = m;
    });
    worker.send({ type: 'prune', id: 1, model: pkg, calib: CALIB, out: path.join(outParent, 'p'), options: { samples: 320 } });
    await waitFor('the engine to calibrate', () => calibrating || answer !== undefined || worker.exitCode !== null);
    assert.equal(sessionDirs().length, 1);
    worker.send({ type: 'cancel', id: 1 });
    await waitFor('the cancel to be answered', () => answer !== undefined || worker.exitCode !== null);
    assert.deepEqual(answer && { type: answer.type, cancelled: answer.cancelled }, { type: 'error', cancelled: true });
    assertClean('cancel in the engine process');
  } finally {
    worker.kill();
  }
});

test('cancel during compensation (engine API): rejected, nothing left', async () => {
  let cancel = false;
  let compensating = 0;
  await assert.rejects(
    pruneJob(
      { model: pkg, calib: CALIB, out: path.join(outParent, 'p'), options: { method: 'svl', samples: 8, ratio: 0.2 } },
      {
        onProgress: (p) => {
          if (p.stage === 'compensate') cancel = ++compensating >= 2;
        },
        checkCancelled: () => {
          if (cancel) throw new Error('cancelled');
        },
      },
    ),
    /^Error: cancelled$/,
  );
  assert.ok(compensating >= 2, 'the cancel came during compensation');
  assertClean('cancel during compensation');
});

test('cancel while the package is being written (engine API): rejected, nothing left', async () => {
  let sawPartial = false;
  await assert.rejects(
    pruneJob(
      { model: pkg, calib: CALIB, out: path.join(outParent, 'p'), options: { samples: 4, ratio: 0.2, scp: false } },
      {
        checkCancelled: () => {
          if (fs.readdirSync(outParent).some((n) => n.includes('.partial-'))) {
            sawPartial = true;
            throw new Error('cancelled');
          }
        },
      },
    ),
    /^Error: cancelled$/,
  );
  assert.ok(sawPartial, 'the cancel came while the partial folder existed');
  assertClean('cancel during writing');
});

test('a killed CLI leaves its session folder; the next start of the CLI sweeps it', async () => {
  const { proc } = await pruneInCalibration();
  proc.kill('SIGKILL');
  await exited(proc);
  assert.equal(sessionDirs().length, 1, 'SIGKILL leaves the folder (nothing can run on a kill)');
  const r = runCli(tmp, 'inspect', pkg, '--json');
  assert.equal(r.status, 0, r.stderr);
  assertClean('after the next CLI start');
});

test('a killed engine process leaves its session folder; the next engine process sweeps it', async () => {
  const worker = path.join(REPO, 'dist', 'engineWorker.js');
  const start = () => fork(worker, [], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const first = start();
  let second: ChildProcess | undefined;
  try {
    let calibrating = false;
    first.on('message', (m: { type: string; stage?: string }) => {
      if (m.type === 'progress' && m.stage === 'calibrate') calibrating = true;
    });
    first.send({ type: 'prune', id: 1, model: pkg, calib: CALIB, out: path.join(outParent, 'p'), options: { samples: 320 } });
    await waitFor('the engine to calibrate', () => calibrating || first.exitCode !== null);
    assert.equal(sessionDirs().length, 1);
    first.kill('SIGKILL');
    await exited(first);
    assert.equal(sessionDirs().length, 1, 'the killed engine left its folder');
    second = start();
    await new Promise<void>((resolve) => second!.on('message', (m: { type: string }) => m.type === 'ready' && resolve()));
    assertClean('after the next engine start');
  } finally {
    first.kill('SIGKILL');
    second?.kill();
  }
});
