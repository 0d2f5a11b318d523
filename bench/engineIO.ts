// Benchmark (not a test): reading, layer discovery, surgery and writing on a generated decoder
// of real size (24 layers, hidden 896, 14/2 heads, intermediate 4864, vocab 32000: ~0.5 B
// parameters with embeddings, fp32, external data in 1 GiB chunks). Each phase's peak memory
// is measured in a fresh process, so the generator's own memory does not count.
//   node out/bench/engineIO.js            generate (once) and measure
// Results are appended to bench/RESULTS.md by hand from the printed table.

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { discoverLayers } from '../src/engine/graph/layers';
import { OnnxFile } from '../src/engine/onnx/onnxFile';
import { decodeModel } from '../src/engine/onnx/proto';
import { checkPackageConsistency } from '../src/engine/package/consistency';
import { checkLoadsInRuntime } from '../src/engine/runtime/loadCheck';
import { openPackage } from '../src/engine/package/modelPackage';
import { writePrunedPackage } from '../src/engine/package/writePackage';
import { REAL_SIZE, writeSynthModel } from '../test/support/synthModels';

const root = path.resolve(__dirname, '../../bench/out');
const modelDir = path.join(root, 'real-size');

async function measure(phase: string): Promise<void> {
  const t0 = performance.now();
  const pkg = openPackage(modelDir);
  if (phase === 'decode') {
    // The protobuf alone, for comparison with `check`.
    const m = decodeModel(fs.readFileSync(pkg.decoder));
    report(phase, t0, { nodes: m.graph.node.length });
  } else if (phase === 'check') {
    // What a prune does before anything else (issue 13): decode, validate every tensor against
    // its data and the graph's topology, config against graph, weightless load in onnxruntime.
    const f = OnnxFile.open(pkg.decoder);
    checkPackageConsistency(pkg, f, discoverLayers(f.graph));
    const t1 = performance.now();
    await checkLoadsInRuntime(f.model, pkg.decoder);
    f.close();
    report(phase, t0, { runtimeLoadSeconds: Number(((performance.now() - t1) / 1000).toFixed(2)) });
  } else if (phase === 'read') {
    const f = OnnxFile.open(pkg.decoder);
    let bytes = 0;
    for (const t of f.graph.initializer) bytes += f.tensorBytes(t).length; // touch every weight
    f.close();
    report(phase, t0, { weightBytes: bytes });
  } else if (phase === 'discover') {
    const f = OnnxFile.open(pkg.decoder);
    const s = discoverLayers(f.graph);
    f.close();
    report(phase, t0, { layers: s.layers.length, nodes: f.graph.node.length });
  } else if (phase === 'prune') {
    const out = path.join(root, 'real-size-pruned');
    fs.rmSync(out, { recursive: true, force: true });
    const f = OnnxFile.open(pkg.decoder);
    const s = discoverLayers(f.graph);
    // Replace the retained partners' down projections too, as SCP does.
    const replace = new Map<string, Float32Array>();
    for (const l of [11, 12, 13, 14, 15, 16, 17]) {
      const t = f.initializerMap().get(s.layers[l].downProj!.name)!;
      const w = f.tensorFloat32(t);
      for (let i = 0; i < w.length; i++) w[i] *= 1.01;
      replace.set(t.name, w);
    }
    f.close();
    const r = writePrunedPackage(pkg, { remove: [10, 18, 19, 20, 21, 22, 23], replace, outDir: out });
    report(phase, t0, { removed: r.removed.length, outBytes: r.bytes });
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function report(phase: string, t0: number, extra: Record<string, number>): void {
  const seconds = (performance.now() - t0) / 1000;
  // VmHWM, not getrusage's maxrss: Linux carries maxrss over exec from the parent.
  const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  const peakMiB = hwm ? Number(hwm[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
  process.stdout.write(JSON.stringify({ phase, seconds, peakMiB, ...extra }) + '\n');
}

function main(): void {
  const phase = process.argv[2];
  if (phase) {
    void measure(phase);
    return;
  }
  if (!fs.existsSync(path.join(modelDir, 'config.json'))) {
    fs.mkdirSync(root, { recursive: true });
    const t0 = performance.now();
    writeSynthModel({ ...REAL_SIZE, dir: modelDir, style: 'decomposed', layout: 'optimum', externalChunkBytes: 2 ** 30, extras: false });
    console.error(`generated ${modelDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const sizes = fs.readdirSync(path.join(modelDir, 'onnx')).map((f) => `${f} ${(fs.statSync(path.join(modelDir, 'onnx', f)).size / 2 ** 20).toFixed(0)} MiB`);
  console.log(`model: ${sizes.join(', ')}`);
  console.log('phase      seconds  peak RSS MiB  notes');
  for (const phase of ['decode', 'check', 'read', 'discover', 'prune']) {
    const out = execFileSync(process.execPath, [__filename, phase], { encoding: 'utf8' });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    const notes = Object.entries(r).filter(([k]) => !['phase', 'seconds', 'peakMiB'].includes(k)).map(([k, v]) => `${k}=${v}`).join(' ');
    console.log(`${phase.padEnd(9)}  ${r.seconds.toFixed(2).padStart(7)}  ${r.peakMiB.toFixed(0).padStart(12)}  ${notes}`);
  }
}

main();
