// The .vsix the integration test installs: built with `npm run package` (as a user would) and
// checked before it is installed: the runtime files for its target are in, development files
// are out, and its size is printed so that it can be recorded.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Entry names of a zip file, from its central directory (no unzip tool needed). */
export function zipEntries(file) {
  const buf = fs.readFileSync(file);
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file} is not a zip file (no end of central directory)`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const names = [];
  for (let k = 0; k < count; k++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: damaged central directory at entry ${k}`);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    names.push(buf.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

/** Runs `npm run package` in the repo and returns the .vsix it wrote. */
export function packageExtension(repo, pkg, log) {
  const vsix = path.join(repo, `${pkg.name}-linux-x64-${pkg.version}.vsix`);
  fs.rmSync(vsix, { force: true });
  const env = { ...process.env };
  delete env.npm_config_user_agent;
  const r = spawnSync('npm', ['run', '--silent', 'package'], { cwd: repo, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run package failed (exit ${r.status}):\n${(r.stdout + r.stderr).trim().split('\n').slice(-15).join('\n')}`);
  if (!fs.existsSync(vsix)) throw new Error(`npm run package wrote no ${path.basename(vsix)}:\n${r.stdout}`);
  log(`  ${(r.stdout.trim().split('\n').pop() ?? '').trim()}`);
  return vsix;
}

/**
 * What the package must and must not hold. Returns a one-line summary (files, size).
 * Throws with every problem found.
 */
export function checkVsixContents(vsix, readme) {
  const names = zipEntries(vsix);
  const problems = [];
  // Every relative image of the README must be in the package, where VS Code looks for it.
  for (const m of fs.readFileSync(readme, 'utf8').matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)) {
    if (!/^[a-z]+:/i.test(m[1]) && !names.includes(`extension/${m[1]}`)) problems.push(`README image ${m[1]} is not in the package`);
  }
  const has = (re) => names.some((n) => re.test(n));
  const must = [
    [/^extension\/package\.json$/, 'package.json'],
    [/^extension\/dist\/extension\.js$/, 'the extension bundle'],
    [/^extension\/dist\/engineWorker\.js$/, 'the engine process bundle'],
    [/^extension\/dist\/webview\.js$/, 'the webview bundle'],
    [/^extension\/dist\/cli\.js$/, 'the CLI bundle'],
    [/^extension\/dist\/engineWorker\.js\.map$/, "the engine bundle's source map"],
    [/^extension\/dist\/extension\.js\.map$/, "the extension bundle's source map"],
    [/^extension\/node_modules\/onnxruntime-node\/bin\/napi-v\d+\/linux\/x64\/onnxruntime_binding\.node$/, "onnxruntime-node's Linux x64 binding"],
    [/^extension\/node_modules\/onnxruntime-node\/bin\/napi-v\d+\/linux\/x64\/libonnxruntime\.so/, "onnxruntime's Linux x64 library"],
    [/^extension\/node_modules\/@huggingface\/transformers\/dist\/transformers\.node\.c?js$/, "transformers.js's Node build"],
    [/^extension\/models\/tiny-llava\/onnx\/decoder_model_merged\.onnx$/, 'the bundled model'],
    [/^extension\/data\/tiny-vqa\/calib\.json$/, 'the bundled calibration data'],
    [/^extension\/media\/webview\.css$/, "the panels' stylesheet"],
    [/^extension\/docs\/screenshots\/redundancy-dark\.png$/, "the README's screenshots"],
  ];
  for (const [re, what] of must) if (!has(re)) problems.push(`missing ${what} (${re.source})`);
  const mustNot = [
    [/^extension\/(test|tools|src|bench|scripts|webview|out|\.ci|\.github)\//, 'development folders'],
    [/\/bin\/napi-v\d+\/(darwin|win32)\/|\/bin\/napi-v\d+\/linux\/arm64\//, 'binaries of other platforms'],
    [/^extension\/node_modules\/onnxruntime-web\//, 'the WebAssembly runtime'],
    [/^extension\/node_modules\/(typescript|esbuild|@vscode\/vsce|playwright-core|chart\.js)\//, 'development dependencies'],
    [/^extension\/models\/[^/]*-short-lvlm-/, 'pruned outputs'],
    [/^extension\/models\/(?!tiny-llava\/)/, 'models other than the bundled demo (test fixtures)'],
    [/^extension\/data\/tiny-vqa\/reference\//, 'reference dumps'],
    // The Node bundles' maps ship (stacks in the log point into src/); no other map does.
    [/(?<!^extension\/dist\/(extension|engineWorker|cli)\.js)\.map$|\.tsbuildinfo$|\.vsix$/, 'source maps, build info or packages'],
  ];
  for (const [re, what] of mustNot) {
    const bad = names.filter((n) => re.test(n));
    if (bad.length) problems.push(`${what} included: ${bad.slice(0, 3).join(', ')}${bad.length > 3 ? ` and ${bad.length - 3} more` : ''}`);
  }
  const bytes = fs.statSync(vsix).size;
  const limit = 60 * 2 ** 20;
  if (bytes > limit) problems.push(`${(bytes / 2 ** 20).toFixed(1)} MB, more than the ${limit / 2 ** 20} MB budget`);
  if (problems.length) throw new Error(`${path.basename(vsix)}:\n  ${problems.join('\n  ')}`);
  return `${path.basename(vsix)}: ${names.length} files, ${(bytes / 2 ** 20).toFixed(1)} MB`;
}
