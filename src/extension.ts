// Wiring only: the engine client, the run manager, views, panels, the report editor and the
// commands. Behaviour lives in src/host/.

import * as vscode from 'vscode';
import { AskPanel } from './host/askPanel';
import { Commands, LAST_CALIB } from './host/commands';
import { EngineClient } from './host/engineClient';
import { Forms } from './host/forms';
import { LayersView } from './host/layersView';
import { LinkedSelection } from './host/linkedSelection';
import { log } from './host/log';
import { Panels } from './host/panels';
import { ReportEditorProvider } from './host/reportEditor';
import { RunManager } from './host/runManager';
import { RunsView } from './host/runsView';
import { logSettingChanges, pathSetting } from './host/settings';
import { JobStatusBar } from './host/statusBar';
import { Walkthrough } from './host/walkthrough';

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
  // Issue 15: one selected layer and one set of ticks across the panels and the Layers view.
  const linked = new LinkedSelection(layers, show);
  // Ask both models (issue 15): its images come from the report's calibration file, else these.
  const ask = new AskPanel(ctx, runs, () => pathSetting('calibrationData') ?? ctx.globalState.get<string>(LAST_CALIB));
  ctx.subscriptions.push(ask, ask.register());
  // The run forms and the sweep's chart (issue 15).
  const forms = new Forms(ctx, runs, commands, () => layers.current()?.root);
  ctx.subscriptions.push(out, engine, runs, layers, runsView, panels, linked, ReportEditorProvider.register(ctx, panels, show), logSettingChanges(out), ...commands.register());
  ctx.subscriptions.push(forms, ...forms.register());
  // Issue 15: the running job in the status bar, and the Getting Started walkthrough's commands.
  ctx.subscriptions.push(new JobStatusBar(runs), new Walkthrough(ctx, runs, (m) => layers.show(m)));
  const last = layers.lastReport();
  if (last) commands.showReportInLayers(last);
  out.info(`Short-LVLM activated (${ctx.extension.id} ${ctx.extension.packageJSON.version})`);
}

export function deactivate(): void {
  // Disposables (including the engine process) are released through ctx.subscriptions.
}
