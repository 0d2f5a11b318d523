// The extension host's side of the engine process. onnxruntime's run() blocks its thread, so
// all model work happens in a forked Node process (ELECTRON_RUN_AS_NODE=1 turns VS Code's
// Electron binary into plain Node). The process is started on first use and again after a
// crash; a crash rejects every pending request with a message that says so.

import { ChildProcess, fork } from 'child_process';
import type * as vscode from 'vscode';
import type { JobArgs, JobResult, JobType, Progress } from '../protocol/engineApi';
import type { EngineEvent, EngineRequest } from '../protocol/messages';

/** A job as the host asks for it: the request without its id (the client assigns one). K follows from `type`. */
export type Job<K extends JobType> = { type: K } & JobArgs<K>;
export type { Progress };

export interface RequestHooks {
  onProgress?: (p: Progress) => void;
  onLog?: (line: string) => void;
}

/** A rejected request: `cancelled` when the user stopped it, `crashed` when the process died. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly details: { cancelled?: boolean; crashed?: boolean; stack?: string; option?: string; detail?: string } = {},
  ) {
    super(message);
  }
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: EngineError) => void;
  hooks: RequestHooks;
  cancelTimer?: NodeJS.Timeout;
  cancelRequested?: boolean;
}

export interface Handle<T> {
  id: number;
  result: Promise<T>;
}

export class EngineClient implements vscode.Disposable {
  private proc: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly workerPath: string,
    private readonly out: vscode.LogOutputChannel,
    /** How long a cancelled job may take to stop before the process is killed. */
    private readonly killAfterMs = 4000,
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts a job; its result has the type the EngineApi declares for the job's type. */
  request<K extends JobType>(job: Job<K>, hooks: RequestHooks = {}): Handle<JobResult<K>> {
    const id = this.nextId++;
    const result = new Promise<JobResult<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, hooks });
      try {
        this.ensure().send({ ...job, id } as EngineRequest);
      } catch (e) {
        this.pending.delete(id);
        reject(new EngineError(`could not start the Short-LVLM engine: ${(e as Error).message}`, { crashed: true }));
      }
    });
    return { id, result };
  }

  /**
   * Asks the engine to stop job `id` at its next check; if it has not answered within
   * killAfterMs, kills the process (its temporary output folder is then left to the caller
   * to remove) and rejects the job as cancelled.
   */
  cancel(id: number): void {
    const p = this.pending.get(id);
    if (!p || p.cancelRequested) return;
    p.cancelRequested = true;
    this.out.info(`cancel requested for job ${id}`);
    this.proc?.send({ type: 'cancel', id } satisfies EngineRequest);
    p.cancelTimer = setTimeout(() => {
      if (!this.pending.has(id)) return;
      this.out.warn(`engine did not stop job ${id} within ${this.killAfterMs} ms: killing process ${this.proc?.pid}`);
      this.kill(`job ${id} was cancelled`, true);
    }, this.killAfterMs);
  }

  dispose(): void {
    this.kill('the extension is shutting down', false);
  }

  private ensure(): ChildProcess {
    if (this.proc && this.proc.connected) return this.proc;
    this.out.info(`starting engine: ${this.workerPath}`);
    // Not the extension host's own flags (inspector ports, --max-old-space...); source maps on,
    // so the engine's stacks in the log point into src/ (the bundle ships its .map).
    const proc = fork(this.workerPath, [], {
      execArgv: ['--enable-source-maps'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.proc = proc;
    proc.stdout?.on('data', (b: Buffer) => this.out.info(`[engine] ${b.toString().trimEnd()}`));
    proc.stderr?.on('data', (b: Buffer) => this.out.info(`[engine] ${b.toString().trimEnd()}`));
    proc.on('message', (e: EngineEvent) => this.onEvent(e));
    proc.on('error', (e) => this.out.error(`engine process error: ${e.message}`));
    proc.on('exit', (code, signal) => {
      if (this.proc === proc) this.proc = undefined;
      this.out.info(`engine process ${proc.pid} exited (code ${code}, signal ${signal})`);
      this.failAll(proc, code, signal);
    });
    return proc;
  }

  private failAll(proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.cancelTimer);
      this.pending.delete(id);
      if (p.cancelRequested) p.reject(new EngineError('cancelled', { cancelled: true }));
      else
        p.reject(
          new EngineError(
            `The Short-LVLM engine process (pid ${proc.pid}) stopped unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}). It will be restarted on the next request.`,
            { crashed: true },
          ),
        );
    }
  }

  private kill(reason: string, cancelled: boolean): void {
    const proc = this.proc;
    if (!proc) return;
    this.out.info(`stopping engine process ${proc.pid}: ${reason}`);
    this.proc = undefined;
    if (cancelled) for (const p of this.pending.values()) p.cancelRequested = true;
    proc.kill('SIGKILL');
  }

  private onEvent(e: EngineEvent): void {
    if (e.type === 'ready') {
      this.out.info(`engine ready (pid ${e.pid})`);
      return;
    }
    const p = this.pending.get(e.id);
    switch (e.type) {
      case 'progress':
        p?.hooks.onProgress?.(e);
        return;
      case 'log':
        this.out.info(`[job ${e.id}] ${e.line}`);
        p?.hooks.onLog?.(e.line);
        return;
      case 'result':
        if (!p) return;
        clearTimeout(p.cancelTimer);
        this.pending.delete(e.id);
        p.resolve(e.result);
        return;
      case 'error':
        if (!p) return;
        clearTimeout(p.cancelTimer);
        this.pending.delete(e.id);
        if (!e.cancelled && e.stack) this.out.error(`[job ${e.id}] ${e.stack}`);
        p.reject(new EngineError(e.cancelled ? 'cancelled' : e.message, { cancelled: e.cancelled, stack: e.stack, option: e.option, detail: e.detail }));
        return;
    }
  }
}
