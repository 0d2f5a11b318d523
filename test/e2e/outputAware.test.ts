// Issue 10 end to end on the bundled tiny VLM: the measured skip cost in the report equals the
// KL computed independently from a package written with that layer removed (the engine's own
// surgery, through the CLI) and a plain forward pass of both packages on the held-out prompts;
// the greedy choice and the quality budget agree with the recorded curve; least-squares
// compensation is either applied with a narrower gap or reported as dropped, and its recipe
// re-applies to the same weights.

import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCalibration } from '../../src/engine/data/datasets';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { openPackage } from '../../src/engine/package/modelPackage';
import { DecoderRunner } from '../../src/engine/runtime/decoderRunner';
import { Encoded, VlmFrontend } from '../../src/engine/runtime/vlmFrontend';
import { Report } from '../../src/protocol/report';

const repo = path.resolve(__dirname, '../../..');
const cli = path.join(repo, 'dist/cli.js');
const model = path.join(repo, 'models/tiny-llava');
const calib = path.join(repo, 'data/tiny-vqa/calib.json');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-output-aware-'));
const SAMPLES = 16;
let greedyOut = '';
let report: Report;

function runCli(args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim());
}

/** KL(p || q) of two logit vectors in float64, written here independently of the engine. */
function kl(p: Float32Array, q: Float32Array): number {
  const lse = (v: Float32Array) => {
    const m = Math.max(...v);
    return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
  };
  const lp = lse(p);
  const lq = lse(q);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.exp(p[i] - lp) * (p[i] - lp - (q[i] - lq));
  return s;
}

function top1(v: Float32Array): number {
  return v.indexOf(Math.max(...v));
}

