// Command handlers: the small multi-step input (ratio, calibration data), pruning from the
// explorer or the palette, a hand-made layer choice from the Layers view, benchmarks, and
// opening reports. Long work goes through the RunManager (engine process + notification).

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { describeError } from '../protocol/errorText';
import { isOutputName, outputTag, REPORT_FILE } from '../protocol/files';
import { PANEL_KINDS, PANEL_TITLES, PanelKind, REPORT_VIEW_TYPE } from '../protocol/messages';
import { DEFAULT_PRUNE_OPTIONS, RATIO_RANGE } from '../protocol/options';
import type { Progress } from '../protocol/engineApi';
import type { PruneOptions } from '../protocol/report';
import { FailedData, orderChoices } from './dataOrder';
import { LayersView } from './layersView';
import { log, showError } from './log';
import { Panels, readReport } from './panels';
import { revealFolder } from './reveal';
import { stackOf } from './stackMap';
import { InspectResult, RunManager, RunRecord } from './runManager';
import * as settings from './settings';
import { pruneChoices } from './pruneChoices';

const LAST_RATIO = 'shortLvlm.lastRatio';
export const LAST_CALIB = 'shortLvlm.lastCalibration';
export const LAST_EVAL = 'shortLvlm.lastEvaluation';
const BROWSE = '$(folder-opened) Browse...';

