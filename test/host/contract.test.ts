// The contract between engine, host and webview (issue 14 item 1) holds: the settings in
// package.json say what the protocol's option table says, names are defined once, the host
// imports nothing from the engine, every quick pick that can lose focus keeps it, and the CLI
// and the extension name an output folder the same way.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { outputName, outputTag, REPORT_FILE } from '../../src/protocol/files';
import { PANEL_KINDS, panelViewType, REPORT_VIEW_TYPE } from '../../src/protocol/messages';
import { DEFAULT_PRUNE_OPTIONS, DEFAULT_RUN_OPTIONS, METHODS, OptionError, optionsFromSettings, OptionSpec, PRUNE_OPTION_SPECS, RATIO_RANGE, RUN_OPTION_SPECS } from '../../src/protocol/options';
import { VARIANTS, writeVariant } from '../support/engineFixtures';

const repo = path.resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
const props: Record<string, any> = pkg.contributes.configuration.properties;

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(repo, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    return e.isDirectory() ? sources(rel) : e.name.endsWith('.ts') ? [rel] : [];
  });
}
const read = (rel: string) => fs.readFileSync(path.join(repo, rel), 'utf8');

test('package.json settings follow the option table: names, allowed values, defaults, bounds', () => {
  const defaults: Record<string, unknown> = { ...DEFAULT_PRUNE_OPTIONS, ...DEFAULT_RUN_OPTIONS };
  for (const [key, s] of Object.entries({ ...PRUNE_OPTION_SPECS, ...RUN_OPTION_SPECS }) as [string, OptionSpec][]) {
    if (!s.setting) continue;
    const p = props[`shortLvlm.${s.setting}`];
    assert.ok(p, `package.json declares shortLvlm.${s.setting}`);
    const dflt = defaults[key];
    // Options the engine derives (rank, samples, candidates) default to 0 / "" = "let the engine
    // decide", or to the option's own word for it (compensation and execution: "auto").
    assert.deepEqual(p.default, dflt ?? s.unset ?? (p.type === 'string' ? '' : 0), `shortLvlm.${s.setting} default`);
    if (s.kind === 'enum') assert.deepEqual(p.enum, [...s.values!], `shortLvlm.${s.setting} values`);
    if (s.kind === 'flag') assert.equal(p.type, 'boolean');
    if (s.kind === 'integer') assert.equal(p.type, 'integer');
    if (s.kind === 'number' && s.max !== undefined) assert.equal(p.maximum, s.max, `shortLvlm.${s.setting} maximum`);
  }
  assert.equal(props['shortLvlm.ratio'].maximum, RATIO_RANGE.max);
});

test('settings are checked as the CLI checks its flags, errors naming the setting', () => {
  const settings = (values: Record<string, unknown>) => optionsFromSettings((k, d) => (k in values ? values[k] : d), 'shortLvlm.');
  // The defaults as the README's option table states them (seed has no setting).
  assert.deepEqual(settings({}), { ratio: 0.3, method: 'greedy', scp: true, scpTarget: 'down_proj', topP: 0.1, keepMode: 'count', features: 'kept' });
  assert.deepEqual(settings({ rank: 4, candidates: '8-15', samples: 16, scp: false }).candidates, [8, 15]);
  assert.equal(settings({ rank: 0 }).rank, undefined, '0 = automatic');
  const refuses = (values: Record<string, unknown>, re: RegExp) => assert.throws(() => settings(values), (e: Error) => e instanceof OptionError && re.test(e.message));
  refuses({ method: 'best' }, new RegExp(`^shortLvlm\\.method: must be one of ${METHODS.join(', ')}, got "best"`));
  refuses({ ratio: 0.7 }, /^shortLvlm\.ratio: must be a number in \(0, 0\.5\]/);
  refuses({ candidates: '15-8' }, /^shortLvlm\.candidates: "15-8" is an empty range/);
  refuses({ rank: 2.5 }, /^shortLvlm\.rank: must be a positive integer/);
  refuses({ scp: 'yes' }, /^shortLvlm\.scp: must be true or false/);
});

