// The run forms (prune, sweep) and the sweep's trade-off chart: webviews of dist/forms.js.
// The host prefills a form from the settings, has the engine check each state of its fields
// (checkRun, in the engine process: nothing heavy here), checks once more when Run is pressed,
// runs the job through the RunManager (notification, cancel, history) and forwards its progress
// to the form. A finished sweep is kept in the extension's storage and drawn in a chart panel.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { describeError } from '../protocol/errorText';
import type { CheckRunArgs, Progress, RunCheck, SweepOutcome } from '../protocol/engineApi';
import { outputTag } from '../protocol/files';
import { FORM_TITLES, FormFields, FormKind, FormRequest, FormToHost, formViewType, HostToForm } from '../protocol/messages';
import { DEFAULT_PRUNE_OPTIONS } from '../protocol/options';
import type { PruneOptions } from '../protocol/report';
import { Commands, isBundledModel, LAST_CALIB, LAST_EVAL, modelRootOf, uniqueFolder } from './commands';
import { checkArgsOf, sweepArgsOf, withAbsolutePaths } from './formRequests';
import { log, showError } from './log';
import type { RunManager } from './runManager';
import * as settings from './settings';
import { webviewHtml } from './webviewHtml';

/** Methods a new sweep form ticks (the engine lists every method it can try). */
const DEFAULT_SWEEP_METHODS = 'svl,cosine';

interface FormView {
  panel: vscode.WebviewPanel;
  post(m: HostToForm): void;
}

