// Bundles the extension host, the engine process and the CLI (Node, CommonJS), and the
// webview scripts (browser). Native and heavy runtime packages stay external: they are
// shipped in node_modules inside the .vsix.
import * as esbuild from 'esbuild';
import * as fs from 'fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
const external = ['vscode', 'onnxruntime-node', '@huggingface/transformers', 'sharp'];

// Node bundles always carry a linked source map, so logged stacks point into src/ (the engine
// runs with --enable-source-maps, the host maps its own frames: src/host/stackMap.ts). The
// production maps leave the sources out: positions and file names are all a stack needs.
const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'linked',
  sourcesContent: !production,
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
// The report panels (dist/webview.js), "Ask both models" (its own page: it shows answers, not a
// report) and the run forms with the sweep's chart (dist/forms.js).
const web = [
  ['webview/main.ts', 'dist/webview.js'],
  ['webview/ask/main.ts', 'dist/askWebview.js'],
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
