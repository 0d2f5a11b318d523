// Benchmark results as the report schema has them, and stored into each benchmarked package's
// short-lvlm-report.json so its Benchmark panel can show them. Shared by the CLI and the host.

import * as fs from 'fs';
import * as path from 'path';
import type { BenchmarkReport, BenchRow, Report } from '../../protocol/report';

export interface BenchResult {
  model: string;
  numLayers: number;
  accuracy: number;
  families: BenchRow['families'];
  samplesPerSecond: number;
  sizeBytes: number;
  relativeAccuracy?: number;
  agreement?: number;
  klMean?: number;
}

export function toBenchmarkReport(results: BenchResult[], evalFile: string): BenchmarkReport {
  const base = results[0];
  const rows: BenchRow[] = results.map((r, i) => ({
    model: r.model,
    label: i === 0 ? `${path.basename(r.model)} (original)` : path.basename(r.model),
    numLayers: r.numLayers,
    accuracy: r.accuracy,
    families: r.families,
    relativeAccuracy: i === 0 ? 1 : r.relativeAccuracy,
    agreement: i === 0 ? 1 : r.agreement,
    klMean: i === 0 ? 0 : r.klMean,
    samplesPerSecond: r.samplesPerSecond,
    speedup: base && base.samplesPerSecond > 0 ? r.samplesPerSecond / base.samplesPerSecond : undefined,
    sizeBytes: r.sizeBytes,
  }));
  const items = base ? Object.values(base.families).reduce((a, f) => a + f.n, 0) : 0;
  return { evalFile, items, rows };
}

/**
 * Writes `benchmark` into the report of every model folder that has one (write, then rename,
 * so an open report is never read half written). Returns the reports updated.
 */
export function attachBenchmark(models: string[], benchmark: BenchmarkReport, onError?: (file: string, e: Error) => void): string[] {
  const updated: string[] = [];
  for (const m of models) {
    const dir = fs.existsSync(m) && fs.statSync(m).isDirectory() ? m : path.dirname(m);
    const file = path.join(dir, 'short-lvlm-report.json');
    if (!fs.existsSync(file)) continue;
    try {
      const report = JSON.parse(fs.readFileSync(file, 'utf8')) as Report;
      report.benchmark = { ...benchmark, sweep: benchmark.sweep ?? report.benchmark?.sweep };
      const tmp = `${file}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, JSON.stringify(report, null, 1) + '\n');
      fs.renameSync(tmp, file);
      updated.push(file);
    } catch (e) {
      onError?.(file, e as Error);
    }
  }
  return updated;
}