export class Forms implements vscode.Disposable {
  private readonly open_ = new Map<FormKind, FormView>();
  private cancelRequested = false;
  /** The model last checked in a form, offered by the next form when nothing else names one. */
  private lastModel: string | undefined;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly runs: RunManager,
    private readonly commands: Commands,
    /** The model the Layers view shows, offered when a form opens without one. */
    private readonly currentModel: () => string | undefined,
  ) {}

  register(): vscode.Disposable[] {
    const c = (id: string, fn: (uri?: vscode.Uri) => void) =>
      vscode.commands.registerCommand(id, (uri?: unknown) => {
        try {
          fn(uri instanceof vscode.Uri ? uri : undefined);
        } catch (e) {
          log().error(`${id}: ${(e as Error).stack ?? e}`);
          void showError(`Short-LVLM: ${describeError(e)}`);
        }
      });
    return [c('shortLvlm.pruneForm', (uri) => this.open('pruneForm', uri?.fsPath)), c('shortLvlm.sweepForm', (uri) => this.open('sweepForm', uri?.fsPath))];
  }

  /** Opens (or reveals) a form; a model given (the explorer's selection) replaces the one shown. */
  open(kind: 'pruneForm' | 'sweepForm', model?: string): void {
    const existing = this.open_.get(kind);
    if (existing) {
      existing.panel.reveal();
      if (model) existing.post({ type: 'field', field: 'model', value: model });
      return;
    }
    const fields = this.defaults(kind, model ?? this.currentModel() ?? this.runs.history()[0]?.model ?? this.lastModel ?? '');
    const view = this.createView(kind, FORM_TITLES[kind], (m, v) => this.onMessage(kind, m, v, fields));
    this.open_.set(kind, view);
    view.panel.onDidDispose(() => this.open_.delete(kind));
  }

  /** The form's first fields: the settings' values, the data last used, the bundled demo data for the bundled model. */
  private defaults(kind: FormKind, model: string): FormFields {
    const root = model ? guessRoot(model) : '';
    const bundled = root !== '' && isBundledModel(this.ctx.extensionPath, root);
    const data = (setting: string, last: string, demo: string) =>
      [settings.pathSetting(setting), this.ctx.globalState.get<string>(last), bundled ? path.join(this.ctx.extensionPath, demo) : undefined].find((f) => f && fs.existsSync(f)) ?? '';
    const calib = data('calibrationData', LAST_CALIB, 'data/tiny-vqa/calib.json');
    if (kind === 'sweepForm') {
      return { model, calib, eval: data('evaluationData', LAST_EVAL, 'data/tiny-vqa/eval.jsonl'), ratios: '0.1,0.2,0.3,0.4', methods: DEFAULT_SWEEP_METHODS, samples: '', evalSamples: String(settings.benchSamples() ?? ''), randomSeeds: '3', exhaustiveLimit: '100' };
    }
    const o: Record<string, unknown> = { ...DEFAULT_PRUNE_OPTIONS, ...settings.pruneOptionsFromSettings() };
    const compensation = settings.config().get<string>('compensation');
    return {
      model,
      calib,
      out: '',
      target: 'ratio',
      targetValue: String(o.ratio),
      method: String(o.method),
      scp: String(o.scp !== false),
      ...(compensation !== undefined ? { compensation } : {}),
      samples: o.samples ? String(o.samples) : '',
    };
  }

  private createView(kind: FormKind, title: string, onMessage: (m: FormToHost, v: FormView) => void): FormView {
    const dist = vscode.Uri.joinPath(this.ctx.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.ctx.extensionUri, 'media');
    const panel = vscode.window.createWebviewPanel(formViewType(kind), title, vscode.ViewColumn.Active, { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [dist, media] });
    panel.iconPath = vscode.Uri.joinPath(media, 'activitybar.svg');
    const css = fs.existsSync(path.join(this.ctx.extensionPath, 'dist', 'webview.css')) ? vscode.Uri.joinPath(dist, 'webview.css') : vscode.Uri.joinPath(media, 'webview.css');
    panel.webview.html = webviewHtml({
      cspSource: panel.webview.cspSource,
      nonce: crypto.randomBytes(16).toString('base64'),
      scriptUri: panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'forms.js')).toString(),
      styleUri: panel.webview.asWebviewUri(css).toString(),
      panel: kind,
      title,
    });
    const view: FormView = { panel, post: (m) => void panel.webview.postMessage(m) };
    panel.webview.onDidReceiveMessage((m: FormToHost) => {
      try {
        onMessage(m, view);
      } catch (e) {
        log().error(`${kind}: ${(e as Error).stack ?? e}`);
      }
    });
    return view;
  }

  // ------------------------------------------------------------------ a form's messages

  private checking = new Map<FormKind, { busy: boolean; next?: { seq: number; request: FormRequest } }>();

  private onMessage(kind: FormKind, m: FormToHost, view: FormView, fields: FormFields): void {
    switch (m.type) {
      case 'ready':
        view.post({ type: 'init', kind, fields });
        return;
      case 'check':
        void this.check(kind, m.seq, withAbsolutePaths(m.request, workspaceFolder()), view);
        return;
      case 'browse':
        void this.browse(m.field, m.folder, m.current, view);
        return;
      case 'run':
        void this.run(withAbsolutePaths(m.request, workspaceFolder()), view);
        return;
      case 'cancel':
        this.cancelRequested = true;
        this.runs.cancelCurrent();
        return;
    }
  }

  /** One engine check at a time per form; while one runs only the latest request waits. */
  private async check(kind: FormKind, seq: number, request: FormRequest, view: FormView): Promise<void> {
    const state = this.checking.get(kind) ?? { busy: false };
    this.checking.set(kind, state);
    state.next = { seq, request };
    if (request.model) this.lastModel = request.model;
    if (state.busy) return;
    state.busy = true;
    try {
      while (state.next) {
        const job = state.next;
        state.next = undefined;
        const check = await this.engineCheck(job.request);
        view.post({ type: 'check', seq: job.seq, check });
      }
    } finally {
      state.busy = false;
    }
  }

  private async engineCheck(request: FormRequest, fresh = false): Promise<RunCheck & { args: CheckRunArgs }> {
    let args: CheckRunArgs = { kind: request.kind, model: request.model };
    try {
      const base = settings.pruneOptionsFromSettings();
      args = { ...checkArgsOf(request, base, request.kind === 'prune' && request.model ? this.defaultOut(request, base) : undefined), fresh };
      return { ...(await this.runs.engine.request({ type: 'checkRun', ...args }).result), args };
    } catch (e) {
      // A setting that does not parse, or the engine process failing: say so where Run is.
      return { problems: [{ field: 'settings', message: describeError(e) }], sweepMethods: [], args };
    }
  }

  /** The folder a prune writes when the form leaves it empty: the shortLvlm.outputFolder setting's. */
  private defaultOut(r: FormRequest, base: Partial<PruneOptions>): string {
    return uniqueFolder(settings.outputFolder(guessRoot(r.model), outputTag({ ...DEFAULT_PRUNE_OPTIONS, ...base, ...r.options })));
  }

  private async browse(field: string, folder: boolean, current: string, view: FormView): Promise<void> {
    const filters: Record<string, Record<string, string[]>> = { model: { 'ONNX model': ['onnx'] }, calib: { 'JSON / JSONL': ['json', 'jsonl'] }, eval: { JSONL: ['jsonl', 'json'] } };
    const uris = await vscode.window.showOpenDialog({
      canSelectFiles: !folder,
      // A model is a folder or one of its .onnx files.
      canSelectFolders: folder || field === 'model',
      filters: folder ? undefined : filters[field],
      defaultUri: current && fs.existsSync(current) ? vscode.Uri.file(current) : undefined,
      title: field,
    });
    if (uris?.[0]) view.post({ type: 'field', field, value: uris[0].fsPath });
  }

  // ------------------------------------------------------------------ running

  private async run(request: FormRequest, view: FormView): Promise<void> {
    const end = (outcome: 'done' | 'failed' | 'cancelled', message: string) => view.post({ type: 'runEnded', outcome, message });
    if (this.runs.busy) return end('failed', 'Short-LVLM is already running a job; wait for it or cancel it.');
    // The files may have changed since the form's last check: the run starts only on a clean one.
    const check = await this.engineCheck(request, true);
    if (check.problems.length || !check.model) return end('failed', `Not started: ${check.problems.map((p) => p.message).join('; ') || 'the model could not be read'}`);
    this.cancelRequested = false;
    const onProgress = (progress: Progress) => view.post({ type: 'progress', progress });
    const stopped = () => end(this.cancelRequested ? 'cancelled' : 'failed', this.cancelRequested ? 'Cancelled.' : 'Stopped; the notification and the Short-LVLM log say why.');
    if (request.kind === 'sweep') {
      await this.ctx.globalState.update(LAST_CALIB, request.calib);
      if (request.eval) await this.ctx.globalState.update(LAST_EVAL, request.eval);
      const result = await this.runs.sweep(sweepArgsOf(request, settings.runOptionsFromSettings()), onProgress);
      if (!result) return stopped();
      const file = this.saveSweep(result);
      this.showSweep(result);
      return end('done', `Done in ${result.seconds.toFixed(1)} s: ${result.rows.length} layer choices scored; the trade-off chart is open (saved in ${file}).`);
    }
    const base = settings.pruneOptionsFromSettings();
    await this.ctx.globalState.update(LAST_CALIB, request.calib);
    const m = check.model;
    const rec = await this.commands.runPrune(request.model, { root: m.root, numLayers: m.numLayers, decoder: m.decoder }, request.calib, { ...base, ...request.options }, { out: check.args.out, onProgress });
    if (!rec) return stopped();
    end('done', `Pruned: removed layers ${rec.removed.join(', ')} (${rec.numLayers} of ${m.numLayers} remain) → ${rec.out}`);
  }

  /** A sweep's result, kept where the extension keeps its data (the CLI writes the same JSON with --out). */
  private saveSweep(r: SweepOutcome): string {
    const dir = path.join(this.ctx.globalStorageUri.fsPath, 'sweeps');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${path.basename(r.model)}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}.json`);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(r, null, 1) + '\n');
    fs.renameSync(`${file}.tmp`, file);
    log().info(`sweep of ${r.model} saved in ${file}`);
    return file;
  }

  showSweep(result: SweepOutcome): void {
    const title = `${FORM_TITLES.sweepChart}: ${path.basename(result.model)}`;
    let view = this.open_.get('sweepChart');
    if (view) {
      view.panel.title = title;
      view.panel.reveal();
      view.post({ type: 'sweepResult', result });
      return;
    }
    view = this.createView('sweepChart', title, (m, v) => {
      if (m.type === 'ready') v.post({ type: 'sweepResult', result: latest });
    });
    let latest = result;
    const post = view.post;
    view.post = (m) => {
      if (m.type === 'sweepResult') latest = m.result;
      post(m);
    };
    this.open_.set('sweepChart', view);
    view.panel.onDidDispose(() => this.open_.delete('sweepChart'));
  }

  dispose(): void {
    for (const v of this.open_.values()) v.panel.dispose();
  }
}

const workspaceFolder = () => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;

/** The package folder of a model path as the default output folder is named after it. */
function guessRoot(model: string): string {
  try {
    if (fs.statSync(model).isDirectory()) return model;
  } catch {
    return path.dirname(model);
  }
  return modelRootOf(model) ?? path.dirname(model);
}
