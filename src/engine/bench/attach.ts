// Benchmark results as the report schema has them (one row shape for the CLI's table and JSON,
// the extension and the Benchmark panel), and stored by the engine into each benchmarked
// package's report so that its Benchmark panel can show them.

import * as fs from 'fs';
import * as path from 'path';
import { REPORT_FILE } from '../../protocol/files';
import type { BenchmarkReport, BenchRow, Report } from '../../protocol/report';
import type { ModelBench } from './evaluate';

/** Rows of the report schema from the measured models (the first is the reference). */
export function toBenchmarkReport(results: Omit<ModelBench, 'answers'>[], evalFile: string): BenchmarkReport {
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
    prefillMsMean: r.prefillMsMean,
    decodeMsMean: r.decodeMsMean,
  }));
  const items = base ? Object.values(base.families).reduce((a, f) => a + f.n, 0) : 0;
  return { evalFile, items, rows };
}

/** The report file of a model path (a folder or a file inside it), if there is one. */
export function reportOf(model: string): string | undefined {
  const dir = fs.existsSync(model) && fs.statSync(model).isDirectory() ? model : path.dirname(model);
  const file = path.join(dir, REPORT_FILE);
  return fs.existsSync(file) ? file : undefined;
}

/**
 * Writes `benchmark` into the report of every model folder that has one (write, then rename,
 * so an open report is never read half written). Returns the reports updated.
 */
export function attachBenchmark(models: string[], benchmark: BenchmarkReport, onError?: (file: string, e: Error) => void): string[] {
  const updated: string[] = [];
  for (const m of models) {
    const file = reportOf(m);
    if (!file) continue;
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
