// Pure helpers of the run manager (no `vscode` import, so unit tests run them under Node).

import * as fs from 'fs';
import * as path from 'path';
import { partialPrefix } from '../protocol/files';

export { progressText } from '../protocol/format';

/** Removes the engine's temporary siblings of `out` (left only when its process was killed). */
export function removePartials(out: string): string[] {
  const dir = path.dirname(out);
  const prefix = partialPrefix(path.basename(out));
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  for (const n of names) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  return names;
}