export class Commands {
  private readonly failedData: FailedData;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly runs: RunManager,
    private readonly layers: LayersView,
    private readonly panels: Panels,
  ) {
    this.failedData = new FailedData(ctx.globalState);
  }

  register(): vscode.Disposable[] {
    const c = (id: string, fn: (...a: any[]) => unknown) =>
      vscode.commands.registerCommand(id, async (...a: unknown[]) => {
        try {
          await fn.apply(this, a);
        } catch (e) {
          log().error(`${id}: ${stackOf(e)}`);
          void showError(`Short-LVLM: ${describeError(e)}`);
        }
      });
    return [
      c('shortLvlm.prune', this.prune),
      c('shortLvlm.pruneFromExplorer', this.prune),
      c('shortLvlm.pruneSelected', this.pruneSelected),
      c('shortLvlm.benchmark', this.benchmark),
      c('shortLvlm.openReport', this.openReport),
      c('shortLvlm.showPanel', this.showPanel),
      c('shortLvlm.cancelRun', this.cancelRun),
      c('shortLvlm.showLog', () => log().show()),
      c('shortLvlm.clearRuns', () => this.runs.clearHistory()),
      c('shortLvlm.removeRun', (r: RunRecord) => r && this.runs.removeRun(r.out)),
      c('shortLvlm.revealRun', (r: RunRecord) => r && revealFolder(r.out)),
      c('shortLvlm.clearLayerSelection', () => this.layers.setSelection([])),
    ];
  }

  // ------------------------------------------------------------------ prune

  /**
   * The engine runs one job at a time: say so now rather than queue an inspect behind a long
   * run (a job being cancelled is waited for; the notice closes when the running job ends).
   */
  private async refuseWhileBusy(): Promise<boolean> {
    return !(await this.runs.whenIdle());
  }

  private async prune(uri?: vscode.Uri): Promise<void> {
    if (await this.refuseWhileBusy()) return;
    const target = uri?.fsPath ?? (await this.pickModel());
    if (!target) return;
    const model = await this.inspect(target);
    if (!model) return;
    // Keep the measurements (and the hand-made selection) when the view already shows this model.
    if (this.layers.current()?.root !== model.root) this.layers.show({ root: model.root, numLayers: model.numLayers });

    const amount = await this.pickAmount(model.numLayers, whatIsPruned(target, model));
    if (amount === undefined) return;
    const base = settings.pruneOptionsFromSettings();
    const options: Partial<PruneOptions> = amount.minAgreement !== undefined ? { ...base, minAgreement: amount.minAgreement } : { ...base, ratio: amount.ratio };
    const calib = await this.pickData('calibration', model.root, LAST_CALIB, 'calibrationData', '**/*calib*.{json,jsonl}', 'data/tiny-vqa/calib.json');
    if (!calib) return;
    await this.ctx.globalState.update(LAST_RATIO, amount.ratio ?? `budget:${amount.minAgreement}`);
    await this.runPrune(target, model, calib, options);
  }

  private async pruneSelected(): Promise<void> {
    if (await this.refuseWhileBusy()) return;
    const m = this.layers.current();
    const layers = this.layers.selection();
    if (!m) return void vscode.window.showWarningMessage('Short-LVLM: no model in the Layers view yet. Prune a model or open a report first.');
    if (!layers.length) return void vscode.window.showWarningMessage('Short-LVLM: tick the layers to remove in the Layers view first.');
    if (layers.length >= m.numLayers) return void vscode.window.showWarningMessage('Short-LVLM: at least one layer must remain.');
    const base = settings.pruneOptionsFromSettings();
    let calib: string | undefined;
    let options: Partial<PruneOptions>;
    if (base.scp) {
      // Compensating a hand-made choice still needs features from calibration data.
      calib = await this.pickData('calibration', m.root, LAST_CALIB, 'calibrationData', '**/*calib*.{json,jsonl}', 'data/tiny-vqa/calib.json');
      if (!calib) return;
      options = { ...base, layers, method: 'manual', scp: true };
    } else {
      options = { layers, scp: false };
    }
    await this.runPrune(m.root, { root: m.root, numLayers: m.numLayers, decoder: '' }, calib, options);
  }

  /** Prunes and offers the report; the run form passes its output folder and follows the progress. */
  async runPrune(target: string, model: InspectResult, calib: string | undefined, options: Partial<PruneOptions>, form: { out?: string; onProgress?: (p: Progress) => void } = {}): Promise<RunRecord | undefined> {
    const out = form.out ?? uniqueFolder(settings.outputFolder(model.root, outputTag({ ...DEFAULT_PRUNE_OPTIONS, ...options })));
    const rec = await this.runs.prune({ model: target, modelRoot: model.root, calib, out, options, run: settings.runOptionsFromSettings(), onProgress: form.onProgress });
    // Only a calibration file that worked becomes "last used"; one that failed is offered last.
    if (calib) await this.rememberData(calib, LAST_CALIB, !!rec);
    if (!rec) return undefined;
    if (rec.report) this.showReportInLayers(rec.report);
    const msg = `Short-LVLM: pruned ${path.basename(model.root)} — removed layers ${rec.removed.join(', ')} (${rec.numLayers} of ${model.numLayers} remain) → ${path.basename(rec.out)}`;
    const actions = rec.report ? ['Open Report', 'Reveal in Explorer'] : ['Reveal in Explorer'];
    void vscode.window.showInformationMessage(msg, ...actions).then((a) => {
      if (a === 'Open Report' && rec.report) void this.openReport(vscode.Uri.file(rec.report));
      if (a === 'Reveal in Explorer') void revealFolder(rec.out);
    });
    return rec;
  }

  private async inspect(target: string): Promise<InspectResult | undefined> {
    try {
      return await this.runs.inspect(target);
    } catch (e) {
      log().error(`inspect ${target}: ${(e as Error).message}`);
      void showError(`Short-LVLM: ${path.basename(target)} is not a model package the engine can prune: ${describeError(e)}`);
      return undefined;
    }
  }

  private async pickModel(): Promise<string | undefined> {
    const found = await vscode.workspace.findFiles('**/*.onnx', '**/node_modules/**', 200);
    const roots = new Map<string, string>();
    for (const f of found) {
      const root = modelRootOf(f.fsPath);
      if (root && !roots.has(root) && !isOutputName(path.basename(root))) roots.set(root, f.fsPath);
    }
    const items: vscode.QuickPickItem[] = [...roots.keys()].map((r) => ({ label: path.basename(r), description: vscode.workspace.asRelativePath(r), detail: r }));
    items.push({ label: BROWSE });
    const pick = await vscode.window.showQuickPick(items, { title: 'Short-LVLM: model to prune', placeHolder: 'A model package folder (config.json + onnx/) or one of its .onnx files', ignoreFocusOut: true });
    if (!pick) return undefined;
    if (pick.label !== BROWSE) return pick.detail;
    const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: true, filters: { 'ONNX model': ['onnx'] }, title: 'Model package folder or .onnx file' });
    return uris?.[0]?.fsPath;
  }

  /** A fixed ratio or a quality budget (minimum held-out agreement), side by side; `what` names the decoder that will be pruned. */
  private async pickAmount(numLayers: number, what: { title: string; note?: string } = { title: '' }): Promise<{ ratio?: number; minAgreement?: number } | undefined> {
    const stored = this.ctx.globalState.get<number | string>(LAST_RATIO);
    const last = typeof stored === 'number' ? { ratio: stored } : typeof stored === 'string' && stored.startsWith('budget:') ? { minAgreement: Number(stored.slice(7)) } : undefined;
    const dflt = settings.config().get<number>('ratio', DEFAULT_PRUNE_OPTIONS.ratio);
    type Item = vscode.QuickPickItem & { ratio?: number; minAgreement?: number };
    const items: Item[] = pruneChoices(numLayers, { ...settings.pruneOptionsFromSettings(), ratio: dflt }, last);
    items.push({ label: '$(edit) Custom...' });
    const pick = await vscode.window.showQuickPick(items, {
      title: `Short-LVLM: pruning ratio or quality budget (1/2)${what.title ? ` — ${what.title}` : ''}`,
      placeHolder: what.note ?? 'Fraction of decoder layers to remove, or a quality budget',
      ignoreFocusOut: true,
    });
    if (!pick) return undefined;
    if (pick.ratio !== undefined) return { ratio: pick.ratio };
    if (pick.minAgreement !== undefined) return { minAgreement: pick.minAgreement };
    const { min, max } = RATIO_RANGE;
    const s = await vscode.window.showInputBox({
      title: 'Short-LVLM: pruning ratio',
      prompt: `Fraction of the ${numLayers} decoder layers to remove, in (${min}, ${max}]`,
      value: String(last?.ratio ?? dflt),
      validateInput: (v) => (Number(v) > min && Number(v) <= max ? undefined : `a number in (${min}, ${max}]`),
      ignoreFocusOut: true,
    });
    return s === undefined ? undefined : { ratio: Number(s) };
  }

  /**
   * Calibration or evaluation data: the setting, the last choice, the bundled demo data when
   * the model is the bundled one, matching files in the workspace, or a file dialog.
   */
  private async pickData(kind: 'calibration' | 'evaluation', modelRoot: string, lastKey: string, settingKey: string, glob: string, bundledRel: string): Promise<string | undefined> {
    const choices: { file: string; why: string }[] = [];
    const seen = new Set<string>();
    const add = (file: string | undefined, why: string) => {
      if (!file || seen.has(path.resolve(file)) || !fs.existsSync(file)) return;
      seen.add(path.resolve(file));
      choices.push({ file, why });
    };
    const fromSetting = settings.pathSetting(settingKey);
    if (fromSetting && !fs.existsSync(fromSetting)) settings.warnMissingSetting(settingKey, fromSetting);
    add(fromSetting, 'setting');
    add(this.ctx.globalState.get<string>(lastKey), 'last used');
    if (this.isBundledModel(modelRoot)) add(path.join(this.ctx.extensionPath, bundledRel), 'bundled demo data');
    for (const f of await vscode.workspace.findFiles(glob, '**/node_modules/**', 20)) add(f.fsPath, 'workspace');
    const items: (vscode.QuickPickItem & { file?: string })[] = orderChoices(choices, this.failedData).map(({ file, why }) => ({
      label: path.basename(file),
      description: `${why} · ${vscode.workspace.asRelativePath(file)}`,
      file,
    }));
    items.push({ label: BROWSE });
    const step = kind === 'calibration' ? '(2/2)' : '';
    const pick = await vscode.window.showQuickPick(items, {
      title: `Short-LVLM: ${kind} data ${step}`.trim(),
      placeHolder: kind === 'calibration' ? 'LLaVA conversation JSON/JSONL with images ({id, image, conversations})' : 'JSONL of {id, image, question, answer}',
      ignoreFocusOut: true,
    });
    if (!pick) return undefined;
    if (pick.file) return pick.file;
    const uris = await vscode.window.showOpenDialog({ canSelectFiles: true, filters: { 'JSON / JSONL': ['json', 'jsonl'] }, title: `${kind} data` });
    return uris?.[0]?.fsPath;
  }

  /** After a run: a data file that worked becomes "last used"; one that failed is remembered as such. */
  private async rememberData(file: string, lastKey: string, ok: boolean): Promise<void> {
    // A cancelled run says nothing against its data: it is remembered like a finished one.
    if (ok || this.runs.lastOutcome?.status === 'cancelled') {
      await this.ctx.globalState.update(lastKey, file);
      await this.failedData.clear(file);
    } else if (this.runs.lastOutcome?.status === 'failed' && !this.runs.lastOutcome.crashed) {
      await this.failedData.record(file, this.runs.lastOutcome.message ?? 'failed');
      if (this.ctx.globalState.get<string>(lastKey) === file) await this.ctx.globalState.update(lastKey, undefined);
    }
  }

  private isBundledModel(root: string): boolean {
    return isBundledModel(this.ctx.extensionPath, root);
  }

  private cancelRun(): void {
    if (!this.runs.cancelCurrent()) void vscode.window.showInformationMessage('Short-LVLM: nothing is running.');
  }

  // ------------------------------------------------------------------ benchmark

  /** `reportPath`: the report whose panel asked (its original and pruned models are preselected). */
  private async benchmark(reportPath?: string): Promise<void> {
    if (await this.refuseWhileBusy()) return;
    const hist = this.runs.history().filter((r) => fs.existsSync(r.out));
    const originals = [...new Set(hist.map((r) => r.model))].filter((m) => fs.existsSync(m));
    const current = this.layers.current()?.root;
    if (current && !originals.includes(current) && fs.existsSync(current)) originals.unshift(current);
    const asked = typeof reportPath === 'string' && fs.existsSync(reportPath) ? readReport(reportPath) : undefined;
    if (asked && fs.existsSync(asked.model.root) && !originals.includes(asked.model.root)) originals.unshift(asked.model.root);
    if (!originals.length) return void vscode.window.showWarningMessage('Short-LVLM: no models to benchmark yet. Prune a model first.');
    type Item = vscode.QuickPickItem & { model: string; original: boolean };
    let latest: RunRecord | undefined = hist[0];
    if (asked) {
      const out = path.dirname(path.resolve(reportPath!));
      latest = hist.find((r) => path.resolve(r.out) === out);
      if (!latest) {
        latest = { model: asked.model.root, out, report: reportPath, method: asked.options.method, ratio: asked.options.ratio, scp: asked.options.scp, removed: asked.removed, numLayers: asked.output.numLayers, time: asked.createdAt, seconds: 0 };
        hist.unshift(latest);
      }
    }
    const items: Item[] = [
      ...originals.map((m) => ({ label: path.basename(m), description: 'original', detail: m, model: m, original: true, picked: latest ? latest.model === m : m === originals[0] })),
      ...hist.map((r) => ({
        label: path.basename(r.out),
        description: `pruned: ${r.method}${(r.compensation ?? (r.scp ? 'scp' : 'none')) === 'scp' ? '+SCP' : r.compensation === 'ls' ? '+LS' : ''}, −[${r.removed.join(',')}]`,
        detail: r.out,
        model: r.out,
        original: false,
        picked: r === latest,
      })),
    ];
    const picks = await vscode.window.showQuickPick(items, { canPickMany: true, title: 'Short-LVLM: models to benchmark', placeHolder: 'The first original picked is the reference for relative accuracy, agreement and KL', ignoreFocusOut: true });
    if (!picks?.length) return;
    const models = [...picks.filter((p) => p.original), ...picks.filter((p) => !p.original)].map((p) => p.model);
    const ref = picks.find((p) => p.original)?.model ?? hist.find((r) => r.out === models[0])?.model ?? models[0];
    const evalFile = await this.pickData('evaluation', ref, LAST_EVAL, 'evaluationData', '**/*eval*.jsonl', 'data/tiny-vqa/eval.jsonl');
    if (!evalFile) return;
    const res = await this.runs.bench(models, evalFile, settings.benchSamples(), settings.runOptionsFromSettings());
    await this.rememberData(evalFile, LAST_EVAL, !!res);
    if (!res) return;
    for (const r of res.benchmark.rows) log().info(`bench ${r.label}: accuracy ${(r.accuracy * 100).toFixed(1)} %, ${r.samplesPerSecond.toFixed(2)} samples/s`);
    for (const f of res.reports) this.panels.refresh(f);
    if (res.reports.length) {
      this.panels.open('benchmark', res.reports[0]);
    } else {
      void vscode.window.showInformationMessage(
        `Short-LVLM: benchmark done (${res.benchmark.rows.map((r) => `${r.label} ${(r.accuracy * 100).toFixed(1)} %`).join(', ')}); no pruned report to store it in.`,
      );
    }
  }

  // ------------------------------------------------------------------ reports and panels

  private async openReport(uri?: vscode.Uri): Promise<void> {
    let file = uri?.fsPath;
    if (file && fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, REPORT_FILE);
    if (!file) file = await this.pickReport();
    if (!file) return;
    if (!fs.existsSync(file)) throw new Error(`no report at ${file}`);
    this.showReportInLayers(file);
    await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(file), REPORT_VIEW_TYPE);
  }

  private async pickReport(): Promise<string | undefined> {
    const items: vscode.QuickPickItem[] = this.runs
      .history()
      .filter((r) => r.report && fs.existsSync(r.report))
      .map((r) => ({ label: path.basename(r.out), description: `${path.basename(r.model)} · −[${r.removed.join(',')}] · ${new Date(r.time).toLocaleString()}`, detail: r.report }));
    for (const f of await vscode.workspace.findFiles(`**/${REPORT_FILE}`, '**/node_modules/**', 50)) {
      if (!items.some((i) => i.detail === f.fsPath)) items.push({ label: path.basename(path.dirname(f.fsPath)), description: 'workspace', detail: f.fsPath });
    }
    items.push({ label: BROWSE });
    const pick = await vscode.window.showQuickPick(items, { title: 'Short-LVLM: open report', ignoreFocusOut: true });
    if (!pick) return undefined;
    if (pick.label !== BROWSE) return pick.detail;
    const uris = await vscode.window.showOpenDialog({ canSelectFiles: true, filters: { 'Short-LVLM report': ['json'] } });
    return uris?.[0]?.fsPath;
  }

  private async showPanel(kind?: PanelKind, reportPath?: string): Promise<void> {
    reportPath ??= this.layers.current()?.reportPath ?? this.runs.history().find((r) => r.report && fs.existsSync(r.report))?.report ?? (await this.pickReport());
    if (!reportPath) return;
    if (!kind) {
      const pick = await vscode.window.showQuickPick(
        PANEL_KINDS.map((k) => ({ label: PANEL_TITLES[k], panel: k })),
        // Kept open when focus moves (a notification, a webview taking focus on a busy machine).
        { title: `Short-LVLM: panel for ${path.basename(path.dirname(reportPath))}`, ignoreFocusOut: true },
      );
      kind = pick?.panel;
    }
    if (kind) this.panels.open(kind, reportPath);
  }

  /** Points the Layers view at a report's original model, with its measurements. */
  showReportInLayers(reportPath: string): void {
    try {
      const report = readReport(reportPath);
      const cur = this.layers.current();
      if (cur?.reportPath === reportPath) return;
      this.layers.show({ root: report.model.root, numLayers: report.model.numLayers, report, reportPath });
    } catch (e) {
      log().warn(`cannot show ${reportPath} in the Layers view: ${(e as Error).message}`);
    }
  }
}

