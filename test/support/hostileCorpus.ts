// Builders of broken, crafted and inconsistent model packages (issue 13), generated from the
// synthetic fixtures at test time: nothing binary is committed. Shared by the targeted tests
// and the mutation fuzzer, with the checks every case must pass (one clear line, no partial
// output, the source untouched).

import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { decodeModel, encodeModel, ModelProto, TensorProto } from '../../src/engine/onnx/proto';
import { WireWriter } from '../../src/engine/onnx/wire';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(REPO, 'dist', 'cli.js');

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(cwd: string, ...args: string[]): CliRun {
  const env = { ...process.env };
  delete env.SHORT_LVLM_DEBUG;
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, cwd, timeout: 120000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI in the background (for cancel and kill tests). */
export function startCli(cwd: string, ...args: string[]) {
  const env = { ...process.env };
  delete env.SHORT_LVLM_DEBUG;
  return spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What no run may show: a stack frame, a V8 fatal error, a raw errno code or an internal JS error. */
const INTERNAL = /^\s+at |FATAL ERROR|Fatal JavaScript|Maximum call stack|\b(TypeError|RangeError|ReferenceError)\b|^E[A-Z]+:|\bE(EXIST|NOTDIR|LOOP|ACCES|NOSPC|NOENT)\b/m;

/** A failure as the user must see it: non-zero exit (not a signal), one line naming the problem. */
export function assertCleanFailure(r: CliRun, re: RegExp, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}; stderr: ${r.stderr}`);
  assert.notEqual(r.status, 0, `${what}: should fail (stdout: ${r.stdout})`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got ${JSON.stringify(r.stderr.slice(0, 2000))}`);
  assert.match(lines[0], /^short-lvlm: /, what);
  assert.doesNotMatch(lines[0], INTERNAL, `${what}: internal words in ${lines[0]}`);
  assert.match(lines[0], re, `${what}: ${lines[0]}`);
}

export function isInternal(message: string): boolean {
  return INTERNAL.test(message);
}

export function copyPackage(src: string, dst: string): string {
  fs.rmSync(dst, { recursive: true, force: true });
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

/** Decodes a decoder file, lets `edit` change it, writes it back (no validation on the way). */
export function editDecoder(file: string, edit: (m: ModelProto) => void): void {
  const m = decodeModel(fs.readFileSync(file));
  edit(m);
  fs.writeFileSync(file, encodeModel(m));
}

export function editJson(file: string, edit: (j: any) => void): void {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(j);
  fs.writeFileSync(file, JSON.stringify(j, null, 2));
}

/** The largest inline float initializer (a layer weight). */
export function largestWeight(m: ModelProto): TensorProto {
  return m.graph.initializer.filter((t) => t.rawData && t.dataType === 1).sort((a, b) => b.rawData!.length - a.rawData!.length)[0];
}

/**
 * The bytes of a GraphProto node field (field 1) holding an `If` whose then-branch nests
 * `depth` graphs deep. Built from the inside out without recursion, so the test itself
 * cannot overflow; appended to a graph's unknown fields it decodes as one more node.
 */
export function deeplyNestedNode(depth: number): Uint8Array {
  let graph: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < depth; i++) {
    const node = new WireWriter();
    node.stringField(4, 'If');
    node.stringField(1, 'cond');
    node.stringField(2, `nested_${i}`);
    const attr = new WireWriter();
    attr.stringField(1, 'then_branch');
    attr.bytesField(6, graph);
    attr.uint(20, 5);
    node.bytesField(5, attr.finish());
    const g = new WireWriter();
    g.bytesField(1, node.finish());
    graph = g.finish();
  }
  // `graph` holds one node field already: return its bytes as they are.
  return graph;
}

/** Folders next to a model or output left behind: edited sessions and partial writes. */
export function leftovers(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n.startsWith('.short-lvlm-session-') || n.includes('.partial-'));
}
