// The host's plain-text pieces for issue 10, without VS Code: the Layers view flags a layer whose
// measured skip cost crosses the costly thresholds (and says nothing about skip cost when none
// was measured), and the prune quick pick offers quality budgets next to the ratios, naming the
// method that will run plainly (the paper's or not).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { layerDescription, layerTooltip } from '../../src/host/layerText';
import { pruneChoices } from '../../src/host/pruneChoices';
import type { LayerReport } from '../../src/protocol/report';

const base: LayerReport = { index: 14, cosTis: 0.98, cosAll: 0.97, cosText: 0.96, cosVisual: 0.99, rank: 1, candidate: true, status: 'retained', keptVisualShare: 0.4 };

test('costly layers are flagged in the Layers view from their measured skip cost', () => {
  assert.ok(!layerDescription(base).includes('costly') && !layerDescription(base).includes('skip'), 'no measurement, no flag');
  const cheap = { ...base, skipCost: { kl: 0.01, agreement: 1 } };
  assert.ok(!layerDescription(cheap).includes('costly'));
  assert.match(layerDescription(cheap), /skip KL 0\.010 · agree 100 %/);
  // Either bound makes a layer costly: agreement below 95 %, or KL above 0.1 nats.
  for (const skipCost of [{ kl: 0.02, agreement: 0.94 }, { kl: 0.11, agreement: 1 }]) {
    const l = { ...base, skipCost };
    assert.match(layerDescription(l), /^⚠ costly/);
    assert.match(layerTooltip(l), /costly: skipping it alone changes the answers; keep it/);
  }
  assert.ok(!layerDescription({ ...base, skipCost: { kl: 0.1, agreement: 0.95 } }).includes('costly'), 'the bounds themselves are not costly');
});

test('the quick pick offers quality budgets next to the ratios and names the method plainly', () => {
  const greedy = pruneChoices(16, { method: 'greedy', ratio: 0.3 });
  const ratios = greedy.filter((c) => c.ratio !== undefined);
  const budgets = greedy.filter((c) => c.minAgreement !== undefined);
  assert.deepEqual(budgets.map((b) => b.minAgreement), [0.95, 0.9]);
  assert.equal(ratios.find((c) => c.ratio === 0.3)!.description, 'remove 5 of 16 layers (default)');
  for (const c of greedy) assert.match(c.detail!, /not the paper's TIS-cosine choice/);
  for (const c of greedy) assert.match(c.detail!, /no compensation/);
  for (const c of pruneChoices(16, { method: 'greedy', compensation: 'ls' })) assert.match(c.detail!, /least-squares compensation/);
  const svl = pruneChoices(16, { method: 'svl', ratio: 0.3 }, { minAgreement: 0.9 });
  for (const c of svl) assert.match(c.detail!, /Short-LVLM as published \(TIS cosine\), SCP compensation/);
  assert.match(svl.find((c) => c.minAgreement === 0.9)!.description, /\(last used\)/);
  assert.match(pruneChoices(16, { method: 'svl', scp: false })[0].detail!, /no compensation/);
});
