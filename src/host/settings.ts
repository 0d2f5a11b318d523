// Reads the shortLvlm.* settings into the engine's option shapes, through the option table of
// src/protocol/options.ts; 0 / "" mean "let the engine decide" and are left out of the request.

import * as path from 'path';
import * as vscode from 'vscode';
import { outputName } from '../protocol/files';
import type { RunOptions } from '../protocol/engineApi';
import { optionsFromSettings, PRUNE_OPTION_SPECS, RUN_OPTION_SPECS } from '../protocol/options';
import type { PruneOptions } from '../protocol/report';

export function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('shortLvlm');
}

/** The pruning options from the shortLvlm.* settings (checked as the CLI checks its flags). */
export function pruneOptionsFromSettings(): Partial<PruneOptions> {
  const c = config();
  const o = optionsFromSettings((key, dflt) => c.get(key, dflt), 'shortLvlm.');
  // shortLvlm.scp = false turns compensation off whatever shortLvlm.compensation says.
  if (o.scp === false) delete o.compensation;
  return o;
}

/** How jobs run (threads, ...) from the settings, through the protocol's run-option table. */
export function runOptionsFromSettings(): RunOptions {
  const c = config();
  return optionsFromSettings((key, dflt) => c.get(key, dflt), 'shortLvlm.', RUN_OPTION_SPECS, {}) as RunOptions;
}

export function benchSamples(): number | undefined {
  const n = config().get<number>('benchmarkSamples', 0);
  return n > 0 ? n : undefined;
}

/** A path setting, with ${workspaceFolder} and ~ expanded and relative paths taken from the first workspace folder. */
export function pathSetting(key: string): string | undefined {
  const raw = config().get<string>(key, '').trim();
  if (!raw) return undefined;
  const ws = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  let p = raw.replace(/\$\{workspaceFolder\}/g, ws ?? '').replace(/^~(?=$|[\\/])/, process.env.HOME ?? '~');
  if (!path.isAbsolute(p) && ws) p = path.join(ws, p);
  return p;
}

/**
 * Output folder from shortLvlm.outputFolder. Variables: ${modelDir} (the model package
 * folder), ${modelName}, ${tag}, ${timestamp}, ${workspaceFolder}. Relative results are
 * taken from the model's parent folder.
 */
export function outputFolder(modelRoot: string, tag: string, now = new Date()): string {
  const dflt = outputName('${modelDir}', '${tag}');
  const pattern = config().get<string>('outputFolder', dflt) || dflt;
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const ws = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? path.dirname(modelRoot);
  const p = pattern
    .replace(/\$\{modelDir\}/g, modelRoot)
    .replace(/\$\{modelName\}/g, path.basename(modelRoot))
    .replace(/\$\{tag\}/g, tag)
    .replace(/\$\{timestamp\}/g, ts)
    .replace(/\$\{workspaceFolder\}/g, ws);
  return path.isAbsolute(p) ? p : path.join(path.dirname(modelRoot), p);
}

/** Logs each change of shortLvlm.* settings: a run's options are then traceable in the log. */
export function logSettingChanges(out: vscode.LogOutputChannel): vscode.Disposable {
  return vscode.workspace.onDidChangeConfiguration((e) => {
    if (!e.affectsConfiguration('shortLvlm')) return;
    const c = config();
    const optionKeys = Object.values({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS }).flatMap((s) => ('setting' in s ? [s.setting] : []));
    const keys = [...optionKeys, 'calibrationData', 'evaluationData', 'benchmarkSamples', 'outputFolder'];
    out.info(`settings changed: ${keys.filter((k) => e.affectsConfiguration(`shortLvlm.${k}`)).map((k) => `${k}=${JSON.stringify(c.get(k))}`).join(', ')}`);
  });
}
