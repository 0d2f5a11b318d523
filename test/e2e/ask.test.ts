// Issue 15, "ask both models": the engine's ask job against independent references. The
// original's step probabilities equal PyTorch's logits for the same prompt, the pruned
// model's (layers 9 and 10 removed) PyTorch's with those layers skipped; whole answers equal
// transformers.js' own generation of each package, and the pruned model's distributions
// along the original's answer equal a plain transformers.js forward of the pruned package on
// the original's tokens; KL is checked against a float64 computation written here. Bad
// inputs fail with one line; a cancel stops the job at every check and leaves nothing running.

import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { fork, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { askJob } from '../../src/engine/commands/ask';
import { pruneJob } from '../../src/engine/jobs';
import { loadEval } from '../../src/engine/data/datasets';
import type { AskResult, AskStep, TokenProb } from '../../src/protocol/engineApi';
import { loadWithTransformersJs, TjsModel } from '../support/transformersJs';

const repo = path.resolve(__dirname, '../../..');
const original = path.join(repo, 'models/tiny-llava');
const data = path.join(repo, 'data/tiny-vqa');
const logitsRef = JSON.parse(fs.readFileSync(path.join(data, 'reference', 'logits.json'), 'utf8'));
const REMOVED = [9, 10];
let tmp: string;
let pruned: string;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ask-test-'));
  pruned = path.join(tmp, 'tiny-llava-pruned');
  await pruneJob({ model: original, out: pruned, options: { layers: REMOVED, scp: false } });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Softmax and KL(p || q) in float64, written independently of the engine's. */
function probs(logits: ArrayLike<number>): number[] {
  const xs = Array.from(logits);
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
function kl(p: number[], q: number[]): number {
  return p.reduce((acc, pi, i) => (pi > 0 ? acc + pi * Math.log(pi / q[i]) : acc), 0);
}
/**
 * The step's chosen token and top-k equal the reference distribution's. Probabilities are
 * compared relatively (float32 logits: about 1e-4 in log-probability), so that the small
 * probabilities after a confident token still tell two contexts apart.
 */
function checkStep(step: TokenProb[] | AskStep, ref: number[], what: string, rel = 2e-3): void {
  const top = Array.isArray(step) ? step : step.top;
  const close = (p: number, q: number) => Math.abs(p - q) <= rel * q + 1e-15;
  const order = ref.map((p, id) => ({ p, id })).sort((a, b) => b.p - a.p);
  top.forEach((t, i) => {
    assert.ok(close(t.p, ref[t.id]), `${what}: p(${JSON.stringify(t.text)}) ${t.p} vs reference ${ref[t.id]}`);
    // Ranks are compared where the reference separates them by more than the tolerance.
    assert.ok(close(ref[t.id], order[i].p), `${what}: rank ${i} is ${t.id}, the reference's is ${order[i].id}`);
  });
  if (!Array.isArray(step)) {
    assert.ok(close(step.p, ref[step.id]), `${what}: chosen token probability`);
    assert.equal(step.id, order[0].id, `${what}: the chosen token is the reference's argmax`);
  }
}

test('first and second answer steps and KL equal PyTorch for the original and with layers 9, 10 skipped', async () => {
  let compared = 0;
  for (const s of logitsRef.samples) {
    const full = s.skips.find((k: { skip: number[] }) => k.skip.length === 0);
    const skip = s.skips.find((k: { skip: number[] }) => k.skip.join(',') === REMOVED.join(','));
    const r = await askJob({ original, pruned, image: path.join(data, s.image), question: s.question, maxNewTokens: 4, topK: 5 });
    assert.equal(r.loading, 'sequential');
    assert.equal(r.original.numLayers, 16);
    assert.equal(r.pruned.numLayers, 14);
    const po = probs(full.logits_f64);
    const pp = probs(skip.logits_f64);
    checkStep(r.original.steps[0], po, `${s.id} original step 1`);
    checkStep(r.pruned.steps[0], pp, `${s.id} pruned step 1`);
    // PyTorch's second step follows its own argmax, which must be the token chosen here.
    checkStep(r.original.steps[1], probs(full.next_logits_f32), `${s.id} original step 2`);
    checkStep(r.pruned.steps[1], probs(skip.next_logits_f32), `${s.id} pruned step 2`);
    const want = kl(po, pp);
    assert.ok(Math.abs(r.kl.first - want) <= 1e-4 + 1e-3 * want, `${s.id}: KL ${r.kl.first} vs ${want}`);
    assert.equal(r.kl.steps[0], r.kl.first);
    if (r.original.steps[0].id === r.pruned.steps[0].id) {
      const want2 = kl(probs(full.next_logits_f32), probs(skip.next_logits_f32));
      assert.ok(Math.abs(r.kl.steps[1] - want2) <= 1e-4 + 1e-3 * want2, `${s.id}: KL at step 2 ${r.kl.steps[1]} vs ${want2}`);
    }
    assert.ok(Math.abs(r.kl.mean - r.kl.steps.reduce((a, b) => a + b, 0) / r.kl.steps.length) < 1e-12);
    compared++;
  }
  assert.equal(compared, 4);
});

/** A plain transformers.js forward of prompt + tokens (no cache): the distribution at each answer step. */
async function stepProbs(m: TjsModel, item: { image: string; question: string }, tokens: number[]): Promise<number[][]> {
  const inputs = await m.inputs(item);
  const S = inputs.input_ids.dims[1];
  const ids = [...(inputs.input_ids.data as BigInt64Array), ...tokens.map(BigInt)];
  const input_ids = new m.t.Tensor('int64', BigInt64Array.from(ids), [1, ids.length]);
  const attention_mask = new m.t.Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
  // Other per-token inputs (Gemma 3's token_type_ids) grow with text tokens (0).
  const perToken = Object.fromEntries(
    Object.entries(inputs as Record<string, any>)
      .filter(([k, v]) => !['input_ids', 'attention_mask'].includes(k) && v?.dims?.length === 2 && v.dims[1] === S && v.type === 'int64')
      .map(([k, v]) => [k, new m.t.Tensor('int64', BigInt64Array.from([...(v.data as BigInt64Array), ...tokens.map(() => 0n)]), [1, ids.length])]),
  );
  const out = await m.model({ ...inputs, input_ids, attention_mask, ...perToken });
  const V = out.logits.dims[2];
  const data = out.logits.data as Float32Array;
  return Array.from({ length: tokens.length + 1 }, (_, i) => probs(data.subarray((S - 1 + i) * V, (S + i) * V)));
}

/** transformers.js' own greedy generation: the new tokens, end-of-sequence included. */
async function generated(m: TjsModel, item: { image: string; question: string }, maxNewTokens: number): Promise<number[]> {
  const inputs = await m.inputs(item);
  const out = await m.model.generate({ ...inputs, max_new_tokens: maxNewTokens, do_sample: false });
  return Array.from(out.data as BigInt64Array, Number).slice(inputs.input_ids.dims[1]);
}

/**
 * Asks `items` of both packages and checks every answer against transformers.js: the tokens
 * equal its own generation, every step's top-k its plain forward, and the pruned model along
 * the original's answer (and the KL there) its plain forward of the pruned package on the
 * original's tokens. Returns how many answers differed.
 */
async function againstTransformersJs(orig: string, prun: string, items: { id: string; image?: string; question: string }[], maxNewTokens: number): Promise<number> {
  const tjs = { original: await loadWithTransformersJs(orig), pruned: await loadWithTransformersJs(prun) };
  let diverged = 0;
  try {
    for (const item of items) {
      const q = { image: item.image!, question: item.question };
      const r: AskResult = await askJob({ original: orig, pruned: prun, ...q, maxNewTokens, topK: 4 });
      for (const side of ['original', 'pruned'] as const) {
        const a = r[side];
        const ids = a.steps.map((s) => s.id);
        const want = await generated(tjs[side], q, maxNewTokens);
        assert.deepEqual(ids, want.slice(0, ids.length), `${item.id} ${side}: the same tokens as transformers.js`);
        assert.equal(a.stop, ids.length < maxNewTokens ? 'eos' : 'limit');
        if (a.stop === 'eos') assert.ok(a.steps.at(-1)!.eos && !a.steps.slice(0, -1).some((s) => s.eos));
        const ref = await stepProbs(tjs[side], q, ids.filter((_, i) => !a.steps[i].eos));
        a.steps.forEach((s, i) => checkStep(s, ref[i], `${item.id} ${side} step ${i + 1}`));
      }
      const answer = r.original.steps.filter((s) => !s.eos).map((s) => s.id);
      const along = await stepProbs(tjs.pruned, q, answer);
      const own = await stepProbs(tjs.original, q, answer);
      assert.equal(r.kl.steps.length, r.original.steps.length);
      r.prunedAlongOriginal.forEach((top, i) => checkStep(top, along[i], `${item.id} pruned along the original, step ${i + 1}`));
      r.kl.steps.forEach((x, i) => {
        const want = kl(own[i], along[i]);
        assert.ok(Math.abs(x - want) <= 2e-4 + 2e-3 * want, `${item.id} KL at step ${i + 1}: ${x} vs ${want}`);
      });
      if (r.pruned.text !== r.original.text) diverged++;
    }
  } finally {
    await tjs.original.dispose();
    await tjs.pruned.dispose();
  }
  return diverged;
}

test('answers equal transformers.js generation; every step, and the pruned model along the original answer, equal a plain forward', async () => {
  const byId = new Map(loadEval(path.join(data, 'eval.jsonl')).map((i) => [i.id, i]));
  // mcq-008: the pruned model answers otherwise (d instead of c), so it reads the original's answer in a second pass.
  const items = ['mcq-008', 'count-000'].map((id) => byId.get(id)!);
  assert.equal(await againstTransformersJs(original, pruned, items, 6), 1, 'one item where the answers differ (the second pass is exercised)');
});

test('other families (Gemma 3, Qwen2-VL M-RoPE) answer through their own class, as transformers.js does', async () => {
  const item = { id: 'eval_0258', image: path.join(data, 'images/eval_0258.png'), question: 'What colour is the square?' };
  let diverged = 0;
  for (const family of ['tiny-gemma3', 'tiny-qwen2vl']) {
    const orig = path.join(repo, 'models', family);
    const prun = path.join(tmp, `${family}-pruned`);
    await pruneJob({ model: orig, out: prun, options: { layers: [1], scp: false } });
    diverged += await againstTransformersJs(orig, prun, [item], 4);
  }
  // Gemma 3 without layer 1 answers "yellow" where the original says "blue".
  assert.ok(diverged >= 1, 'a family where the answers differ');
});

test('bad inputs give one-line errors before any model is loaded', async () => {
  const image = path.join(data, 'images/eval_0000.png');
  const cases: [Parameters<typeof askJob>[0], RegExp][] = [
    [{ original, pruned: path.join(tmp, 'missing'), image, question: 'q' }, /^pruned model .*missing: no such file or folder$/],
    [{ original, pruned, image: path.join(repo, 'README.md'), question: 'q' }, /^cannot read image .*README\.md: /],
    [{ original, pruned, image: path.join(tmp, 'nope.png'), question: 'q' }, /^image .*nope\.png: no such file$/],
    [{ original, pruned, image: data, question: 'q' }, /is a folder, not an image file$/],
    [{ original, pruned, image, question: '   ' }, /^the question is empty$/],
    [{ pruned: path.join(tmp, 'tiny-llava-pruned'), image, question: 'q' }, /has no short-lvlm-report\.json naming its original/],
    [{ original, pruned, image, question: 'q', maxNewTokens: 0 }, /^maxNewTokens: must be an integer in \[1, 256\], got "0"$/],
    [{ original: path.join(repo, 'data'), pruned, image, question: 'q' }, /^original model .*data: /],
  ];
  for (const [args, re] of cases) {
    await assert.rejects(askJob(args), (e: Error) => {
      assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
      assert.match(e.message, re);
      return true;
    });
  }
});

test('the CLI twin: usage errors exit 2, job errors exit 1, each one line on stderr; --json answers', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(repo, 'dist', 'cli.js'), 'ask', ...args], { encoding: 'utf8' });
  const image = path.join(data, 'images/eval_0000.png');
  const cases: [string[], number, RegExp][] = [
    [['--image', image, '--question', 'q'], 2, /^short-lvlm: ask needs --pruned <model>, --image <file> and --question "\.\.\." \(see short-lvlm ask --help\)$/],
    [[pruned, '--pruned', pruned, '--image', image, '--question', 'q'], 2, /ask takes no model argument, only options; unexpected/],
    [['--original', original, '--pruned', pruned, '--image', image, '--question', 'q', '--top-k', '0'], 2, /^short-lvlm: --top-k: must be an integer in \[1, 20\], got "0"$/],
    [['--original', original, '--pruned', pruned, '--image', path.join(repo, 'README.md'), '--question', 'q'], 1, /^short-lvlm: cannot read image .*README\.md: /],
    [['--original', original, '--pruned', path.join(tmp, 'gone'), '--image', image, '--question', 'q'], 1, /^short-lvlm: pruned model .*gone: no such file or folder$/],
  ];
  for (const [args, code, re] of cases) {
    const r = cli(...args, '--quiet');
    assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stdout, '');
  }
  const ok = cli('--original', original, '--pruned', pruned, '--image', image, '--question', 'Is there a green circle in the image?', '--json', '--quiet', '--top-k', '3');
  assert.equal(ok.status, 0, ok.stderr);
  const r = JSON.parse(ok.stdout) as AskResult;
  assert.equal(r.original.steps[0].top.length, 3);
  assert.equal(r.original.text, 'no', 'the reference answer of pope-000 (PyTorch: "no")');
  const help = cli('--help');
  assert.match(help.stdout, /^usage: .* ask \[options\]/);
  assert.match(help.stdout, /--original <model>/);
});

