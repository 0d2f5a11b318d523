#!/usr/bin/env node
// `npm run cli -- ...`: runs the bundled CLI, or says in one line how to build it on a fresh
// clone (instead of Node's "Cannot find module" stack trace).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
if (!existsSync(cli)) {
  process.stderr.write('short-lvlm: the CLI is not built yet: run `npm run build` first (after `scripts/setup.sh` on a fresh clone)\n');
  process.exit(2);
}
createRequire(import.meta.url)(cli);
