// The engine process: forked by the extension host (ELECTRON_RUN_AS_NODE=1), it runs one job
// at a time and answers over IPC. A cancel makes the running job throw at its next check;
// the job's own cleanup (temporary folder removal) runs before the error is reported.

import { inspectModel } from './commands/inspect';
import { benchJob, pruneJob } from './jobs';
import { EngineEvent, EngineRequest } from '../protocol/messages';

class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

const cancelled = new Set<number>();

function send(e: EngineEvent): void {
  if (process.connected) process.send?.(e);
}

async function handle(req: Exclude<EngineRequest, { type: 'cancel' }>): Promise<unknown> {
  const hooks = {
    checkCancelled: () => {
      if (cancelled.has(req.id)) throw new Cancelled();
    },
    onProgress: (p: { stage: string; done: number; total: number; etaSeconds?: number }) => send({ type: 'progress', id: req.id, ...p }),
    log: (line: string) => send({ type: 'log', id: req.id, line }),
  };
  switch (req.type) {
    case 'inspect':
      return inspectModel(req.model);
    case 'prune':
      return pruneJob({ model: req.model, calib: req.calib, out: req.out, overwrite: req.overwrite, threads: req.threads, execution: req.execution, device: req.device, options: req.options }, hooks);
    case 'bench':
      return (await benchJob({ models: req.models, eval: req.eval, samples: req.samples, threads: req.threads, device: req.device }, hooks)).map((r) => ({ ...r, answers: undefined }));
  }
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
      const result = await handle(req);
      send({ type: 'result', id: req.id, result });
    } catch (e) {
      const err = e as Error;
      send({ type: 'error', id: req.id, message: err.message, stack: err.stack, cancelled: err instanceof Cancelled });
    } finally {
      running.delete(req.id);
      cancelled.delete(req.id);
    }
  });
});

// The host went away (window closed, extension host restarted): cancel the running job so
// that it removes its temporary folder, then exit; give up after a few seconds.
const running = new Set<number>();
process.on('disconnect', () => {
  for (const id of running) cancelled.add(id);
  setTimeout(() => process.exit(0), 5000).unref();
  queue.finally(() => process.exit(0));
});
send({ type: 'ready', pid: process.pid });