test('panels and the report editor are declared as the protocol names them', () => {
  for (const k of PANEL_KINDS) assert.ok(pkg.activationEvents.includes(`onWebviewPanel:${panelViewType(k)}`), `activation event for ${k}`);
  const editor = pkg.contributes.customEditors.find((e: { viewType: string }) => e.viewType === REPORT_VIEW_TYPE);
  assert.ok(editor, `custom editor ${REPORT_VIEW_TYPE}`);
  assert.deepEqual(editor.selector, [{ filenamePattern: REPORT_FILE }]);
});

test('names are defined once: the report file name appears in src/protocol only', () => {
  const hits = [...sources('src'), ...sources('webview')].filter((f) => read(f).includes(REPORT_FILE));
  assert.deepEqual(hits, [path.join('src', 'protocol', 'files.ts')]);
  for (const literal of ["'recipe.json'", "'.partial-'", "'-short-lvlm-'", "'short-lvlm-session-'", "'Layer Redundancy'"]) {
    const where = [...sources('src'), ...sources('webview')].filter((f) => read(f).includes(literal) && !f.startsWith(path.join('src', 'protocol')));
    assert.deepEqual(where, [], `${literal} outside src/protocol`);
  }
});

test('the host imports nothing from the engine; the webview only the protocol', () => {
  const importsOf = (f: string) => [...read(f).matchAll(/^(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  for (const f of [...sources('src/host'), 'src/extension.ts']) {
    for (const spec of importsOf(f)) assert.ok(!/(^|\/)engine(\/|$)/.test(spec), `${f} imports ${spec}`);
  }
  for (const f of sources('webview')) {
    for (const spec of importsOf(f)) assert.ok(!/src\//.test(spec) || /src\/protocol\//.test(spec), `${f} imports ${spec}`);
  }
});

test('every quick pick and input box of the host keeps its focus (ignoreFocusOut)', () => {
  let calls = 0;
  for (const f of sources('src/host')) {
    const text = read(f);
    for (const m of text.matchAll(/\bwindow\.(showQuickPick|showInputBox)\(/g)) {
      // The call's text up to its closing parenthesis.
      let depth = 0;
      let end = m.index! + m[0].length - 1;
      for (; end < text.length; end++) {
        if (text[end] === '(') depth++;
        else if (text[end] === ')' && --depth === 0) break;
      }
      const call = text.slice(m.index, end + 1);
      const line = text.slice(0, m.index).split('\n').length;
      assert.match(call, /ignoreFocusOut:\s*true/, `${f}:${line} ${m[1]} without ignoreFocusOut`);
      calls++;
    }
  }
  assert.ok(calls >= 7, `found ${calls} quick inputs`);
});

test('the CLI and the extension name an output folder the same way', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'contract-'));
  try {
    const m = writeVariant(tmp, VARIANTS[0], { numLayers: 4 });
    const r = spawnSync(process.execPath, [path.join(repo, 'dist', 'cli.js'), 'prune', m.dir, '--layers', '2,1', '--no-scp', '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout).out as string;
    // What the extension computes for the same choice (commands.ts: outputTag of the merged options).
    const host = outputName(path.basename(m.dir), outputTag({ ...DEFAULT_PRUNE_OPTIONS, layers: [1, 2], scp: false }));
    assert.equal(path.basename(out), host);
    assert.equal(host, `${VARIANTS[0].name}-short-lvlm-l1-2`);
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, layers: [1, 2] }), 'l1-2-scp');
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, method: 'cosine', ratio: 0.2, scp: false }), 'cosine-r0.2-noscp');
    // The suffix names a compensation other than the method's own: none for greedy, SCP for the others.
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS }), 'greedy-r0.3');
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, compensation: 'scp' }), 'greedy-r0.3-scp');
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, compensation: 'ls' }), 'greedy-r0.3-ls');
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, method: 'svl' }), 'svl-r0.3');
    assert.equal(outputTag({ ...DEFAULT_PRUNE_OPTIONS, method: 'svl', compensation: 'ls' }), 'svl-r0.3-ls');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
