// Runs engine jobs with a cancellable progress notification, one at a time, and keeps the
// run history. Cancelling sends {type:'cancel'}; a job that does not stop in time gets its
// process killed by the EngineClient, and then the engine never reached its own cleanup, so
// the `.NAME.partial-*` folder it was writing is removed here.
// A job being cancelled is still the current job until its process answers (or is killed a
// few seconds later): a new request waits for that instead of being refused, and the "already
// running" notice is bound to the job it names, so it closes when that job ends.

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
export type InspectResult = Pick<InspectReport, 'root' | 'numLayers' | 'decoder'> & Partial<Pick<InspectReport, 'family' | 'decoderVariants'>>;

/** The job in progress, as the status bar and the "already running" notice show it. */
export interface ActiveJob {
  /** The engine's request id: tells this job from a later one of the same name. */
  id: number;
  title: string;
  /** The latest progress line ("calibrate 3/16, ETA 12s"), once the engine sent one. */
  progress?: string;
  cancelling: boolean;
}

/** How the last job ended: commands use it to tell a failed input from a cancel. */
export interface JobOutcome {
  status: 'done' | 'cancelled' | 'failed';
  message?: string;
  /** The engine process died (killed, out of memory): says nothing about the job's inputs. */
  crashed?: boolean;
}

interface Current extends ActiveJob {
  handle: Handle<unknown>;
  /** Settles when the job has ended, however it ends. */
  ended: Promise<void>;
  busyNoticeShown?: boolean;
}

const HISTORY_KEY = 'shortLvlm.runs';
const HISTORY_MAX = 50;

export class RunManager implements vscode.Disposable {
  private current: Current | undefined;
  /** How the last job run through the notification ended. */
  lastOutcome: JobOutcome | undefined;
  private readonly changed = new vscode.EventEmitter<RunRecord | undefined>();
  /** Fires after a finished prune (with its record) and when the history is cleared. */
  readonly onDidChangeRuns = this.changed.event;
  private readonly running = new vscode.EventEmitter<boolean>();
  readonly onDidChangeRunning = this.running.event;
  private readonly jobChanged = new vscode.EventEmitter<ActiveJob | undefined>();
  /** Fires when a job starts, makes progress, is being cancelled, and (undefined) when it ends. */
  readonly onDidChangeJob = this.jobChanged.event;

  constructor(
    readonly engine: EngineClient,
    private readonly state: vscode.Memento,
  ) {}

  get busy(): boolean {
    return this.current !== undefined;
  }

  /** The job in progress, if any. */
  get active(): ActiveJob | undefined {
    return this.current && { id: this.current.id, title: this.current.title, progress: this.current.progress, cancelling: this.current.cancelling };
  }

  /**
   * True when a new job may start: at once when idle, or once a job being cancelled has
   * stopped. Otherwise false, with a notice naming the running job that closes when it ends
   * and whose Cancel stops that job (never a later one).
   */
  async whenIdle(): Promise<boolean> {
    const cur = this.current;
    if (!cur) return true;
    if (cur.cancelling) {
      await cur.ended;
      return this.current === undefined;
    }
    if (!cur.busyNoticeShown) {
      cur.busyNoticeShown = true;
      void vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Short-LVLM is already running: ${cur.title.replace(/^Short-LVLM: /, '')}.`, cancellable: true },
        (progress, token) => {
          progress.report({ message: 'Wait for it to finish, or cancel it here.' });
          const sub = token.onCancellationRequested(() => {
            if (this.current === cur) this.cancelCurrent();
          });
          return cur.ended.finally(() => sub.dispose());
        },
      );
    }
    return false;
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
    const cur = this.current;
    if (!cur) return false;
    log().info(`cancelling: ${cur.title}`);
    cur.cancelling = true;
    this.jobChanged.fire(this.active);
    this.engine.cancel(cur.handle.id);
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
    if (summary.leftOut?.length) log().info(`not copied into ${rec.out} (not part of the model): ${summary.leftOut.join(', ')}`);
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
    this.lastOutcome = undefined;
    if (!(await this.whenIdle())) return undefined;
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
          if (this.current?.handle === handle) {
            this.current.progress = progressText(p);
            this.jobChanged.fire(this.active);
          }
        },
      });
      let end: () => void = () => undefined;
      const ended = new Promise<void>((r) => (end = r));
      this.current = { id: handle.id, handle: handle as Handle<unknown>, title, cancelling: false, ended };
      this.running.fire(true);
      this.jobChanged.fire(this.active);
      void vscode.commands.executeCommand('setContext', 'shortLvlm.running', true);
      const sub = token.onCancellationRequested(() => {
        if (this.current?.handle === handle) this.cancelCurrent();
      });
      const started = Date.now();
      try {
        const result = await handle.result;
        this.lastOutcome = { status: 'done' };
        return result;
      } catch (e) {
        const err = e as EngineError;
        const removed = err.details?.cancelled || err.details?.crashed ? onAbort?.() ?? [] : [];
        if (removed.length) log().info(`removed partial output: ${removed.join(', ')}`);
        if (err.details?.cancelled) {
          this.lastOutcome = { status: 'cancelled' };
          log().info(`${title}: cancelled after ${((Date.now() - started) / 1000).toFixed(1)} s`);
          void vscode.window.showInformationMessage(`${title.replace('Short-LVLM: ', 'Short-LVLM: ')} — cancelled.`);
          return undefined;
        }
        const message = err.details?.option ? `${settingName(err.details.option)}: ${err.details.detail}` : err.message;
        this.lastOutcome = { status: 'failed', message, crashed: !!err.details?.crashed };
        log().error(`${title} failed: ${message}`);
        void showError(`${title} failed: ${message}`);
        return undefined;
      } finally {
        sub.dispose();
        this.current = undefined;
        end();
        this.jobChanged.fire(undefined);
        this.running.fire(false);
        void vscode.commands.executeCommand('setContext', 'shortLvlm.running', false);
      }
    });
  }

  dispose(): void {
    this.changed.dispose();
    this.running.dispose();
    this.jobChanged.dispose();
  }
}

/** The setting behind an engine option (`candidates` -> `shortLvlm.candidates`), for error messages. */
function settingName(option: string): string {
  const spec = ({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS } as Record<string, OptionSpec>)[option];
  return spec?.setting ? `setting shortLvlm.${spec.setting}` : option;
}
