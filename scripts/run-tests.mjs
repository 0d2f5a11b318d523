// Runs every compiled `*.test.js` under out/test with node's test runner. Node 20 takes no
// globs and, given a folder named `test`, would also execute every helper module in it.
//   node scripts/run-tests.mjs [folder ...] [--without name ...]
// `--without webview` leaves out the suites that need a browser (npm run test:unit).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const without = new Set(args.flatMap((a, i) => (args[i - 1] === '--without' ? [a] : [])));
const rootArgs = args.filter((a, i) => a !== '--without' && args[i - 1] !== '--without');
const roots = rootArgs.length ? rootArgs : ['out/test'];
const files = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!without.has(e.name)) walk(p);
    } else if (e.name.endsWith('.test.js')) files.push(p);
  }
};
roots.forEach(walk);
files.sort();
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
