// File-system failures in the user's words. Node reports them as "EEXIST: file already
// exists, mkdir '/dev/null'"; the CLI, the engine process and the extension show this
// module's sentence instead, always with the path concerned, on one line. Pure (no file
// access), so the host can use it as well as the engine.

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
