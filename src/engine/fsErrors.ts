// File-system failures in the user's words. Node reports them as "EEXIST: file already
// exists, mkdir '/dev/null'"; the CLI and the extension show this module's sentence instead,
// always with the path concerned, on one line.

import * as fs from 'fs';
import * as path from 'path';

const ACTIONS: Record<string, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  mkdir: 'create the folder',
  mkdtemp: 'create a temporary folder in',
  rmdir: 'remove',
  rm: 'remove',
  unlink: 'remove',
  rename: 'move',
  copyfile: 'copy',
  link: 'link',
  scandir: 'list the folder',
  stat: 'look at',
  lstat: 'look at',
};

export function isErrnoError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((e as NodeJS.ErrnoException).code!);
}

/** The plain sentence for a file-system error, or undefined when `e` is not one. */
export function fsErrorSentence(e: unknown): string | undefined {
  if (!isErrnoError(e)) return undefined;
  const p = e.path ?? '(unknown path)';
  const dest = (e as NodeJS.ErrnoException & { dest?: string }).dest;
  const action = `${ACTIONS[e.syscall ?? ''] ?? 'use'} ${p}${dest ? ` to ${dest}` : ''}`;
  switch (e.code) {
    case 'ENOENT': return `cannot ${action}: no such file or folder`;
    case 'EEXIST': return e.syscall === 'mkdir' ? `cannot create the folder ${p}: a file with that name is in the way (it is not a folder)` : `cannot ${action}: it already exists`;
    case 'ENOTDIR': return `cannot ${action}: a part of this path is a file, not a folder`;
    case 'EISDIR': return `cannot ${action}: it is a folder, where a file was expected`;
    case 'ELOOP': return `cannot ${action}: its symbolic links loop back on themselves and never reach a file`;
    case 'EACCES':
    case 'EPERM': return `cannot ${action}: permission denied`;
    case 'ENOSPC': return `cannot ${action}: the disk is full (no space left on the device)`;
    case 'EDQUOT': return `cannot ${action}: the disk quota is used up`;
    case 'EROFS': return `cannot ${action}: the file system is read-only`;
    case 'ENAMETOOLONG': return `cannot ${action}: the path is too long`;
    case 'EMFILE':
    case 'ENFILE': return `cannot ${action}: too many files are open`;
    case 'EBUSY': return `cannot ${action}: it is in use by another program`;
    case 'EXDEV': return `cannot ${action}: source and destination are on different file systems`;
    default: return undefined;
  }
}

/** One line for the user: a plain sentence for file-system errors, else the error's first line. */
export function describeError(e: unknown): string {
  const fsText = fsErrorSentence(e);
  if (fsText) return fsText;
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0];
}

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
      if (!['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) throw new Error(fsErrorSentence(e) ?? describeError(e));
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
