// Temporary folders the engine makes in the user's workspace: the edited-session folder
// beside a model (onnxruntime resolves external data relative to the model file, so the
// edited graph sits next to hard links to the weights) and the `.NAME.partial-*` folder a
// package is written into. Each is registered here so that it goes away on every exit path:
// normal disposal, a thrown error, process.exit, Ctrl-C / SIGTERM, and, for a process that was
// killed outright, the next start of the CLI or the engine process (sweepStaleScratch).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { makeTempDir } from './package/tempDir';

/** Where each process records the folders it owns: one small file per folder. */
function registryDir(): string {
  return path.join(os.tmpdir(), 'short-lvlm-scratch');
}

const owned = new Map<string, string>(); // folder -> its registry record

/** Folder name patterns the sweep may delete; anything else in a record is ignored. */
const SWEEPABLE = /^\.short-lvlm-session-|^short-lvlm-session-|\.partial-/;

/**
 * A new folder under `parent` (with the user's umask: a partial folder becomes the output),
 * registered for removal on every exit path.
 */
export function makeScratchDir(parent: string, prefix: string): string {
  const dir = makeTempDir(parent, prefix);
  let record = '';
  try {
    fs.mkdirSync(registryDir(), { recursive: true });
    record = path.join(registryDir(), `${process.pid}-${path.basename(dir)}.json`);
    fs.writeFileSync(record, JSON.stringify({ pid: process.pid, dir }));
  } catch {
    record = ''; // no registry (read-only tmp): removal on exit still works, only the sweep cannot
  }
  owned.set(dir, record);
  return dir;
}

export function removeScratchDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  const record = owned.get(dir);
  owned.delete(dir);
  if (record) fs.rmSync(record, { force: true });
}

/** Forgets a folder without deleting it (a partial folder renamed into the finished output). */
export function releaseScratchDir(dir: string): void {
  const record = owned.get(dir);
  owned.delete(dir);
  if (record) fs.rmSync(record, { force: true });
}

/** Removes every folder this process still owns (synchronous: runs inside 'exit' and signal handlers). */
export function removeAllScratch(): void {
  for (const dir of [...owned.keys()]) {
    try {
      removeScratchDir(dir);
    } catch {
      // best effort on the way out
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the folders of processes that died without cleaning up. Returns what was removed. */
export function sweepStaleScratch(): string[] {
  const removed: string[] = [];
  let records: string[];
  try {
    records = fs.readdirSync(registryDir());
  } catch {
    return removed;
  }
  for (const name of records) {
    const file = path.join(registryDir(), name);
    try {
      const { pid, dir } = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number; dir: string };
      if (pid === process.pid || alive(pid)) continue;
      if (typeof dir === 'string' && path.isAbsolute(dir) && SWEEPABLE.test(path.basename(dir))) {
        fs.rmSync(dir, { recursive: true, force: true });
        removed.push(dir);
      }
      fs.rmSync(file, { force: true });
    } catch {
      // a record being written by another process, or unreadable: leave it for next time
    }
  }
  return removed;
}

let installed = false;

/**
 * Cleans up on process exit and turns SIGINT/SIGTERM/SIGHUP into a clean exit: the owned
 * folders are removed synchronously, `onSignal` may print a last line, and the process exits
 * with 128 + the signal number.
 */
export function installExitCleanup(onSignal?: (signal: NodeJS.Signals) => void): void {
  if (installed) return;
  installed = true;
  process.on('exit', removeAllScratch);
  const codes: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.on(sig, () => {
      removeAllScratch();
      onSignal?.(sig);
      process.exit(128 + codes[sig]!);
    });
  }
}
