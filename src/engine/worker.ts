// The engine process: forked by the extension host (ELECTRON_RUN_AS_NODE=1), it runs one job
// at a time and answers over IPC. Each job is a method of the protocol's EngineApi, so its
// result has the type the host expects. A cancel makes the running job throw at its next
// check; the job's own cleanup (temporary folder removal) runs before the error is reported.

import { askJob } from './commands/ask';
import { inspectModel } from './commands/inspect';
import { checkRun } from './commands/checkRun';
import { sweepJob } from './bench/sweep';
import { describeError } from '../protocol/errorText';
import { benchJob, pruneJob } from './jobs';
import type { JobHooks } from './method/shortLvlm';
import { installExitCleanup, sweepStaleScratch } from './scratch';
import type { EngineEvent, EngineRequest, JobHandlers, JobRequest } from '../protocol/messages';
import { OptionError } from '../protocol/options';

class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

const cancelled = new Set<number>();
const running = new Set<number>();

function send(e: EngineEvent): void {
  if (process.connected) process.send?.(e);
}

function handlers(id: number): JobHandlers {
  const hooks: JobHooks = {
    checkCancelled: () => {
      if (cancelled.has(id)) throw new Cancelled();
    },
    onProgress: (p) => send({ type: 'progress', id, ...p }),
    log: (line) => send({ type: 'log', id, line }),
  };
  return {
    inspect: (a) => inspectModel(a.model),
    prune: (a) => pruneJob(a, hooks),
    bench: (a) => benchJob(a, hooks),
    ask: (a) => askJob(a, hooks),
    checkRun: (a) => checkRun(a),
    sweep: (a) => sweepJob(a, hooks),
  };
}

function run(req: JobRequest): Promise<unknown> | unknown {
  const { type, id, ...args } = req;
  // The request's type names the handler whose argument type its fields have (JobRequest<K>).
  return (handlers(id)[type] as (a: typeof args) => unknown)(args);
}

let queue = Promise.resolve();
process.on('message', (req: EngineRequest) => {
  if (req.type === 'cancel') {
    cancelled.add(req.id);
    return;
  }
  // One job at a time: onnxruntime already uses every core it is given.
  queue = queue.then(async () => {
    running.add(req.id);
    try {
      const result = (await run(req)) as Extract<EngineEvent, { type: 'result' }>['result'];
      send({ type: 'result', id: req.id, result });
    } catch (e) {
      const err = e as Error;
      const option = err instanceof OptionError ? { option: err.option, detail: err.detail } : {};
      send({ type: 'error', id: req.id, message: describeError(err), stack: err.stack, cancelled: err instanceof Cancelled, ...option });
    } finally {
      running.delete(req.id);
      cancelled.delete(req.id);
    }
  });
});

// The host went away (window closed, extension host restarted): cancel the running job so
// that it removes its temporary folder, then exit; give up after a few seconds.
process.on('disconnect', () => {
  for (const id of running) cancelled.add(id);
  setTimeout(() => process.exit(0), 5000).unref();
  queue.finally(() => process.exit(0));
});
// Temporary folders go away on every exit; those of an engine that was killed are swept now.
installExitCleanup();
sweepStaleScratch();
send({ type: 'ready', pid: process.pid });
