// Linked selection between the panels and the Layers view: one selected layer and one set of
// ticked layers (the hand-made choice), whichever side changed them. The host only relays:
// panels post selectLayer / tickLayers, the Layers view fires its events, and everyone else
// receives the change (never the sender, so nothing echoes back).

import type * as vscode from 'vscode';
import type { LinkedSelection as Linked } from '../protocol/messages';
import type { Report } from '../protocol/report';
import type { LayersView } from './layersView';
import { broadcast, LinkHost, setLinkHost } from './panels';

export class LinkedSelection implements LinkHost, vscode.Disposable {
  private layer: number | undefined;
  private readonly subs: vscode.Disposable[];

  constructor(
    private readonly layers: LayersView,
    /** Points the Layers view at a report's model (no-op when it already shows it). */
    private readonly showReport: (reportPath: string) => void,
  ) {
    setLinkHost(this);
    this.subs = [
      layers.onDidSelectLayer((l) => {
        if (l === this.layer) return; // the echo of a selection a panel made
        this.layer = l;
        broadcast({ type: 'selectLayer', layer: l });
      }),
      layers.onDidChangeTicks((ticks) => broadcast({ type: 'tickLayers', layers: ticks })),
    ];
  }

  linked(reportPath: string, m: Linked, from: vscode.Webview): void {
    this.showReport(reportPath);
    broadcast(m, from);
    if (m.type === 'selectLayer') {
      this.layer = m.layer;
      this.layers.revealLayer(m.layer);
    } else this.layers.setSelection(m.layers);
  }

  current(report: Report): Linked[] {
    const cur = this.layers.current();
    if (!cur || cur.root !== report.model.root) return [];
    return [{ type: 'tickLayers', layers: this.layers.selection() }, ...(this.layer !== undefined ? [{ type: 'selectLayer' as const, layer: this.layer }] : [])];
  }

  dispose(): void {
    setLinkHost(undefined);
    for (const s of this.subs) s.dispose();
  }
}
