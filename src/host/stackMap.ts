// Stack traces of the extension host's bundle, mapped back to src/. The engine process maps
// its own (it runs with --enable-source-maps), but the extension host is shared with other
// extensions, so turning source maps on for the whole process is not ours to do: frames in
// our bundle are translated here, from the bundle's .map file, when a stack is logged.
// No `vscode` import: unit tests run it under Node.

import * as fs from 'fs';
import { SourceMap } from 'module';
import * as path from 'path';

const maps = new Map<string, SourceMap | null>();

function mapOf(bundle: string): SourceMap | null {
  if (!maps.has(bundle)) {
    try {
      maps.set(bundle, new SourceMap(JSON.parse(fs.readFileSync(`${bundle}.map`, 'utf8'))));
    } catch {
      maps.set(bundle, null); // no map shipped: stacks stay as they are
    }
  }
  return maps.get(bundle)!;
}

/**
 * Rewrites `bundle:line:column` frames of a stack into `src/...ts:line:column` (paths relative
 * to the bundle's parent folder, i.e. the extension's root). Frames elsewhere are left alone.
 */
export function mapStack(stack: string, bundle: string = __filename): string {
  const map = mapOf(bundle);
  if (!map) return stack;
  const root = path.dirname(path.dirname(bundle));
  const escaped = bundle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return stack.replace(new RegExp(`${escaped}:(\\d+):(\\d+)`, 'g'), (whole, line: string, col: string) => {
    const e = map.findEntry(Number(line) - 1, Number(col) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (!e?.originalSource || e.originalLine === undefined) return whole;
    const src = e.originalSource.startsWith('file://') ? new URL(e.originalSource).pathname : path.resolve(path.dirname(bundle), e.originalSource);
    return `${path.relative(root, src)}:${e.originalLine + 1}:${(e.originalColumn ?? 0) + 1}`;
  });
}

/** An error's stack (mapped to src/), or its text when it has none. */
export function stackOf(e: unknown): string {
  const s = (e as Error)?.stack;
  return s ? mapStack(s) : String(e);
}
