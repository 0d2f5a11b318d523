// "Layers" tree: the decoder layers of the selected or last-run model, with the redundancy the
// report measured (cosine on TIS-kept tokens and on all tokens), the measured skip cost (costly
// layers get a warning icon), the selection rank and the outcome. Checkboxes hold a hand-made choice for "Prune Selected Layers".

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { isCostly } from '../protocol/report';
import type { LayerReport, Report } from '../protocol/report';
import { layerDescription, layerTooltip } from './layerText';

export interface LayersModel {
  /** The original model package the layers belong to. */
  root: string;
  numLayers: number;
  report?: Report;
  reportPath?: string;
}

type Node = { index: number; layer?: LayerReport };

export const LAST_REPORT = 'shortLvlm.layersReport';

const STATUS_ICON: Record<LayerReport['status'], [string, string]> = {
  pruned: ['trash', 'charts.red'],
  partner: ['link', 'charts.blue'],
  retained: ['circle-large-outline', 'foreground'],
};

export class LayersView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private model: LayersModel | undefined;
  private selected = new Set<number>();
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  readonly view: vscode.TreeView<Node>;

  constructor(private readonly state?: vscode.Memento) {
    this.view = vscode.window.createTreeView('shortLvlm.layers', { treeDataProvider: this, showCollapseAll: false, manageCheckboxStateManually: true });
    this.view.onDidChangeCheckboxState((e) => {
      for (const [node, state] of e.items) {
        if (state === vscode.TreeItemCheckboxState.Checked) this.selected.add(node.index);
        else this.selected.delete(node.index);
      }
      this.updateMessage();
    });
    this.updateMessage();
  }

  /** The report last shown here (workspaceState), if it still exists. */
  lastReport(): string | undefined {
    const p = this.state?.get<string>(LAST_REPORT);
    return p && fs.existsSync(p) ? p : undefined;
  }

  current(): LayersModel | undefined {
    return this.model;
  }

  selection(): number[] {
    return [...this.selected].sort((a, b) => a - b);
  }

  show(model: LayersModel): void {
    this.model = model;
    // Start from what the report removed: the natural base for a hand-made variation.
    this.selected = new Set(model.report?.removed ?? []);
    // Remembered so the view comes back with the same report after a reload.
    if (model.reportPath) void this.state?.update(LAST_REPORT, model.reportPath);
    void vscode.commands.executeCommand('setContext', 'shortLvlm.layersModel', true);
    this.emitter.fire(undefined);
    this.updateMessage();
  }

  setSelection(layers: number[]): void {
    this.selected = new Set(layers.filter((i) => this.model && i >= 0 && i < this.model.numLayers));
    this.emitter.fire(undefined);
    this.updateMessage();
  }

  getChildren(node?: Node): Node[] {
    if (node || !this.model) return [];
    const byIndex = new Map((this.model.report?.layers ?? []).map((l) => [l.index, l]));
    return Array.from({ length: this.model.numLayers }, (_, index) => ({ index, layer: byIndex.get(index) }));
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const item = new vscode.TreeItem(`Layer ${node.index}`);
    item.id = `${this.model?.root}#${node.index}`;
    item.checkboxState = this.selected.has(node.index) ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked;
    const l = node.layer;
    if (l) {
      item.description = layerDescription(l);
      const [icon, color] = isCostly(l) && l.status !== 'pruned' ? ['warning', 'charts.orange'] : STATUS_ICON[l.status];
      item.iconPath = new vscode.ThemeIcon(icon, new vscode.ThemeColor(color));
      const md = new vscode.MarkdownString(layerTooltip(l));
      item.tooltip = md;
      item.contextValue = `layer.${l.status}${isCostly(l) ? '.costly' : ''}`;
    } else {
      item.description = this.model?.report ? '' : 'not measured yet';
      item.iconPath = new vscode.ThemeIcon('layers');
      item.contextValue = 'layer';
    }
    return item;
  }

  private updateMessage(): void {
    if (!this.model) {
      this.view.message = 'Prune a model or open a Short-LVLM report to see its decoder layers.';
      return;
    }
    const n = this.selected.size;
    const src = this.model.report ? `report of ${path.basename(path.dirname(this.model.reportPath ?? ''))}` : 'not yet measured';
    this.view.message = `${path.basename(this.model.root)}: ${this.model.numLayers} layers (${src}) — ${n} selected to remove`;
  }

  dispose(): void {
    this.emitter.dispose();
    this.view.dispose();
  }
}
