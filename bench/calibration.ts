// Benchmark (not a test): the cost of Short-LVLM's one-pass calibration against a plain
// forward pass of the same model on the same samples (the floor for any one-pass method),
// and peak memory for 64 and 1024 samples (the calibration set is cycled to reach 1024).
// Calibration variants: statistics inside onnxruntime (the default), in JavaScript from the
// taps (the earlier path), and layer-wise execution. Each measurement runs in a fresh
// process; peak memory is that process's VmHWM.
//   node out/bench/calibration.js [model] [calib.json] [sample counts, e.g. 64,1024]

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CalibSample, loadCalibration } from '../src/engine/data/datasets';
import { calibrate, CalibrationSession } from '../src/engine/method/calibrate';
import { openPackage } from '../src/engine/package/modelPackage';
import { DecoderRunner } from '../src/engine/runtime/decoderRunner';
import { openFrontend } from '../src/engine/runtime/frontend';

const repo = path.resolve(__dirname, '../..');
// Child processes are called as: calibration.js measure <kind> <n> <model> <calib>.
const child = process.argv[2] === 'measure';
const args = child ? process.argv.slice(5) : process.argv.slice(2);
const model = args[0] || path.join(repo, 'models/tiny-llava');
const calib = args[1] || path.join(repo, 'data/tiny-vqa/calib.json');
const counts = (args[2] || '64,1024').split(',').map(Number);

const KINDS: Record<string, { label: string; execution?: 'whole' | 'layerwise'; statsInGraph?: boolean }> = {
  forward: { label: 'plain forward' },
  calibrate: { label: 'calibration, in-graph', execution: 'whole', statsInGraph: true },
  'calibrate-js': { label: 'calibration, JS stats', execution: 'whole', statsInGraph: false },
  'calibrate-layerwise': { label: 'calibration, layer-wise', execution: 'layerwise', statsInGraph: true },
};

function cycle(samples: CalibSample[], n: number): CalibSample[] {
  return Array.from({ length: n }, (_, i) => samples[i % samples.length]);
}

function peakMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function measure(kind: string, n: number): Promise<void> {
  const pkg = openPackage(model);
  const samples = cycle(loadCalibration(calib), n);
  let seconds: number;
  let cpu0 = process.cpuUsage();
  if (kind === 'forward') {
    const fe = await openFrontend(pkg, { threads: 1 });
    const dec = await DecoderRunner.fromFile(pkg.decoder, { threads: 1 });
    cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const s of samples) {
      const enc = await fe.encode(s.messages, s.image, false);
      await fe.prefill(enc, dec);
    }
    seconds = (performance.now() - t0) / 1000;
    await dec.dispose();
    await fe.dispose();
  } else {
    const k = KINDS[kind];
    const cs = await CalibrationSession.open(pkg, { threads: 1, execution: k.execution, statsInGraph: k.statsInGraph });
    cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await calibrate(cs, samples, { topP: 0.1, keepMode: 'count' });
    seconds = (performance.now() - t0) / 1000;
    await cs.dispose();
  }
  const c = process.cpuUsage(cpu0);
  const cpuSeconds = (c.user + c.system) / 1e6;
  process.stdout.write(JSON.stringify({ kind, n, seconds, cpuSeconds, perSecond: n / seconds, perCpuSecond: n / cpuSeconds, peakMiB: peakMiB() }) + '\n');
}

async function main(): Promise<void> {
  if (child) return measure(process.argv[3], Number(process.argv[4]));
  console.log(`model ${path.relative(repo, model)}, calibration ${path.relative(repo, calib)}`);
  // One onnxruntime thread everywhere, and CPU time besides wall time: on a shared machine
  // the CPU time of each process is the steadier measure of its cost.
  console.log('pass                      samples  seconds  CPU s  samples/CPU s  vs forward  peak RSS MiB');
  for (const n of counts) {
    let forward = NaN;
    for (const kind of Object.keys(KINDS)) {
      const out = execFileSync(process.execPath, [__filename, 'measure', kind, String(n), model, calib], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const r = JSON.parse(out.trim().split('\n').pop()!);
      if (kind === 'forward') forward = r.perCpuSecond;
      const rel = kind === 'forward' ? '' : `${(r.perCpuSecond / forward).toFixed(2)}x`;
      console.log(`${KINDS[kind].label.padEnd(25)} ${String(n).padStart(7)}  ${r.seconds.toFixed(1).padStart(7)}  ${r.cpuSeconds.toFixed(1).padStart(5)}  ${r.perCpuSecond.toFixed(1).padStart(13)}  ${rel.padStart(10)}  ${r.peakMiB.toFixed(0).padStart(12)}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
