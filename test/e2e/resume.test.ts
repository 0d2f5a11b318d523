// A calibration killed halfway (SIGKILL to the CLI's process) and started again with the same
// command resumes from its checkpoint and ends with the statistics, layer choice and report
// of a run that was never interrupted.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { calibrationCheckpoint } from '../../src/engine/jobs';
import { Report } from '../../src/protocol/report';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const TINY = path.join(ROOT, 'models', 'tiny-llava');
const CALIB = path.join(ROOT, 'data', 'tiny-vqa', 'calib.json');
const N = 32;

const args = (out: string) => [CLI, 'prune', TINY, '--calib', CALIB, '--method', 'svl', '--samples', String(N), '--no-scp', '--execution', 'whole', '--out', out];
const checkpointOf = (out: string) => calibrationCheckpoint(out);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function samplesDone(file: string): number {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { stats: { samples: number } }).stats.samples;
  } catch {
    return 0; // not written yet
  }
}

test('a calibration killed halfway resumes to the statistics of an uninterrupted run', async () => {
  assert.ok(fs.existsSync(CLI), 'run npm run build first');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'resume-'));
  try {
    const whole = path.join(tmp, 'uninterrupted');
    const r0 = spawnSync(process.execPath, [...args(whole), '--quiet'], { encoding: 'utf8' });
    assert.equal(r0.status, 0, r0.stderr);

    const out = path.join(tmp, 'killed');
    const cp = checkpointOf(out);
    const child = spawn(process.execPath, [...args(out), '--quiet'], { stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let finished = false;
    void exited.then(() => (finished = true));
    // Wait on the checkpoint (not on a clock): kill once a quarter of the samples are in it.
    while (!finished && samplesDone(cp) < N / 4) await sleep(20);
    assert.ok(!finished, 'the calibration ended before it could be killed');
    child.kill('SIGKILL');
    assert.equal((await exited).signal, 'SIGKILL');
    const at = samplesDone(cp);
    assert.ok(at >= N / 4 && at < N, `checkpoint after ${at} of ${N} samples`);
    assert.ok(!fs.existsSync(out), 'no output from the killed run');
    assert.deepEqual(fs.readdirSync(tmp).sort(), ['uninterrupted'], 'nothing beside the output: the checkpoint is kept in the temporary folder');

    const r1 = spawnSync(process.execPath, args(out), { encoding: 'utf8' });
    assert.equal(r1.status, 0, r1.stderr);
    assert.match(r1.stderr, new RegExp(`resuming calibration after ${at} of ${N} samples`));
    assert.ok(!fs.existsSync(cp), 'checkpoint removed after the run');

    const a = JSON.parse(fs.readFileSync(path.join(whole, 'short-lvlm-report.json'), 'utf8')) as Report;
    const b = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8')) as Report;
    assert.deepEqual(b.layers, a.layers, 'per-layer statistics');
    assert.deepEqual(b.histograms, a.histograms);
    assert.deepEqual(b.tokenSamples, a.tokenSamples);
    assert.deepEqual(b.calibration.samples, a.calibration.samples);
    assert.deepEqual(b.calibration.tokensMean, a.calibration.tokensMean);
    assert.deepEqual(b.removed, a.removed);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
