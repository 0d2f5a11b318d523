// Runs engine jobs with a cancellable progress notification, one at a time, and keeps the
// run history. Cancelling sends {type:'cancel'}; a job that does not stop in time gets its
// process killed by the EngineClient, and then the engine never reached its own cleanup, so
// the `.NAME.partial-*` folder it was writing is removed here.

import * as path from 'path';
import * as vscode from 'vscode';
import type { BenchOutcome, InspectReport, JobResult, JobType, Progress, RunOptions, SweepArgs, SweepOutcome } from '../protocol/engineApi';
import { OptionSpec, PRUNE_OPTION_SPECS, RUN_OPTION_SPECS } from '../protocol/options';
import type { PruneOptions } from '../protocol/report';
import { EngineClient, EngineError, Handle, Job } from './engineClient';
import { log, showError } from './log';
import { progressText, removePartials } from './runHelpers';

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

/** What the prune flow needs of a model; the engine's inspect answers more. */
export type InspectResult = Pick<InspectReport, 'root' | 'numLayers' | 'decoder'>;

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
  async inspect(model: string): Promise<InspectReport> {
    return this.engine.request({ type: 'inspect', model }).result;
  }

  async prune(args: { model: string; modelRoot: string; calib?: string; out: string; options: Partial<PruneOptions>; run?: RunOptions; onProgress?: (p: Progress) => void }): Promise<RunRecord | undefined> {
    const title = `Short-LVLM: pruning ${path.basename(args.modelRoot)}`;
    log().info(`prune ${args.model} -> ${args.out} options=${JSON.stringify(args.options)} calib=${args.calib ?? '(none)'}`);
    const summary = await this.run(
      title,
      { type: 'prune', model: args.model, calib: args.calib, out: args.out, ...args.run, options: args.options },
      () => removePartials(args.out),
      args.onProgress,
    );
    if (!summary) return undefined;
    const rec: RunRecord = {
      model: args.modelRoot,
      out: summary.out,
      report: summary.report,
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
   * Benchmarks the models side by side (the first is the reference); the engine stores the
   * result in every benchmarked package that has a report and says which.
   */
  async bench(models: string[], evalFile: string, samples?: number, run: RunOptions = {}): Promise<BenchOutcome | undefined> {
    log().info(`bench ${models.join(', ')} on ${evalFile}${samples ? ` (${samples} samples)` : ''}`);
    return this.run(`Short-LVLM: benchmarking ${models.length} models`, { type: 'bench', models, eval: evalFile, samples, ...run, save: true });
  }

  /** The paper's ablation on one model (methods x ratios), for the trade-off chart. */
  async sweep(args: SweepArgs, onProgress?: (p: Progress) => void): Promise<SweepOutcome | undefined> {
    log().info(`sweep ${args.model} ratios=${args.ratios.join(',')} methods=${args.methods?.join(',') ?? '(default)'} calib=${args.calib} eval=${args.eval}`);
    return this.run(`Short-LVLM: sweeping ${path.basename(args.model)}`, { type: 'sweep', ...args }, undefined, onProgress);
  }

  private async run<K extends JobType>(title: string, job: Job<K>, onAbort?: () => string[], observe?: (p: Progress) => void): Promise<JobResult<K> | undefined> {
    if (this.current) {
      void vscode.window.showWarningMessage(`Short-LVLM is already running: ${this.current.title}. Cancel it first (Short-LVLM: Cancel Run).`);
      return undefined;
    }
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
      let lastStage = '';
      let lastFrac = 0;
      const handle = this.engine.request(job, {
        onProgress: (p) => {
          observe?.(p);
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
        const message = err.details?.option ? `${settingName(err.details.option)}: ${err.details.detail}` : err.message;
        log().error(`${title} failed: ${message}`);
        void showError(`${title} failed: ${message}`);
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

/** The setting behind an engine option (`candidates` -> `shortLvlm.candidates`), for error messages. */
function settingName(option: string): string {
  const spec = ({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS } as Record<string, OptionSpec>)[option];
  return spec?.setting ? `setting shortLvlm.${spec.setting}` : option;
}
