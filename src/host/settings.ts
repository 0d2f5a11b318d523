// Reads the shortLvlm.* settings into the engine's option shapes. Every engine option has a
// setting; 0 / "" mean "let the engine decide" and are simply left out of the request.

import * as path from 'path';
import * as vscode from 'vscode';
import { DEFAULT_METHOD, resolveCompensation } from '../protocol/report';
import type { Compensation, FeatureMode, Method, PruneOptions, ScpTarget } from '../protocol/report';

export function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('shortLvlm');
}

/** Parses "8-15" into an inclusive range; "" means the engine's default (last half). */
export function parseCandidates(s: string): [number, number] | undefined {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(s);
  if (!s.trim()) return undefined;
  if (!m) throw new Error(`shortLvlm.candidates must be a range like 8-15, got "${s}"`);
  return [Number(m[1]), Number(m[2])];
}

export function pruneOptionsFromSettings(): Partial<PruneOptions> {
  const c = config();
  const o: Partial<PruneOptions> = {
    ratio: c.get<number>('ratio', 0.3),
    method: c.get<Method>('method', DEFAULT_METHOD),
    scp: c.get<boolean>('scp', true),
    scpTarget: c.get<ScpTarget>('scpTarget', 'down_proj'),
    topP: c.get<number>('topP', 0.1),
    keepMode: c.get<'count' | 'nucleus'>('keepMode', 'count'),
    features: c.get<FeatureMode>('features', 'kept'),
  };
  // "auto": SCP for the paper's method, none for greedy; scp = false still means none.
  const comp = c.get<string>('compensation', 'auto');
  if (comp !== 'auto' && o.scp !== false) o.compensation = comp as Compensation;
  const rank = c.get<number>('rank', 0);
  if (rank > 0) o.rank = rank;
  const cand = parseCandidates(c.get<string>('candidates', ''));
  if (cand) o.candidates = cand;
  const samples = c.get<number>('samples', 0);
  if (samples > 0) o.samples = samples;
  return o;
}

export function threads(): number | undefined {
  const t = config().get<number>('threads', 0);
  return t > 0 ? t : undefined;
}

export interface RuntimeSettings {
  threads?: number;
  device?: 'cpu' | 'cuda' | 'dml' | 'coreml';
  execution?: 'auto' | 'whole' | 'layerwise';
}

/** How the engine runs models: threads, execution provider, whole-graph or layer-wise decoder. */
export function runtime(): RuntimeSettings {
  const c = config();
  return { threads: threads(), device: c.get<RuntimeSettings['device']>('device', 'cpu'), execution: c.get<RuntimeSettings['execution']>('execution', 'auto') };
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

/** Tag naming an output folder the way the CLI does: svl-r0.3, cosine-r0.2-noscp, l3-5. */
export function runTag(o: Partial<PruneOptions>): string {
  if (o.layers?.length) return `l${o.layers.join('-')}${o.scp ? '-scp' : ''}`;
  const amount = o.minAgreement !== undefined ? `a${o.minAgreement}` : `r${o.ratio ?? 0.3}`;
  const comp = resolveCompensation(o);
  return `${o.method ?? DEFAULT_METHOD}-${amount}${comp === 'scp' ? '' : comp === 'ls' ? '-ls' : '-noscp'}`;
}

/**
 * Output folder from shortLvlm.outputFolder. Variables: ${modelDir} (the model package
 * folder), ${modelName}, ${tag}, ${timestamp}, ${workspaceFolder}. Relative results are
 * taken from the model's parent folder.
 */
export function outputFolder(modelRoot: string, tag: string, now = new Date()): string {
  const pattern = config().get<string>('outputFolder', '${modelDir}-short-lvlm-${tag}') || '${modelDir}-short-lvlm-${tag}';
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
    const keys = ['ratio', 'method', 'compensation', 'scp', 'scpTarget', 'topP', 'keepMode', 'rank', 'features', 'candidates', 'samples', 'calibrationData', 'evaluationData', 'benchmarkSamples', 'threads', 'device', 'execution', 'outputFolder'];
    out.info(`settings changed: ${keys.filter((k) => e.affectsConfiguration(`shortLvlm.${k}`)).map((k) => `${k}=${JSON.stringify(c.get(k))}`).join(', ')}`);
  });
}
