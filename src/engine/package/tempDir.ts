// A new, uniquely named folder created with the user's umask. fs.mkdtemp creates 0700
// folders: a pruned package renamed from one would be private while its source was
// world-readable, so temporary folders that become outputs are made here instead.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export function makeTempDir(parent: string, prefix: string): string {
  for (let attempt = 0; ; attempt++) {
    const dir = path.join(parent, prefix + crypto.randomBytes(6).toString('hex'));
    try {
      fs.mkdirSync(dir); // mode 0o777 minus the umask, as any folder the user makes
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 10) throw e;
    }
  }
}
