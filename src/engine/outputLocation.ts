// Where an output can go, checked before any work, in the user's words.

import * as fs from 'fs';
import * as path from 'path';
import { describeError } from '../protocol/errorText';

/**
 * Fails early (before calibration, before any output) when `out` cannot become a folder:
 * the nearest existing ancestor must be a writable folder.
 */
export function checkOutputLocation(out: string): void {
  let p = path.resolve(out);
  // Walk up to the nearest path that exists (lstat: a dangling link exists too).
  for (;;) {
    try {
      fs.lstatSync(p);
      break;
    } catch (e) {
      // ENOTDIR: a file further up; found as the walk goes on.
      if (!['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) throw new Error(describeError(e));
      const up = path.dirname(p);
      if (up === p) return;
      p = up;
    }
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new Error(`cannot write ${out}: ${p} ${(e as NodeJS.ErrnoException).code === 'ELOOP' ? 'is a symbolic link that loops back on itself' : 'is a broken symbolic link'}`);
  }
  const target = path.resolve(out);
  if (p === target) {
    if (!st.isDirectory()) throw new Error(`cannot write ${out}: a file with that name exists (it is not a folder)`);
    p = path.dirname(p);
    st = fs.statSync(p);
  }
  if (!st.isDirectory()) throw new Error(`cannot write ${out}: ${p} is a file, not a folder`);
  try {
    fs.accessSync(p, fs.constants.W_OK);
  } catch {
    throw new Error(`cannot write ${out}: the folder ${p} is not writable (permission denied)`);
  }
}
