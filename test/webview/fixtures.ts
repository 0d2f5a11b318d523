// A real report, benchmark and sweep of the bundled tiny VLM (or another package on the tiny-vqa
// data), produced by the CLI (dist/cli.js) the way the extension host's engine produces them.

import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import type { BenchmarkReport, BenchRow, Report, SweepRow } from '../../src/protocol/report';
import { REPO, pngDataUri } from './harness';

const run = promisify(execFile);

/** One line of `bench --json`: the report schema's row, as the Benchmark panel draws it. */
export type BenchLine = BenchRow;

export interface Fixtures {
  dir: string;
  report: Report;
  /** A greedy, quality-budget report (only with `greedy`). */
  greedyReport?: Report;
  benchLines: BenchLine[];
  benchmark: BenchmarkReport;
  /** The same benchmark with the sweep's rows (for the trade-off chart). */
  benchmarkWithSweep: BenchmarkReport;
  sweepRows: SweepRow[];
  /** sample index -> PNG data URI, as the host would answer requestImage. */
  images: Record<number, string>;
}

export async function makeFixtures(opts: { sweep?: boolean; model?: string; greedy?: boolean } = {}): Promise<Fixtures> {
  const cli = path.join(REPO, 'dist', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first');
  if (!fs.existsSync(path.join(REPO, 'dist', 'webview.js'))) throw new Error('dist/webview.js is missing: run `npm run build` first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'short-lvlm-webview-'));
  const model = path.resolve(REPO, opts.model ?? 'models/tiny-llava');
  const data = path.join(REPO, 'data', 'tiny-vqa');
  const pruned = path.join(dir, 'pruned');
  const opt = { cwd: REPO, maxBuffer: 64 << 20, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } };

  const sweepFile = path.join(dir, 'sweep.json');
  const sweep = opts.sweep
    ? run(
        process.execPath,
        [cli, 'sweep', model, '--calib', path.join(data, 'calib.json'), '--eval', path.join(data, 'eval.jsonl'), '--ratios', '0.1,0.3', '--methods', 'svl,cosine', '--random-seeds', '2', '--exhaustive-limit', '0', '--samples', '8', '--eval-samples', '12', '--out', sweepFile, '--quiet'],
        opt,
      )
    : Promise.resolve(null);
  await run(process.execPath, [cli, 'prune', model, '--calib', path.join(data, 'calib.json'), '--method', 'svl', '--samples', '16', '--ratio', '0.3', '--out', pruned, '--json', '--quiet'], opt);
  // The output-aware method under a quality budget: skip costs, the greedy curve and the budget.
  let greedyReport: Report | undefined;
  if (opts.greedy) {
    const g = path.join(dir, 'greedy');
    await run(process.execPath, [cli, 'prune', model, '--calib', path.join(data, 'calib.json'), '--method', 'greedy', '--samples', '64', '--min-agreement', '0.9', '--out', g, '--json', '--quiet'], opt);
    greedyReport = JSON.parse(fs.readFileSync(path.join(g, 'short-lvlm-report.json'), 'utf8')) as Report;
  }
  const report = JSON.parse(fs.readFileSync(path.join(pruned, 'short-lvlm-report.json'), 'utf8')) as Report;
  const bench = await run(process.execPath, [cli, 'bench', model, pruned, '--eval', path.join(data, 'eval.jsonl'), '--samples', '40', '--json', '--quiet', '--no-save'], opt);
  const benchLines = bench.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as BenchLine);
  await sweep;
  let sweepRows: SweepRow[] = [];
  if (opts.sweep) {
    const s = JSON.parse(fs.readFileSync(sweepFile, 'utf8')) as { rows: SweepRow[]; exhaustive: Record<string, { best: SweepRow }> };
    // The host's mapping: method rows and random seeds as they come, plus the best exhaustive subset per ratio.
    sweepRows = [...s.rows, ...Object.values(s.exhaustive).map((e) => e.best)];
  }
  const benchmark: BenchmarkReport = { evalFile: path.join(data, 'eval.jsonl'), items: benchLines[0] ? Object.values(benchLines[0].families).reduce((a, f) => a + f.n, 0) : 0, rows: benchLines };
  const images: Record<number, string> = {};
  report.tokenSamples.forEach((s, i) => {
    if (s.image && fs.existsSync(s.image)) images[i] = pngDataUri(s.image);
  });
  return { dir, report, greedyReport, benchLines, benchmark, benchmarkWithSweep: { ...benchmark, sweep: sweepRows }, sweepRows, images };
}
