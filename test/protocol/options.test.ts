// The protocol's option parsers on their own: exact integers only, ranges checked before they
// are expanded, bounds open or closed as declared, one OptionError naming the option.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { checkAgainstModel, DEFAULT_PRUNE_OPTIONS, OptionError, parseLayerList, parseNumberValue, parseRange } from '../../src/protocol/options';

const refuses = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => e instanceof OptionError && re.test(e.message), String(re));

test('layer lists: sorted, without repeats, ranges inclusive; no index beyond any model, checked before expanding', () => {
  assert.deepEqual(parseLayerList('--layers', '5, 3,10-12,3'), [3, 5, 10, 11, 12]);
  assert.deepEqual(parseLayerList('--layers', '0'), [0]);
  refuses(() => parseLayerList('--layers', '3-1'), /^--layers: "3-1" is an empty range \(write 1-3\)$/);
  refuses(() => parseLayerList('--layers', '-1'), /is not a layer index or range/);
  refuses(() => parseLayerList('--layers', '1.5'), /is not a layer index or range/);
  refuses(() => parseLayerList('--layers', ' , '), /needs at least one layer index/);
  // 0-1e15 would be a billion-entry array; the bound is checked on the range's ends.
  refuses(() => parseLayerList('--layers', '0-1000000000000000'), /100000000000\.\.\. is not a layer index \(0 to 99999\)/);
  refuses(() => parseLayerList('--layers', '99999999999999999999'), /not a layer index/);
  assert.equal(parseLayerList('--layers', '0-99999').length, 100000);
});

test('ranges and numbers: bounds as declared (open, closed), exact integers', () => {
  assert.deepEqual(parseRange('c', ' 8 - 15 '), [8, 15]);
  refuses(() => parseRange('c', '15-8'), /empty range/);
  const share = { kind: 'number' as const, min: 0, max: 1, maxExclusive: true };
  assert.equal(parseNumberValue('--holdout', share, '0'), 0);
  refuses(() => parseNumberValue('--holdout', share, '1'), /^--holdout: must be a number in \[0, 1\), got "1"$/);
  const ratio = { kind: 'number' as const, min: 0, max: 0.5, minExclusive: true };
  refuses(() => parseNumberValue('--ratio', ratio, '0'), /in \(0, 0\.5\]/);
  assert.equal(parseNumberValue('--ratio', ratio, '0.5'), 0.5);
  refuses(() => parseNumberValue('--ratio', ratio, 'Infinity'), /must be/);
  const count = { kind: 'integer' as const, min: 1 };
  refuses(() => parseNumberValue('--rank', count, '1e3'), /must be a positive integer, got "1e3"/);
  refuses(() => parseNumberValue('--rank', count, '9007199254740993'), /must be a positive integer/);
  assert.equal(parseNumberValue('--rank', count, '64'), 64);
});

test('model checks: layers, candidate range and ratio against L', () => {
  const o = { ...DEFAULT_PRUNE_OPTIONS };
  assert.doesNotThrow(() => checkAgainstModel(o, 16)); // 5 of the last 8
  refuses(() => checkAgainstModel({ ...o, ratio: 0.5, candidates: [12, 15] }, 16), /^ratio: 0\.5 removes 8 of 16 layers but the candidate range 12-15 holds 4/);
  refuses(() => checkAgainstModel({ ...o, candidates: [10, 16] }, 16), /^candidates: 10-16 is outside the model's layers 0-15/);
  refuses(() => checkAgainstModel({ ...o, layers: [15, 16] }, 16), /^layers: layer 16 does not exist/);
  refuses(() => checkAgainstModel({ ...o, layers: [0, 1] }, 2), /^layers: cannot remove all 2 layers/);
  assert.doesNotThrow(() => checkAgainstModel({ ...o, layers: [0] }, 2));
});
