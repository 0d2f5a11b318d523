// Issue 4 end to end on the bundled tiny VLM: the CLI prunes at 10-40 % with Short-LVLM,
// every pruned package loads and answers in our runner and in transformers.js alike, the
// report and recipe hold what the panels and re-application need, and a recipe re-applied
// without calibration gives the same decoder.

import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { loadEval } from '../../src/engine/data/datasets';
import { OnnxFile } from '../../src/engine/onnx/onnxFile';
import { Recipe, Report } from '../../src/protocol/report';
import { transformersJsAnswers } from '../support/transformersJs';

const repo = path.resolve(__dirname, '../../..');
const cli = path.join(repo, 'dist/cli.js');
const model = path.join(repo, 'models/tiny-llava');
const calib = path.join(repo, 'data/tiny-vqa/calib.json');
const evalFile = path.join(repo, 'data/tiny-vqa/eval.jsonl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-prune-'));
const outs = new Map<number, string>();

function runCli(args: string[]): unknown {
  const out = execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim());
}

before(() => {
  assert.ok(fs.existsSync(cli), 'run npm run build first');
  for (const ratio of [0.1, 0.2, 0.3, 0.4]) {
    const out = path.join(tmp, `r${ratio}`);
    const r = runCli(['prune', model, '--calib', calib, '--method', 'svl', '--ratio', String(ratio), '--samples', '24', '--out', out, '--json', '--quiet']) as { out: string; removed: number[]; ratio: number };
    assert.equal(r.out, out);
    outs.set(ratio, out);
  }
});

test('each ratio removes round(r x L) layers from the last half, and the report explains the choice', () => {
  for (const [ratio, out] of outs) {
    const report = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8')) as Report;
    const L = report.model.numLayers;
    assert.equal(report.removed.length, Math.round(ratio * L));
    for (const l of report.removed) assert.ok(l >= Math.floor(L / 2) && l < L, `layer ${l} is a candidate`);
    // The removed layers are the candidates with the highest TIS cosine.
    const cands = report.layers.filter((x) => x.candidate).sort((a, b) => b.cosTis - a.cosTis || b.index - a.index);
    assert.deepEqual(report.removed, cands.slice(0, report.removed.length).map((x) => x.index).sort((a, b) => a - b));
    assert.equal(report.layers.filter((x) => x.status === 'pruned').length, report.removed.length);
    // One compensating partner per removed layer, retained. The method does not promise that
    // every pair's gap narrows (W(I + VV^T) doubles the partner's own output along V), so only
    // the figures' presence and range are checked here; the README discusses what they show.
    assert.equal(report.pairs.length, report.removed.length);
    for (const p of report.pairs) {
      assert.ok(!report.removed.includes(p.partner));
      assert.ok(p.gapAfter && Number.isFinite(p.gapAfter.relL2) && p.gapAfter.cosine <= 1 + 1e-9 && p.gapBefore.relL2 >= 0, `pair ${p.pruned}/${p.partner}`);
      assert.equal(p.rank, Math.max(1, Math.round(report.model.hiddenSize / 64)));
    }
    assert.equal(report.histograms.visual.length, L);
    assert.ok(report.tokenSamples.length > 0 && report.tokenSamples[0].tis.length === L);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.text_config.num_hidden_layers, L - report.removed.length);
  }
});

test('pruned packages answer in our runner and in transformers.js alike', async () => {
  const items = loadEval(evalFile, 16);
  const rows = await benchModels([model, ...outs.values()], items);
  for (const [i, out] of [model, ...outs.values()].entries()) {
    const theirs = await transformersJsAnswers(out, items);
    assert.deepEqual(theirs, rows[i].answers.map((a) => a.predicted), `${path.basename(out)}: transformers.js vs our runner`);
  }
  for (const r of rows.slice(1)) assert.ok(r.agreement !== undefined && r.klMean !== undefined && r.relativeAccuracy !== undefined);
});

test('a recipe re-applied without calibration reproduces the pruned decoder', () => {
  const out = outs.get(0.3)!;
  const again = path.join(tmp, 'from-recipe');
  runCli(['prune', model, '--recipe', path.join(out, 'recipe.json'), '--out', again, '--json']);
  const a = OnnxFile.open(path.join(out, 'onnx/decoder_model_merged.onnx'));
  const b = OnnxFile.open(path.join(again, 'onnx/decoder_model_merged.onnx'));
  const bi = b.initializerMap();
  assert.equal(a.graph.initializer.length, b.graph.initializer.length);
  for (const t of a.graph.initializer) assert.deepEqual(Buffer.from(b.tensorBytes(bi.get(t.name)!)), Buffer.from(a.tensorBytes(t)), t.name);
  const recipe = JSON.parse(fs.readFileSync(path.join(out, 'recipe.json'), 'utf8')) as Recipe;
  assert.ok(recipe.compensation.length > 0);
  a.close();
  b.close();
});

test('SCP changes exactly the partners\' down projections', () => {
  const noScp = path.join(tmp, 'noscp');
  runCli(['prune', model, '--calib', calib, '--method', 'svl', '--ratio', '0.3', '--samples', '24', '--no-scp', '--out', noScp, '--json', '--quiet']);
  const withScp = OnnxFile.open(path.join(outs.get(0.3)!, 'onnx/decoder_model_merged.onnx'));
  const without = OnnxFile.open(path.join(noScp, 'onnx/decoder_model_merged.onnx'));
  const wi = without.initializerMap();
  const report = JSON.parse(fs.readFileSync(path.join(outs.get(0.3)!, 'short-lvlm-report.json'), 'utf8')) as Report;
  const changed = withScp.graph.initializer.filter((t) => !Buffer.from(withScp.tensorBytes(t)).equals(Buffer.from(without.tensorBytes(wi.get(t.name)!)))).length;
  assert.equal(changed, report.pairs.length);
  withScp.close();
  without.close();
});

test('bad input: clear one-line errors and nothing written', () => {
  const out = path.join(tmp, 'bad');
  const cases: string[][] = [
    ['prune', model, '--calib', path.join(tmp, 'missing.json'), '--out', out],
    ['prune', model, '--calib', calib, '--ratio', '0.7', '--out', out],
    ['prune', model, '--out', out],
    ['bench', model],
  ];
  for (const args of cases) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!fs.existsSync(out));
  }
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.partial-')), []);
});