test('a cancel at any check rejects the job and nothing of it runs afterwards', async () => {
  const args = { original, pruned, image: path.join(data, 'images/eval_0000.png'), question: 'Is there a green circle in the image?' };
  let checks = 0;
  await askJob(args, { checkCancelled: () => void checks++ });
  assert.ok(checks >= 5, `the job checks for a cancel while it loads and generates (${checks} checks)`);
  const late: number[] = [];
  for (let at = 1; at <= checks; at++) {
    let n = 0;
    let stopped = false;
    late.push(0);
    const hooks = {
      checkCancelled: () => {
        if (stopped) late[at - 1]++;
        if (++n === at) {
          stopped = true;
          throw new Error('cancelled');
        }
      },
      onProgress: () => void (stopped && late[at - 1]++),
    };
    await assert.rejects(askJob(args, hooks), /^Error: cancelled$/);
  }
  // Another job runs to its end: none of the cancelled ones made progress or a check meanwhile.
  await askJob({ ...args, maxNewTokens: 2 });
  assert.deepEqual(late, late.map(() => 0), 'a cancelled job went on');
});

test('cancel through the engine process: answered as cancelled, the engine then serves the next job', async () => {
  const worker = fork(path.join(repo, 'dist', 'engineWorker.js'), [], { execArgv: [], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const events: { type: string; id?: number; cancelled?: boolean; stage?: string; result?: AskResult }[] = [];
  worker.on('message', (m: (typeof events)[number]) => events.push(m));
  const waitFor = async (what: string, cond: () => boolean) => {
    const t0 = Date.now();
    while (!cond()) {
      if (worker.exitCode !== null) throw new Error(`engine exited while waiting for ${what}`);
      if (Date.now() - t0 > 180000) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    const args = { original, pruned, image: path.join(data, 'images/eval_0000.png'), question: 'Is there a green circle in the image?' };
    worker.send({ type: 'ask', id: 1, ...args });
    // The cancel goes out while the original model loads: the job stops at its next check.
    await waitFor('loading to start', () => events.some((e) => e.id === 1 && e.type === 'progress'));
    worker.send({ type: 'cancel', id: 1 });
    await waitFor('the answer to job 1', () => events.some((e) => e.id === 1 && (e.type === 'error' || e.type === 'result')));
    const end = events.findIndex((e) => e.id === 1 && (e.type === 'error' || e.type === 'result'));
    assert.deepEqual({ type: events[end].type, cancelled: events[end].cancelled }, { type: 'error', cancelled: true });
    worker.send({ type: 'ask', id: 2, ...args, maxNewTokens: 2 });
    await waitFor('job 2', () => events.some((e) => e.id === 2 && (e.type === 'error' || e.type === 'result')));
    const two = events.find((e) => e.id === 2 && e.type === 'result');
    assert.ok(two?.result?.original.text, 'the next job answers');
    assert.ok(!events.slice(end + 1).some((e) => e.id === 1), 'nothing more from the cancelled job');
  } finally {
    worker.kill();
  }
});
