// The order in which the calibration and evaluation pickers offer data files: a file whose last
// run failed is not offered first again, and a copy of a data file inside a pruned package
// (older versions copied the whole model folder) comes after the user's own files.
// No `vscode` import at run time: unit tests run it under Node.

import * as fs from 'fs';
import * as path from 'path';
import type * as vscode from 'vscode';
import { isOutputName, REPORT_FILE } from '../protocol/files';

const FAILED_KEY = 'shortLvlm.failedData';

interface Failure {
  mtimeMs: number;
  message: string;
}

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** Remembers data files whose run failed, until the file changes or a run with it succeeds. */
export class FailedData {
  constructor(private readonly state: vscode.Memento) {}

  private all(): Record<string, Failure> {
    return this.state.get<Record<string, Failure>>(FAILED_KEY, {});
  }

  /** Why the last run with this file failed, unless the file was edited since. */
  failure(file: string): string | undefined {
    const f = this.all()[path.resolve(file)];
    return f && f.mtimeMs === mtime(file) ? f.message : undefined;
  }

  async record(file: string, message: string): Promise<void> {
    await this.state.update(FAILED_KEY, { ...this.all(), [path.resolve(file)]: { mtimeMs: mtime(file), message } });
  }

  async clear(file: string): Promise<void> {
    const all = this.all();
    if (!(path.resolve(file) in all)) return;
    delete all[path.resolve(file)];
    await this.state.update(FAILED_KEY, all);
  }
}

/** The pruned package a file sits in (a folder named as our outputs, or holding a report), if any. */
export function prunedPackageOf(file: string): string | undefined {
  let dir = path.dirname(path.resolve(file));
  for (let i = 0; i < 4 && dir !== path.dirname(dir); i++, dir = path.dirname(dir)) {
    if (isOutputName(path.basename(dir)) || fs.existsSync(path.join(dir, REPORT_FILE))) return dir;
  }
  return undefined;
}

export interface DataChoice {
  file: string;
  why: string;
}

/**
 * Orders the candidates: as given, except that copies inside pruned packages and files whose
 * last run failed move to the end (failed last), each saying why.
 */
export function orderChoices(choices: DataChoice[], failed: FailedData): DataChoice[] {
  const own: DataChoice[] = [];
  const copies: DataChoice[] = [];
  const bad: DataChoice[] = [];
  for (const c of choices) {
    const why = failed.failure(c.file);
    const pkg = prunedPackageOf(c.file);
    if (why) bad.push({ file: c.file, why: `${c.why}, failed last run: ${why.slice(0, 80)}` });
    else if (pkg) copies.push({ file: c.file, why: `${c.why}, copy inside pruned package ${path.basename(pkg)}` });
    else own.push(c);
  }
  return [...own, ...copies, ...bad];
}
