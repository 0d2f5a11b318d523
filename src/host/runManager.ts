// Runs engine jobs with a cancellable progress notification, one at a time, and keeps the
// run history. Cancelling sends {type:'cancel'}; a job that does not stop in time gets its
// process killed by the EngineClient, and then the engine never reached its own cleanup, so
// the `.NAME.partial-*` folder it was writing is removed here.

import type { RuntimeSettings } from './settings';
import { attachBenchmark } from '../engine/bench/attach';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import type { PruneSummary } from '../engine/jobs';
import type { BenchmarkReport, PruneOptions, Report } from '../protocol/report';
import { EngineClient, EngineError, Handle, JobRequest } from './engineClient';
import { log, showError } from './log';
import { BenchResult, progressText, removePartials, toBenchmarkReport } from './runHelpers';

export type { BenchResult } from './runHelpers';

export interface RunRecord {
  model: string;
  out: string;
  report?: string;
  method: string;
  ratio: number;
  scp: boolean;
  /** Compensation applied (absent in records made before it existed: then `scp` says). */
  compensation?: string;
  removed: number[];
  numLayers: number;
  time: string;
  seconds: number;
}

export interface InspectResult {
  root: string;
  numLayers: number;
  decoder: string;
}

const HISTORY_KEY = 'shortLvlm.runs';
const HISTORY_MAX = 50;

export class RunManager implements vscode.Disposable {
  private current: { handle: Handle<unknown>; title: string } | undefined;
  private readonly changed = new vscode.EventEmitter<RunRecord | undefined>();
  /** Fires after a finished prune (with its record) and when the history is cleared. */
  readonly onDidChangeRuns = this.changed.event;
  private readonly running = new vscode.EventEmitter<boolean>();
  readonly onDidChangeRunning = this.running.event;

  constructor(
    readonly engine: EngineClient,
    private readonly state: vscode.Memento,
  ) {}

  get busy(): boolean {
    return this.current !== undefined;
  }

  history(): RunRecord[] {
    return this.state.get<RunRecord[]>(HISTORY_KEY, []);
  }

  async clearHistory(): Promise<void> {
    await this.state.update(HISTORY_KEY, []);
    this.changed.fire(undefined);
  }

  async removeRun(out: string): Promise<void> {
    await this.state.update(HISTORY_KEY, this.history().filter((r) => r.out !== out));
    this.changed.fire(undefined);
  }

  cancelCurrent(): boolean {
    if (!this.current) return false;
    log().info(`cancelling: ${this.current.title}`);
    this.engine.cancel(this.current.handle.id);
    return true;
  }

  /** A quick request without a notification (inspect). */
  async inspect(model: string): Promise<InspectResult> {
    return this.engine.request<InspectResult>({ type: 'inspect', model }).result;
  }

  async prune(args: { model: string; modelRoot: string; calib?: string; out: string; options: Partial<PruneOptions> } & RuntimeSettings): Promise<RunRecord | undefined> {
    const title = `Short-LVLM: pruning ${path.basename(args.modelRoot)}`;
    log().info(`prune ${args.model} -> ${args.out} options=${JSON.stringify(args.options)} calib=${args.calib ?? '(none)'} device=${args.device ?? 'cpu'} execution=${args.execution ?? 'auto'}`);
    const summary = await this.run<PruneSummary>(title, { type: 'prune', model: args.model, calib: args.calib, out: args.out, threads: args.threads, device: args.device, execution: args.execution, options: args.options }, () =>
      removePartials(args.out),
    );
    if (!summary) return undefined;
    const rec: RunRecord = {
      model: args.modelRoot,
      out: summary.out,
      report: summary.report ?? (fs.existsSync(path.join(summary.out, 'short-lvlm-report.json')) ? path.join(summary.out, 'short-lvlm-report.json') : undefined),
      method: summary.method,
      ratio: summary.ratio,
      scp: summary.scp,
      compensation: summary.compensation,
      removed: summary.removed,
      numLayers: summary.numLayers,
      time: new Date().toISOString(),
      seconds: summary.seconds,
    };
    log().info(`pruned: removed layers [${rec.removed.join(', ')}], ${rec.numLayers} remain, wrote ${rec.out} in ${rec.seconds.toFixed(1)} s`);
    const hist = [rec, ...this.history().filter((r) => r.out !== rec.out)].slice(0, HISTORY_MAX);
    await this.state.update(HISTORY_KEY, hist);
    this.changed.fire(rec);
    return rec;
  }

  /**
   * Benchmarks the models side by side (the first is the reference) and writes the result
   * into every benchmarked package that has a report. Returns the report paths updated.
   */
  async bench(models: string[], evalFile: string, samples?: number, runtime: RuntimeSettings = {}): Promise<{ benchmark: BenchmarkReport; reports: string[] } | undefined> {
    log().info(`bench ${models.join(', ')} on ${evalFile}${samples ? ` (${samples} samples)` : ''}`);
    const results = await this.run<BenchResult[]>(`Short-LVLM: benchmarking ${models.length} models`, { type: 'bench', models, eval: evalFile, samples, threads: runtime.threads, device: runtime.device });
    if (!results) return undefined;
    const benchmark = toBenchmarkReport(results, evalFile);
    const reports = attachBenchmark(models, benchmark, (file, e) => log().error(`could not add the benchmark to ${file}: ${e.message}`));
    return { benchmark, reports };
  }

  private async run<T>(title: string, job: JobRequest, onAbort?: () => string[]): Promise<T | undefined> {
    if (this.current) {
      void vscode.window.showWarningMessage(`Short-LVLM is already running: ${this.current.title}. Cancel it first (Short-LVLM: Cancel Run).`);
      return undefined;
    }
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      let lastStage = '';
      let lastFrac = 0;
      const handle = this.engine.request<T>(job, {
        onProgress: (p) => {
          if (p.stage !== lastStage) {
            log().info(`stage ${p.stage} (${p.total})`);
            lastStage = p.stage;
            lastFrac = 0;
          }
          // The bar restarts per stage in spirit; VS Code's cannot go back, so only grow it within a stage.
          const frac = p.total ? p.done / p.total : 0;
          progress.report({ message: progressText(p), increment: Math.max(0, (frac - lastFrac) * 30) });
          lastFrac = frac;
        },
      });
      this.current = { handle: handle as Handle<unknown>, title };
      this.running.fire(true);
      void vscode.commands.executeCommand('setContext', 'shortLvlm.running', true);
      const sub = token.onCancellationRequested(() => this.engine.cancel(handle.id));
      const started = Date.now();
      try {
        return await handle.result;
      } catch (e) {
        const err = e as EngineError;
        const removed = err.details?.cancelled || err.details?.crashed ? onAbort?.() ?? [] : [];
        if (removed.length) log().info(`removed partial output: ${removed.join(', ')}`);
        if (err.details?.cancelled) {
          log().info(`${title}: cancelled after ${((Date.now() - started) / 1000).toFixed(1)} s`);
          void vscode.window.showInformationMessage(`${title.replace('Short-LVLM: ', 'Short-LVLM: ')} — cancelled.`);
          return undefined;
        }
        log().error(`${title} failed: ${err.message}`);
        void showError(`${title} failed: ${err.message}`);
        return undefined;
      } finally {
        sub.dispose();
        this.current = undefined;
        this.running.fire(false);
        void vscode.commands.executeCommand('setContext', 'shortLvlm.running', false);
      }
    });
  }

  dispose(): void {
    this.changed.dispose();
    this.running.dispose();
  }
}
