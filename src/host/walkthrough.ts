// The Getting Started walkthrough's commands: open the bundled demo model, prune it, open the
// report. The demo model is copied out of the extension first (into the workspace when one is
// open, else into the extension's storage): pruned packages are written beside the model, and
// the extension's own folder is replaced on every update.

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { log } from './log';
import type { RunManager } from './runManager';
import { stackOf } from './stackMap';

export const WALKTHROUGH_COMMANDS = {
  openDemo: 'shortLvlm.walkthrough.openDemo',
  pruneDemo: 'shortLvlm.walkthrough.pruneDemo',
  openDemoReport: 'shortLvlm.walkthrough.openDemoReport',
} as const;

/** Set once a prune of the demo model finished: the walkthrough's second step is then done. */
const DEMO_PRUNED_CONTEXT = 'shortLvlm.demoPruned';
const DEMO_FOLDER = 'short-lvlm-demo';

export class Walkthrough implements vscode.Disposable {
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly runs: RunManager,
    private readonly showInLayers: (model: { root: string; numLayers: number }) => void,
  ) {
    this.subs.push(
      vscode.commands.registerCommand(WALKTHROUGH_COMMANDS.openDemo, () => this.guard(() => this.openDemo())),
      vscode.commands.registerCommand(WALKTHROUGH_COMMANDS.pruneDemo, () => this.guard(() => this.pruneDemo())),
      vscode.commands.registerCommand(WALKTHROUGH_COMMANDS.openDemoReport, () => this.guard(() => this.openDemoReport())),
      runs.onDidChangeRuns((rec) => {
        if (rec && path.resolve(rec.model) === this.demoModel()) void vscode.commands.executeCommand('setContext', DEMO_PRUNED_CONTEXT, true);
      }),
    );
  }

  private async guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      log().error(`walkthrough: ${stackOf(e)}`);
      void vscode.window.showErrorMessage(`Short-LVLM: ${(e as Error).message}`);
    }
  }

  /** Where the demo copy lives: a folder of the first workspace folder, or the extension's storage. */
  private demoRoot(): string {
    const ws = vscode.workspace.workspaceFolders?.[0]?.uri;
    return ws?.scheme === 'file' ? path.join(ws.fsPath, DEMO_FOLDER) : path.join(this.ctx.globalStorageUri.fsPath, DEMO_FOLDER);
  }

  private demoModel(): string {
    return path.join(this.demoRoot(), 'models', 'tiny-llava');
  }

  /** Copies the bundled model and its calibration/evaluation data once (the reference dumps stay behind). */
  private ensureDemo(): string {
    const root = this.demoRoot();
    const model = this.demoModel();
    if (fs.existsSync(path.join(model, 'config.json'))) return model;
    const ext = this.ctx.extensionPath;
    // Written beside the target and renamed, so an interrupted copy is never taken for a demo.
    const tmp = `${root}.partial-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(path.join(tmp, 'models'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'data'), { recursive: true });
    fs.cpSync(path.join(ext, 'models', 'tiny-llava'), path.join(tmp, 'models', 'tiny-llava'), { recursive: true });
    fs.cpSync(path.join(ext, 'data', 'tiny-vqa'), path.join(tmp, 'data', 'tiny-vqa'), { recursive: true, filter: (src) => !src.split(path.sep).includes('reference') });
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(tmp, root);
    log().info(`walkthrough: copied the demo model to ${model}`);
    return model;
  }

  private async openDemo(): Promise<void> {
    const model = this.ensureDemo();
    const info = await this.runs.inspect(model);
    this.showInLayers({ root: info.root, numLayers: info.numLayers });
    // The walkthrough stays in the editor area; the side bar shows the model's layers.
    await vscode.commands.executeCommand('workbench.view.extension.shortLvlm');
    void vscode.window.showInformationMessage(`Short-LVLM: the demo model (${info.numLayers} decoder layers, ${info.family ?? 'LLaVA'}) is in ${model}; its layers are in the Layers view.`);
  }

  private async pruneDemo(): Promise<void> {
    const model = this.ensureDemo();
    await vscode.commands.executeCommand('shortLvlm.pruneFromExplorer', vscode.Uri.file(path.join(model, 'onnx', 'decoder_model_merged.onnx')));
  }

  private async openDemoReport(): Promise<void> {
    const demo = this.demoModel();
    const rec = this.runs.history().find((r) => path.resolve(r.model) === demo && r.report && fs.existsSync(r.report));
    if (!rec?.report) {
      const prune = 'Prune the Demo Model';
      const a = await vscode.window.showInformationMessage('Short-LVLM: the demo model has no report yet: prune it first.', prune);
      if (a) await this.pruneDemo();
      return;
    }
    await vscode.commands.executeCommand('shortLvlm.openReport', vscode.Uri.file(rec.report));
  }

  dispose(): void {
    for (const s of this.subs) s.dispose();
  }
}
