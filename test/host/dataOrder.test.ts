// The order of the data pickers (issue 15): a file whose run failed is not offered first again
// (until it is edited), and a copy inside a pruned package comes after the user's own files.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FailedData, orderChoices, prunedPackageOf } from '../../src/host/dataOrder';

/** An in-memory stand-in for VS Code's globalState. */
function memento() {
  const m = new Map<string, unknown>();
  return { get: <T>(k: string, d?: T) => (m.has(k) ? (m.get(k) as T) : d), update: async (k: string, v: unknown) => void m.set(k, v), keys: () => [...m.keys()] } as never;
}

test('failed files last, copies inside pruned packages after the user files', async () => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'data-order-'));
  const file = (rel: string) => {
    fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
    fs.writeFileSync(path.join(ws, rel), '[]');
    return path.join(ws, rel);
  };
  const copyByName = file('models/tiny-short-lvlm-svl-r0.3/eval.jsonl');
  const copyByReport = file('out/custom-name/data/eval.jsonl');
  file('out/custom-name/short-lvlm-report.json');
  const own = file('data/eval.jsonl');
  const bad = file('data/bad-eval.jsonl');
  const other = file('more/eval.jsonl');
  assert.equal(prunedPackageOf(copyByName), path.join(ws, 'models/tiny-short-lvlm-svl-r0.3'));
  assert.equal(prunedPackageOf(copyByReport), path.join(ws, 'out/custom-name'));
  assert.equal(prunedPackageOf(own), undefined);

  const failed = new FailedData(memento());
  await failed.record(bad, 'bad-eval.jsonl line 1: not JSON');
  const order = orderChoices(
    [
      { file: bad, why: 'last used' },
      { file: copyByName, why: 'workspace' },
      { file: own, why: 'workspace' },
      { file: copyByReport, why: 'workspace' },
      { file: other, why: 'workspace' },
    ],
    failed,
  );
  assert.deepEqual(order.map((c) => c.file), [own, other, copyByName, copyByReport, bad]);
  assert.match(order[4].why, /^last used, failed last run: bad-eval\.jsonl line 1/);
  assert.match(order[2].why, /copy inside pruned package tiny-short-lvlm-svl-r0\.3$/);

  // Edited since it failed: offered in its place again. A success forgets the failure.
  fs.writeFileSync(bad, '[ ]');
  fs.utimesSync(bad, new Date(), new Date(Date.now() + 5000));
  assert.equal(failed.failure(bad), undefined);
  await failed.record(bad, 'again');
  await failed.clear(bad);
  assert.equal(orderChoices([{ file: bad, why: 'last used' }, { file: own, why: 'workspace' }], failed)[0].file, bad);
  fs.rmSync(ws, { recursive: true, force: true });
});