before(() => {
  assert.ok(fs.existsSync(cli), 'run npm run build first');
  greedyOut = path.join(tmp, 'greedy');
  runCli(['prune', model, '--calib', calib, '--ratio', '0.2', '--method', 'greedy', '--compensation', 'ls', '--samples', String(SAMPLES), '--out', greedyOut, '--json', '--quiet']);
  report = JSON.parse(fs.readFileSync(path.join(greedyOut, 'short-lvlm-report.json'), 'utf8')) as Report;
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('skip cost equals the KL and agreement of a package written without that layer, run plainly', async () => {
  const m = report.measurement!;
  assert.equal(m.positions, 'first-answer-token');
  // The held-out slice the report names (25 %, every family of the cycling file represented).
  const held = loadCalibration(calib, SAMPLES).filter((s) => m.heldOutIds!.includes(s.id));
  assert.equal(m.heldOutSamples, held.length);
  assert.equal(held.length, SAMPLES / 4);
  const pkg = openPackage(model);
  const frontend = await VlmFrontend.open(pkg);
  const prompts: Encoded[] = [];
  for (const s of held) {
    const firstUser = s.messages.findIndex((x) => x.role === 'user');
    prompts.push(await frontend.encode(s.messages.slice(0, firstUser + 1), s.image, true));
  }
  // Each package's decoder run whole, on the inputs the family's class builds for it.
  const lastLogits = async (decoder: string) => {
    const r = await DecoderRunner.fromFile(decoder);
    try {
      const out: Float32Array[] = [];
      for (const p of prompts) out.push((await frontend.prefill(p, r)).lastLogits);
      return out;
    } finally {
      await r.dispose();
    }
  };
  const ref = await lastLogits(pkg.decoder);
  // The layer the cosine ranking misses (14), the first layer and one in between.
  for (const layer of [0, 9, 14]) {
    const out = path.join(tmp, `skip-${layer}`);
    runCli(['prune', model, '--layers', String(layer), '--no-scp', '--out', out, '--json']);
    const got = await lastLogits(openPackage(out).decoder);
    const want = ref.reduce((s, r, i) => s + kl(r, got[i]), 0) / ref.length;
    const agree = ref.filter((r, i) => top1(r) === top1(got[i])).length / ref.length;
    const cost = report.layers[layer].skipCost!;
    assert.ok(Math.abs(cost.kl - want) <= 1e-6 + 1e-4 * want, `layer ${layer}: report KL ${cost.kl}, independent ${want}`);
    assert.equal(cost.agreement, agree, `layer ${layer}: agreement`);
  }
  assert.equal(report.layers.filter((l) => l.skipCost).length, report.model.numLayers);
  await frontend.dispose();
});

test('the greedy choice is the last point of its recorded curve, and the report names the method plainly', () => {
  const sel = report.selection!;
  assert.equal(sel.method, 'greedy');
  assert.equal(sel.curve.length, report.removed.length);
  assert.deepEqual(sel.curve[sel.curve.length - 1].removed, report.removed);
  // Each point adds one layer to the previous one (a prefix chain).
  sel.curve.forEach((p, i) => assert.deepEqual([...(sel.curve[i - 1]?.removed ?? []), p.added].sort((a, b) => a - b), p.removed));
  for (const p of sel.curve) assert.ok(p.agreement >= 0 && p.agreement <= 1 && p.kl >= 0);
  assert.match(report.methodNote!, /not by the paper's TIS cosine/);
  assert.ok(report.measurement!.forwardPassesPerSample > 0 && report.measurement!.trials > report.model.numLayers);
});

test('least-squares compensation is applied only when it lowers the held-out KL; the recipe re-applies it exactly', () => {
  const c = report.compensationCheck!;
  assert.equal(c.kind, 'ls');
  assert.equal(c.applied, c.with.kl < c.without.kl);
  const recipe = JSON.parse(fs.readFileSync(path.join(greedyOut, 'recipe.json'), 'utf8'));
  if (c.applied) {
    assert.ok(report.lsMaps!.length > 0);
    for (const m of report.lsMaps!) assert.ok(m.gapAfter < m.gapBefore, `block ${m.block}: gap ${m.gapBefore} -> ${m.gapAfter}`);
    assert.equal(recipe.lsMaps.length, report.lsMaps!.length);
  } else assert.ok(!recipe.lsMaps?.length && report.warnings.some((w) => /not applied/.test(w)));
  const again = path.join(tmp, 'again');
  runCli(['prune', model, '--recipe', path.join(greedyOut, 'recipe.json'), '--out', again, '--json']);
  const a = OnnxFile.open(openPackage(greedyOut).decoder);
  const b = OnnxFile.open(openPackage(again).decoder);
  const bi = b.initializerMap();
  for (const t of a.graph.initializer) assert.ok(Buffer.from(b.tensorBytes(bi.get(t.name)!)).equals(Buffer.from(a.tensorBytes(t))), t.name);
  a.close();
  b.close();
});

test('a quality budget removes the most layers whose held-out agreement meets it, and records the curve', () => {
  const curve = report.selection!.curve;
  // A budget just at the second point's agreement admits at least two layers (the same greedy
  // order: the ratio run above used the default candidates, every layer but the first and last).
  const bound = Math.min(curve[0].agreement, curve[1].agreement);
  const out = path.join(tmp, 'budget');
  const r = runCli(['prune', model, '--calib', calib, '--method', 'greedy', '--min-agreement', String(bound), '--no-scp', '--samples', String(SAMPLES), '--candidates', '1-14', '--out', out, '--json', '--quiet']);
  const rep = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8')) as Report;
  const sel = rep.selection!;
  const ok = sel.curve.map((p) => p.agreement >= bound);
  const n = ok.lastIndexOf(true) + 1;
  assert.ok(n >= 2);
  assert.equal(sel.budget!.layers, n);
  assert.deepEqual(rep.removed, sel.curve[n - 1].removed);
  assert.deepEqual(r.removed, rep.removed);
  // The budget's curve runs to the most a budget may remove (half the layers, within the candidates).
  assert.equal(sel.curve.length, Math.min(Math.floor(rep.model.numLayers / 2), sel.candidates.length));
});
