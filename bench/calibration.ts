// Benchmark (not a test): the cost of Short-LVLM's one-pass calibration against a plain
// forward pass of the same model on the same samples (the floor for any one-pass method),
// and peak memory for 64 and 1024 samples (the calibration set is cycled to reach 1024).
// Each measurement runs in a fresh process; peak memory is that process's VmHWM.
//   node out/bench/calibration.js [model] [calib.json]

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CalibSample, loadCalibration } from '../src/engine/data/datasets';
import { calibrate, CalibrationSession } from '../src/engine/method/calibrate';
import { openPackage } from '../src/engine/package/modelPackage';
import { DecoderRunner } from '../src/engine/runtime/decoderRunner';
import { VlmFrontend } from '../src/engine/runtime/vlmFrontend';

const repo = path.resolve(__dirname, '../..');
const model = process.argv[4] ?? path.join(repo, 'models/tiny-llava');
const calib = process.argv[5] ?? path.join(repo, 'data/tiny-vqa/calib.json');

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
  if (kind === 'forward') {
    const fe = await VlmFrontend.open(pkg);
    const dec = await DecoderRunner.fromFile(pkg.decoder);
    const t0 = performance.now();
    for (const s of samples) {
      const enc = await fe.encode(s.messages, s.image, false);
      await fe.prefill(enc, dec);
    }
    seconds = (performance.now() - t0) / 1000;
    await dec.dispose();
    await fe.dispose();
  } else {
    const cs = await CalibrationSession.open(pkg);
    const t0 = performance.now();
    await calibrate(cs, samples, { topP: 0.1, keepMode: 'count' });
    seconds = (performance.now() - t0) / 1000;
    await cs.dispose();
  }
  process.stdout.write(JSON.stringify({ kind, n, seconds, perSecond: n / seconds, peakMiB: peakMiB() }) + '\n');
}

async function main(): Promise<void> {
  if (process.argv[2]) return measure(process.argv[2], Number(process.argv[3]));
  console.log(`model ${path.relative(repo, model)}, calibration ${path.relative(repo, calib)}`);
  console.log('pass                     samples  seconds  samples/s  peak RSS MiB');
  const rows: Record<string, { perSecond: number }> = {};
  for (const n of [64, 1024]) {
    for (const kind of ['forward', 'calibrate']) {
      const out = execFileSync(process.execPath, [__filename, kind, String(n), model, calib], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const r = JSON.parse(out.trim().split('\n').pop()!);
      rows[`${kind}${n}`] = r;
      const label = kind === 'forward' ? 'plain forward' : 'calibration (TIS+cosine)';
      console.log(`${label.padEnd(24)} ${String(n).padStart(7)}  ${r.seconds.toFixed(1).padStart(7)}  ${r.perSecond.toFixed(1).padStart(9)}  ${r.peakMiB.toFixed(0).padStart(12)}`);
    }
    console.log(`  calibration costs ${(rows[`forward${n}`].perSecond / rows[`calibrate${n}`].perSecond).toFixed(2)}x a plain forward pass at ${n} samples`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
