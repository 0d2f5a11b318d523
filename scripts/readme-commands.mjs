#!/usr/bin/env node
// Every command the README shows in a shell block is run by a test: the engine commands
// (`npm run --silent cli -- ...`) and `scripts/demo.sh` are run here, verbatim and in order,
// and must exit 0; the set-up, build, test and packaging commands are what `scripts/test.sh`
// and the integration suite run, and this checks that they still do. A new command in the
// README that neither runs here nor is covered fails the check, so it cannot go stale.
//   node scripts/readme-commands.mjs [--list] [--skip=<text>]   (--skip: while developing, not in CI)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (f) => fs.readFileSync(path.join(repo, f), 'utf8');

/** The command lines of the README's ```sh blocks, comments and blank lines dropped. */
export function shellCommands(markdown) {
  const out = [];
  let inSh = false;
  for (const raw of markdown.split('\n')) {
    if (/^```/.test(raw.trim())) {
      inSh = !inSh && /^```(sh|bash|shell)\s*$/.test(raw.trim());
      continue;
    }
    if (!inSh) continue;
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line && !line.startsWith('#')) out.push(line);
  }
  return out;
}

// Commands another part of the test run executes, each with the evidence that it still does.
const covered = [
  { re: /^scripts\/test\.sh$/, by: '.ci/run', holds: () => /scripts\/test\.sh/.test(read('.ci/run')) },
  { re: /^scripts\/setup\.sh( --with-browser)?( && npm run test:unit)?$/, by: 'scripts/test.sh (set-up; test:unit is a subset of npm test)', holds: () => /scripts\/setup\.sh/.test(read('scripts/test.sh')) && /--without webview/.test(read('package.json')) },
  { re: /^(ONNXRUNTIME_NODE_INSTALL=skip )?npm ci$/, by: 'scripts/setup.sh', holds: () => /npm ci/.test(read('scripts/setup.sh')) },
  { re: /^npm test$/, by: 'scripts/test.sh', holds: () => /^npm test$/m.test(read('scripts/test.sh')) },
  { re: /^npm run build$/, by: 'npm test (its first step)', holds: () => /"test": "npm run build/.test(read('package.json')) },
  { re: /^npm run package$/, by: 'the integration suite', holds: () => /npm run package/.test(read('test/integration/run.mjs')) },
  { re: /^code --install-extension \S+\.vsix$/, by: 'the integration suite (code-server --install-extension)', holds: () => /'--install-extension', vsix/.test(read('test/integration/run.mjs')) },
];
const runsHere = (c) => /^npm run --silent cli -- /.test(c) || c === 'scripts/demo.sh';

function main() {
  const commands = shellCommands(read('README.md'));
  const problems = [];
  const toRun = [];
  for (const c of commands) {
    if (runsHere(c)) {
      toRun.push(c);
      continue;
    }
    const cov = covered.find((k) => k.re.test(c));
    if (!cov) problems.push(`README command not run by any test: ${c}`);
    else if (!cov.holds()) problems.push(`README command "${c}" is said to be run by ${cov.by}, which no longer runs it`);
    else console.log(`covered  ${c}  (${cov.by})`);
  }
  if (process.argv.includes('--list')) {
    for (const c of toRun) console.log(`runs     ${c}`);
  } else {
    // The engine commands run in a scratch copy of the bundled model and data, so they write
    // their outputs where the README says without touching (or tripping over) the checkout's.
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'short-lvlm-readme-'));
    for (const f of ['package.json', 'dist', 'node_modules', 'data', 'scripts']) fs.symlinkSync(path.join(repo, f), path.join(scratch, f));
    fs.cpSync(path.join(repo, 'models', 'tiny-llava'), path.join(scratch, 'models', 'tiny-llava'), { recursive: true });
    const skip = process.argv.find((a) => a.startsWith('--skip='))?.slice(7);
    for (const c of toRun) {
      if (skip && c.includes(skip)) {
        console.log(`skipped  ${c}`);
        continue;
      }
      const t = Date.now();
      console.log(`run      ${c}`);
      const r = spawnSync('bash', ['-c', c], { cwd: c.startsWith('scripts/') ? repo : scratch, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
      if (r.status !== 0) problems.push(`README command failed (exit ${r.status}): ${c}\n${(r.stdout + r.stderr).split('\n').slice(-15).join('\n')}`);
      else console.log(`ok       ${c} (${((Date.now() - t) / 1000).toFixed(0)} s)`);
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log(`${commands.length} README commands: ${toRun.length} run here, the others covered`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
