// Benchmark (not a test): calibration of a generated real-size package (bench/genPackage.ts)
// with ~600-token samples, stage by stage, printing each stage's seconds and peak RSS (the
// high-water mark is reset between stages through /proc/self/clear_refs).
//   node out/bench/realSize.js <package> <calib.json> <samples> <whole|layerwise|auto> [--no-scp]

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadCalibration } from '../src/engine/data/datasets';
import { calibrate, CalibrationSession } from '../src/engine/method/calibrate';
import { DEFAULT_OPTIONS, pruneWithStats } from '../src/engine/method/shortLvlm';
import { openPackage } from '../src/engine/package/modelPackage';
import { Execution } from '../src/engine/runtime/execution';
import { formatEta } from '../src/protocol/format';

function peakMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function resetPeak(): void {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  } catch {
    // not Linux: peaks are then cumulative
  }
}

async function stage<T>(name: string, f: () => Promise<T>): Promise<T> {
  resetPeak();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const r = await f();
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  console.log(`${name.padEnd(28)} ${((performance.now() - t0) / 1000).toFixed(1).padStart(8)} s  CPU ${cpu.toFixed(1).padStart(7)} s  peak RSS ${peakMiB().toFixed(0).padStart(6)} MiB`);
  return r;
}

async function main(): Promise<void> {
  const [model, calib, n, execution] = process.argv.slice(2);
  const scp = !process.argv.includes('--no-scp');
  const pkg = openPackage(model);
  const samples = loadCalibration(calib, Number(n));
  const bytes = fs.readdirSync(path.join(pkg.root, 'onnx')).reduce((a, f) => a + fs.statSync(path.join(pkg.root, 'onnx', f)).size, 0);
  console.log(`${path.basename(pkg.root)}: ${pkg.text.numLayers} layers, hidden ${pkg.text.hiddenSize}, ${(bytes / 2 ** 30).toFixed(2)} GiB of ONNX files; ${samples.length} samples; execution ${execution}; machine ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.cpus().length} cores`);
  const cs = await stage('open (frontend, decoder)', () => CalibrationSession.open(pkg, { execution: execution as Execution }));
  console.log(`  ${cs.execution.reason}`);
  try {
    let tokens = 0;
    const stats = await stage('calibrate', () =>
      calibrate(cs, samples, {
        topP: 0.1,
        keepMode: 'count',
        onProgress: (p) => process.stderr.write(`\r  ${p.stage} ${p.done}/${p.total}${p.etaSeconds !== undefined ? ` ETA ${formatEta(p.etaSeconds)}` : ''}   `),
      }).then((s) => {
        tokens = s.tokens;
        process.stderr.write('\n');
        return s;
      }),
    );
    console.log(`  ${(tokens / samples.length).toFixed(0)} tokens a sample`);
    const out = path.join(os.tmpdir(), `realsize-${process.pid}`);
    const o = { ...DEFAULT_OPTIONS, scp };
    const res = await stage(scp ? 'compensate (SCP) + write' : 'write pruned package', () => pruneWithStats(pkg, cs, samples, stats, o, { outDir: out }, {}, {}));
    console.log(`  removed layers ${res.report.removed.join(', ')}`);
    fs.rmSync(out, { recursive: true, force: true });
  } finally {
    await cs.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
