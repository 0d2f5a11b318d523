// The held-out split of the calibration set: exact size, disjoint slices in file order, the same
// split every run, and no aliasing with files that cycle through task families (the bundled
// calibration set cycles pope, mcq, count, attr: a stride of 4 would hold out one family only).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { splitHoldout } from '../../src/engine/method/outputAware';

test('the held-out slice has round(f N) samples, both slices keep file order, the split is fixed', () => {
  for (const [N, f] of [[16, 0.25], [128, 0.25], [320, 0.25], [10, 0.3], [7, 0.5]] as const) {
    const items = Array.from({ length: N }, (_, i) => i);
    const { select, heldOut, heldOutIndices } = splitHoldout(items, f);
    assert.equal(heldOut.length, Math.round(f * N));
    assert.deepEqual([...select, ...heldOut].sort((a, b) => a - b), items);
    assert.deepEqual(heldOut, heldOutIndices);
    for (const s of [select, heldOut]) assert.deepEqual(s, [...s].sort((a, b) => a - b));
    assert.deepEqual(splitHoldout(items, f), { select, heldOut, heldOutIndices });
  }
  assert.deepEqual(splitHoldout([1, 2, 3], 0).heldOut, []);
  assert.throws(() => splitHoldout([1, 2], 0.1), /empty slice/);
  assert.throws(() => splitHoldout([1, 2], 1), /holdout must be in \[0, 1\)/);
});

test('a file cycling through four families gets every family into the held-out slice', () => {
  const fams = ['pope', 'mcq', 'count', 'attr'];
  for (const N of [16, 128, 320]) {
    const { heldOut } = splitHoldout(Array.from({ length: N }, (_, i) => fams[i % 4]), 0.25);
    const per = fams.map((f) => heldOut.filter((x) => x === f).length);
    if (N === 16) assert.ok(per.filter((c) => c > 0).length >= 3, `N=16: ${per}`);
    else for (const c of per) assert.ok(c >= heldOut.length / 8 && c <= (heldOut.length * 3) / 8, `N=${N}: ${per}`);
  }
});
