// The "Ask both models" panel: one webview (dist/askWebview.js) over an original model and a
// pruned one. It offers the calibration images (from the report's calibration file, else
// the calibration setting or the last one used) and images in the workspace, sends the
// question to the engine process (the `ask` job), relays progress, and cancels on request.
// The target is kept in the panel's state and in workspaceState so the panel comes back
// after a window reload.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { describeError } from '../protocol/errorText';
import { REPORT_FILE } from '../protocol/files';
import { ASK_PAGE, ASK_TITLE, ASK_VIEW_TYPE, AskImage, AskTarget, AskToHost, HostToAsk } from '../protocol/messages';
import type { Report } from '../protocol/report';
import { EngineError } from './engineClient';
import { log, showError } from './log';
import { calibrationImages } from './askImages';
import { imageDataUri } from './panels';
import type { RunManager, RunRecord } from './runManager';
import { runOptionsFromSettings } from './settings';
import { webviewHtml } from './webviewHtml';

const STATE_KEY = 'shortLvlm.askTarget';
const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.gif'];
export class AskPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private target: AskTarget | undefined;
  private calibFile: string | undefined;
  private chosen: AskImage[] = [];
  private job: number | undefined;
  private readonly subs: vscode.Disposable[] = [];
  private panelSubs: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly runs: RunManager,
    /** The calibration file to offer images from when the report names none. */
    private readonly fallbackCalibration: () => string | undefined,
  ) {
    this.subs.push(
      vscode.window.registerWebviewPanelSerializer(ASK_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: unknown) => {
          const saved = (state as { target?: AskTarget } | undefined)?.target ?? ctx.workspaceState.get<AskTarget>(STATE_KEY);
          if (!saved || !fs.existsSync(saved.pruned) || !fs.existsSync(saved.original)) {
            panel.webview.html = `<!DOCTYPE html><html><body><p>The models this panel compared are no longer available.</p></body></html>`;
            return;
          }
          this.adopt(panel);
          this.setTarget(saved, this.reportOf(saved.pruned)?.calibration?.file);
        },
      }),
    );
  }

  /** The report in a pruned package folder, if it has one. */
  private reportOf(pruned: string): Report | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(pruned, REPORT_FILE), 'utf8')) as Report;
    } catch {
      return undefined;
    }
  }

  /** Opens (or retargets) the panel on a pruned package; the original is the report's unless given. */
  open(pruned: string, original?: string, numbers: Partial<AskTarget> = {}): void {
    const report = this.reportOf(pruned);
    const orig = original ?? report?.model.root;
    if (!orig) throw new Error(`${path.basename(pruned)} has no report naming its original model`);
    if (!fs.existsSync(pruned)) throw new Error(`the pruned model ${pruned} no longer exists`);
    if (!fs.existsSync(orig)) throw new Error(`the original model ${orig} no longer exists`);
    const target: AskTarget = {
      original: orig,
      pruned,
      originalLayers: numbers.originalLayers ?? report?.model.numLayers,
      prunedLayers: numbers.prunedLayers ?? report?.output?.numLayers,
      removed: numbers.removed ?? report?.removed,
    };
    if (!this.panel) {
      this.adopt(
        vscode.window.createWebviewPanel(ASK_VIEW_TYPE, ASK_TITLE, vscode.ViewColumn.Active, {
          enableScripts: true,
          retainContextWhenHidden: true,
          localResourceRoots: [vscode.Uri.joinPath(this.ctx.extensionUri, 'dist'), vscode.Uri.joinPath(this.ctx.extensionUri, 'media')],
        }),
      );
    } else this.panel.reveal();
    this.setTarget(target, report?.calibration?.file);
  }

  private setTarget(target: AskTarget, calibFile: string | undefined): void {
    this.target = target;
    this.calibFile = calibFile && fs.existsSync(calibFile) ? calibFile : this.fallbackCalibration();
    void this.ctx.workspaceState.update(STATE_KEY, target);
    this.panel!.title = `${ASK_TITLE}: ${path.basename(target.pruned)}`;
    void this.sendSetup();
  }

  private post(m: HostToAsk): void {
    void this.panel?.webview.postMessage(m);
  }

  private async images(): Promise<AskImage[]> {
    const out: AskImage[] = [...this.chosen];
    if (this.calibFile) {
      try {
        out.push(...calibrationImages(this.calibFile));
      } catch (e) {
        log().warn(`ask: cannot read calibration images from ${this.calibFile}: ${(e as Error).message}`);
      }
    }
    const seen = new Set(out.map((i) => i.path));
    const found = await vscode.workspace.findFiles(`**/*{${IMAGE_EXTS.join(',')}}`, '{**/node_modules/**,**/.tools/**,**/out/**}', 50);
    for (const f of found) {
      if (seen.has(f.fsPath)) continue;
      seen.add(f.fsPath);
      out.push({ path: f.fsPath, label: vscode.workspace.asRelativePath(f), source: 'workspace' });
    }
    return out;
  }

  private async sendSetup(): Promise<void> {
    if (!this.target) return;
    this.post({ type: 'askSetup', target: this.target, images: await this.images() });
  }

  private adopt(panel: vscode.WebviewPanel): void {
    this.panel?.dispose();
    this.panel = panel;
    const dist = vscode.Uri.joinPath(this.ctx.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.ctx.extensionUri, 'media');
    panel.webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    panel.iconPath = vscode.Uri.joinPath(this.ctx.extensionUri, 'media', 'activitybar.svg');
    const cssInDist = fs.existsSync(path.join(this.ctx.extensionPath, 'dist', 'webview.css'));
    panel.webview.html = webviewHtml({
      cspSource: panel.webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
      scriptUri: panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'askWebview.js')).toString(),
      styleUri: panel.webview.asWebviewUri(cssInDist ? vscode.Uri.joinPath(dist, 'webview.css') : vscode.Uri.joinPath(media, 'webview.css')).toString(),
      panel: ASK_PAGE,
      title: ASK_TITLE,
    });
    this.panelSubs.push(
      panel.webview.onDidReceiveMessage((m: AskToHost) => void this.onMessage(m)),
      panel.onDidDispose(() => {
        if (this.job !== undefined) this.runs.engine.cancel(this.job);
        for (const d of this.panelSubs.splice(0)) d.dispose();
        if (this.panel === panel) this.panel = undefined;
      }),
    );
  }

  private async onMessage(m: AskToHost): Promise<void> {
    switch (m.type) {
      case 'ready':
        return this.sendSetup();
      case 'askPreview':
        try {
          this.post({ type: 'askImage', path: m.path, dataUri: imageDataUri(m.path) });
        } catch (e) {
          log().warn(`ask: cannot read image ${m.path}: ${(e as Error).message}`);
        }
        return;
      case 'askBrowse': {
        const uris = await vscode.window.showOpenDialog({ canSelectFiles: true, filters: { Images: IMAGE_EXTS.map((e) => e.slice(1)) }, title: 'Image to ask about' });
        const file = uris?.[0]?.fsPath;
        if (!file) return;
        this.chosen = [{ path: file, label: path.basename(file), source: 'chosen' }, ...this.chosen.filter((i) => i.path !== file)];
        return this.sendSetup();
      }
      case 'askCancel':
        if (this.job !== undefined) this.runs.engine.cancel(this.job);
        return;
      case 'ask':
        return this.ask(m);
    }
  }

  private async ask(m: Extract<AskToHost, { type: 'ask' }>): Promise<void> {
    const t = this.target;
    if (!t) return;
    if (this.runs.busy || this.job !== undefined) {
      this.post({ type: 'askFailed', message: 'The engine is busy with another job: ask again when it has finished (or cancel it).' });
      return;
    }
    log().info(`ask ${t.original} vs ${t.pruned}: ${JSON.stringify(m.question)} about ${m.image}`);
    const handle = this.runs.engine.request(
      { type: 'ask', original: t.original, pruned: t.pruned, image: m.image, question: m.question, maxNewTokens: m.maxNewTokens, topK: m.topK, ...runOptionsFromSettings() },
      { onProgress: (p) => this.post({ type: 'askProgress', stage: p.stage, done: p.done, total: p.total }) },
    );
    this.job = handle.id;
    try {
      const result = await handle.result;
      log().info(`ask: original "${result.original.text}", pruned "${result.pruned.text}", KL first token ${result.kl.first.toFixed(4)}`);
      this.post({ type: 'askAnswer', result });
    } catch (e) {
      const err = e as EngineError;
      if (!err.details?.cancelled) log().error(`ask failed: ${err.message}`);
      this.post({ type: 'askFailed', message: describeError(err), cancelled: err.details?.cancelled });
    } finally {
      this.job = undefined;
    }
  }

  /**
   * `shortLvlm.askBoth`: from a run in the Runs view (its record), from a report (its pruned
   * package folder), or from the palette (a pick among the runs whose output still exists).
   */
  register(): vscode.Disposable {
    return vscode.commands.registerCommand('shortLvlm.askBoth', async (arg?: RunRecord | vscode.Uri) => {
      try {
        let rec = arg && !(arg instanceof vscode.Uri) ? arg : undefined;
        const folder = arg instanceof vscode.Uri ? arg.fsPath : undefined;
        if (!rec && !folder) {
          const runs = this.runs.history().filter((r) => fs.existsSync(r.out) && fs.existsSync(r.model));
          if (!runs.length) return void vscode.window.showWarningMessage('Short-LVLM: no pruned model to ask yet. Prune a model first.');
          const pick = await vscode.window.showQuickPick(
            runs.map((r) => ({ label: path.basename(r.out), description: `${path.basename(r.model)} · −[${r.removed.join(',')}]`, run: r })),
            { title: `Short-LVLM: ${ASK_TITLE.toLowerCase()} — which pruned model?`, ignoreFocusOut: true },
          );
          rec = pick?.run;
          if (!rec) return;
        }
        if (rec) this.open(rec.out, rec.model, { prunedLayers: rec.numLayers, originalLayers: rec.numLayers + rec.removed.length, removed: rec.removed });
        else this.open(folder!);
      } catch (e) {
        log().error(`shortLvlm.askBoth: ${(e as Error).message}`);
        void showError(`Short-LVLM: ${describeError(e)}`);
      }
    });
  }

  dispose(): void {
    this.panel?.dispose();
    for (const s of this.subs) s.dispose();
  }
}
