// Bundles the extension host, the engine process and the CLI (Node, CommonJS), and the
// webview scripts (browser). Native and heavy runtime packages stay external: they are
// shipped in node_modules inside the .vsix.
import * as esbuild from 'esbuild';
import * as fs from 'fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
const external = ['vscode', 'onnxruntime-node', '@huggingface/transformers', 'sharp'];

const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  external,
  logLevel: 'warning',
};

const entries = [
  { entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js' },
  ...(fs.existsSync('src/extension.ts') ? [{ entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js' }] : []),
  ...(fs.existsSync('src/engine/worker.ts') ? [{ entryPoints: ['src/engine/worker.ts'], outfile: 'dist/engineWorker.js' }] : []),
];
const webview = { bundle: true, platform: 'browser', format: 'iife', target: 'es2022', sourcemap: !production, minify: production, logLevel: 'warning' };
// The report panels (dist/webview.js) and the run forms with the sweep's chart (dist/forms.js).
const web = [
  ['webview/main.ts', 'dist/webview.js'],
  ['webview/forms.ts', 'dist/forms.js'],
]
  .filter(([src]) => fs.existsSync(src))
  .map(([src, out]) => ({ ...webview, entryPoints: [src], outfile: out }));

const configs = [...entries.map((e) => ({ ...node, ...e })), ...web];
if (watch) {
  for (const c of configs) (await esbuild.context(c)).watch();
} else {
  await Promise.all(configs.map((c) => esbuild.build(c)));
}
