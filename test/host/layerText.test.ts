// The Layers view's row text (issue 15): ranks from 1 as in the panels, and the outcome and rank
// before the measurements, so a narrow side bar (a 1024 x 700 window) cuts numbers, not them.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { layerDescription, layerTooltip } from '../../src/host/layerText';
import type { LayerReport } from '../../src/protocol/report';

const layer = (over: Partial<LayerReport>): LayerReport => ({ index: 9, cosTis: 0.99234, cosAll: 0.99051, cosText: 0.9864, cosVisual: 0.992, rank: 0, candidate: true, status: 'pruned', keptVisualShare: 0.27, ...over });

test('Layers view rows: outcome and 1-based rank first, then the cosines; the tooltip says the same rank', () => {
  for (const [rank, shown] of [[0, 'rank 1'], [4, 'rank 5']] as const) {
    const l = layer({ rank });
    const d = layerDescription(l);
    assert.ok(d.startsWith(`pruned · ${shown} · `), d);
    assert.ok(d.indexOf('TIS cos 0.992') > d.indexOf(shown), d);
    assert.match(layerTooltip(l), new RegExp(`Candidate, ${shown} \\(1 = most redundant\\)`));
  }
  const outside = layer({ rank: null, candidate: false, status: 'retained' });
  assert.ok(layerDescription(outside).startsWith('retained · TIS cos'), layerDescription(outside));
  assert.ok(!/rank/.test(layerDescription(outside)));
});
