// Wiring only: the engine client, the run manager, views, panels, the report editor and the
// commands. Behaviour lives in src/host/.

import * as vscode from 'vscode';
import { Commands } from './host/commands';
import { EngineClient } from './host/engineClient';
import { Forms } from './host/forms';
import { LayersView } from './host/layersView';
import { log } from './host/log';
import { Panels } from './host/panels';
import { ReportEditorProvider } from './host/reportEditor';
import { RunManager } from './host/runManager';
import { RunsView } from './host/runsView';
import { logSettingChanges } from './host/settings';

export function activate(ctx: vscode.ExtensionContext): void {
  const out = log();
  const engine = new EngineClient(vscode.Uri.joinPath(ctx.extensionUri, 'dist', 'engineWorker.js').fsPath, out);
  const runs = new RunManager(engine, ctx.globalState);
  const layers = new LayersView(ctx.workspaceState);
  const runsView = new RunsView(runs);
  let commands: Commands | undefined;
  const panels = new Panels(ctx, (reportPath, selected) => {
    commands?.showReportInLayers(reportPath);
    layers.setSelection(selected);
    // The panel's "Prune selected layers…" button: the same flow as the Layers view's title button.
    void vscode.commands.executeCommand('shortLvlm.pruneSelected');
  });
  commands = new Commands(ctx, runs, layers, panels);
  const show = commands.showReportInLayers.bind(commands);
  // The run forms and the sweep's chart (issue 15).
  const forms = new Forms(ctx, runs, commands, () => layers.current()?.root);
  ctx.subscriptions.push(out, engine, runs, layers, runsView, panels, ReportEditorProvider.register(ctx, panels, show), logSettingChanges(out), ...commands.register());
  ctx.subscriptions.push(forms, ...forms.register());
  const last = layers.lastReport();
  if (last) commands.showReportInLayers(last);
  out.info(`Short-LVLM activated (${ctx.extension.id} ${ctx.extension.packageJSON.version})`);
}

export function deactivate(): void {
  // Disposables (including the engine process) are released through ctx.subscriptions.
}
