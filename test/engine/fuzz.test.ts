// Issue 13: the mutation fuzzer (test/support/fuzzRunner.ts) over valid packages, in its own
// process. Every case must end with a clear one-line error or a valid pruned package, with
// nothing left behind and the source unchanged; the process itself must not die. Prints how
// many cases ran and how each kind ended.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CaseResult } from '../support/fuzzRunner';

const CASES = 160;
const SEED = 13;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test(`mutation fuzzer: ${CASES} mutated packages, each a clear error or a valid output`, () => {
  const runner = path.join(__dirname, '..', 'support', 'fuzzRunner.js');
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [runner, tmp, String(SEED), String(CASES)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (Date.now() - t0) / 1000;
  const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const results: CaseResult[] = lines.filter((l) => 'outcome' in l);
  const started = lines.filter((l) => 'start' in l);
  const dead = started.length > results.length ? started[started.length - 1] : undefined;
  assert.equal(r.signal, null, `the fuzz process was killed by ${r.signal} in case ${JSON.stringify(dead)}: ${r.stderr.slice(-2000)}`);
  assert.equal(r.status, 0, `the fuzz process died (exit ${r.status}) in case ${JSON.stringify(dead)}: ${r.stderr.slice(-2000)}`);

  // How each kind of mutation ended, for the log.
  const table = new Map<string, Record<string, number>>();
  for (const c of results) {
    const row = table.get(c.kind) ?? table.set(c.kind, { error: 0, ok: 0, violation: 0 }).get(c.kind)!;
    row[c.outcome]++;
  }
  console.log(`fuzz: ${results.length} cases in ${seconds.toFixed(1)} s (seed ${SEED})`);
  console.log('  kind             clear error  ok and valid  violation');
  for (const [kind, row] of table) console.log(`  ${kind.padEnd(16)} ${String(row.error).padStart(11)}  ${String(row.ok).padStart(12)}  ${String(row.violation).padStart(9)}`);
  const violations = results.filter((c) => c.outcome === 'violation');
  for (const v of violations.slice(0, 10)) console.log(`  violation in case ${v.id} (${v.kind}): ${v.detail}`);
  assert.equal(results.length, CASES);
  assert.deepEqual(violations, []);
  for (const [kind, row] of table) assert.ok(row.error > 0, `${kind}: no case was refused; the mutation is not reaching the reader`);
});