/**
 * How the prompt names what will be pruned: the package, its decoder file and family; and, when
 * the file the user chose is another part of the package (a vision encoder, embeddings), that
 * its decoder is pruned instead.
 */
export function whatIsPruned(target: string, model: InspectResult): { title: string; note?: string } {
  const family = model.family ? ` (${model.family})` : '';
  const title = `${path.basename(model.root)}: decoder ${model.decoder}${family}`;
  const chosen = path.resolve(target);
  const decoders = [model.decoder, ...(model.decoderVariants ?? [])].map((d) => path.resolve(model.root, d));
  if (!chosen.endsWith('.onnx') || decoders.includes(chosen)) return { title };
  return { title, note: `${path.basename(target)} is not the decoder: layers are removed from ${model.decoder}${family}` };
}

/** Whether `root` is the bundled demo model (or a copy of it), whose demo data the extension ships. */
export function isBundledModel(extensionPath: string, root: string): boolean {
  try {
    const bundled = fs.readFileSync(path.join(extensionPath, 'models', 'tiny-llava', 'config.json'), 'utf8');
    return path.resolve(root) === path.join(extensionPath, 'models', 'tiny-llava') || fs.readFileSync(path.join(root, 'config.json'), 'utf8') === bundled;
  } catch {
    return false;
  }
}

/** The model package folder holding an .onnx file (transformers.js keeps them in onnx/). */
export function modelRootOf(file: string): string | undefined {
  let dir = path.dirname(file);
  for (let i = 0; i < 3; i++) {
    if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** `dir`, or `dir-2`, `dir-3`, ... : a new run never overwrites an earlier one. */
export function uniqueFolder(dir: string): string {
  if (!fs.existsSync(dir)) return dir;
  for (let i = 2; ; i++) if (!fs.existsSync(`${dir}-${i}`)) return `${dir}-${i}`;
}
