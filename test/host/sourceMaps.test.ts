// Logged stacks point into src/ (issue 15: the log showed minified frames). The engine process
// runs with source maps on, so an engine error's stack names the TypeScript file and line that
// threw; the extension host's frames are mapped from its bundle's .map when logged. The lines
// expected are found in the sources by their text, not taken from the mapper.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EngineClient, EngineError } from '../../src/host/engineClient';
import { mapStack } from '../../src/host/stackMap';

const repo = path.resolve(__dirname, '..', '..', '..');
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

/** 1-based line of the only line of `file` containing `text`. */
function lineOf(file: string, text: string): number {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const hits = lines.flatMap((l, i) => (l.includes(text) ? [i + 1] : []));
  assert.equal(hits.length, 1, `"${text}" once in ${file}`);
  return hits[0];
}

test("an engine error's stack names the source file and line that threw", async () => {
  const c = new EngineClient(path.join(repo, 'dist', 'engineWorker.js'), silent);
  try {
    const err = await c.request({ type: 'inspect', model: path.join(os.tmpdir(), 'no-such-model-dir', 'x.onnx') }).result.then(
      () => assert.fail('inspect of a missing file succeeded'),
      (e: EngineError) => e,
    );
    const src = path.join(repo, 'src', 'engine', 'package', 'modelPackage.ts');
    const top = err.details.stack?.split('\n').find((l) => /^\s+at /.test(l)) ?? '';
    assert.ok(top.includes(`${src}:${lineOf(src, 'no such file or folder')}:`), `first frame should be ${src}, got: ${top}`);
  } finally {
    c.dispose();
  }
});

test("the extension host's frames in a minified bundle map back to the TypeScript source", async () => {
  const esbuild = await import('esbuild');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stackmap-'));
  try {
    const src = path.join(dir, 'src', 'thrower.ts');
    fs.mkdirSync(path.dirname(src));
    fs.writeFileSync(src, ['export function outer(n: number): number {', '  return inner(n) + 1;', '}', '', 'function inner(n: number): number {', "  if (n > 0) throw new Error('boom from inner');", '  return n;', '}', ''].join('\n'));
    const bundle = path.join(dir, 'dist', 'bundle.js');
    // As esbuild.mjs builds the production bundles.
    await esbuild.build({ entryPoints: [src], outfile: bundle, bundle: true, platform: 'node', format: 'cjs', minify: true, sourcemap: 'linked', sourcesContent: false, logLevel: 'silent' });
    const stack = (() => {
      try {
        require(bundle).outer(1);
      } catch (e) {
        return (e as Error).stack!;
      }
      assert.fail('no error');
    })();
    assert.ok(stack.includes(`${bundle}:1:`), 'the raw stack points into the one-line bundle');
    const mapped = mapStack(stack, bundle);
    const frames = mapped.split('\n').filter((l) => l.includes('src/thrower.ts'));
    assert.ok(frames[0]?.includes(`src/thrower.ts:${lineOf(src, "throw new Error('boom")}:`), `throw site: ${mapped}`);
    assert.ok(frames[1]?.includes(`src/thrower.ts:${lineOf(src, 'return inner(n) + 1')}:`), `caller: ${mapped}`);
    assert.ok(!mapped.includes(bundle), 'no bundle frame left unmapped');
    // Without a map the stack is returned unchanged.
    fs.rmSync(`${bundle}.map`);
    assert.equal(mapStack(stack, path.join(dir, 'dist', 'other.js')), stack);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
