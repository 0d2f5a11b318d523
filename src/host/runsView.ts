// "Runs" tree: the prune history kept in globalState (model, ratio, layers removed, output
// folder, time). Clicking a run opens its report.

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { RunManager, RunRecord } from './runManager';

function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export class RunsView implements vscode.TreeDataProvider<RunRecord>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<RunRecord | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly runs: RunManager) {
    this.subs.push(runs.onDidChangeRuns(() => this.emitter.fire(undefined)));
    this.subs.push(vscode.window.registerTreeDataProvider('shortLvlm.runs', this));
  }

  refresh(): void {
    this.emitter.fire(undefined);
  }

  getChildren(node?: RunRecord): RunRecord[] {
    return node ? [] : this.runs.history();
  }

  getTreeItem(r: RunRecord): vscode.TreeItem {
    const exists = fs.existsSync(r.out);
    const item = new vscode.TreeItem(`${path.basename(r.model)} → ${path.basename(r.out)}`);
    item.id = r.out + '|' + r.time;
    item.description = `${r.method}${compLabel(r)} · ratio ${r.ratio.toFixed(2)} · −[${r.removed.join(',')}] · ${ago(r.time)}`;
    item.tooltip = new vscode.MarkdownString(
      [
        `**${path.basename(r.out)}**${exists ? '' : ' (folder no longer exists)'}`,
        '',
        `- model: \`${r.model}\``,
        `- method: ${r.method}${compLabel(r)}, ratio ${r.ratio.toFixed(3)}`,
        `- removed layers: ${r.removed.join(', ')} (${r.numLayers} remain)`,
        `- output: \`${r.out}\``,
        `- finished: ${new Date(r.time).toLocaleString()} in ${r.seconds.toFixed(1)} s`,
      ].join('\n'),
    );
    item.iconPath = new vscode.ThemeIcon(exists ? 'history' : 'warning');
    item.contextValue = exists ? 'run' : 'run.missing';
    if (r.report) item.command = { command: 'shortLvlm.openReport', title: 'Open Report', arguments: [vscode.Uri.file(r.report)] };
    return item;
  }

  dispose(): void {
    this.emitter.dispose();
    for (const s of this.subs) s.dispose();
  }
}

function compLabel(r: RunRecord): string {
  const c = r.compensation ?? (r.scp ? 'scp' : 'none');
  return c === 'scp' ? '+SCP' : c === 'ls' ? '+LS' : '';
}
