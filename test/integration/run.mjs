// Integration test in a real VS Code extension host: code-server (offline, Node 24) driven
// through Debian's chromium with playwright-core. The extension under test is the .vsix a user
// would install: `npm run package` builds it, its contents are checked, and code-server
// installs it into an empty extensions folder. Scenario: prune the bundled tiny model from the
// explorer's context menu, check the output package, open the report and its panels and read
// the webviews' text, benchmark, cancel a run, survive an engine crash, prune a hand-made
// choice, ask both models a question from the Runs view; then each family miniature (Qwen2-VL,
// SmolVLM, Gemma 3, OneVision, genai) pruned from the explorer with calibration and benchmarked.
// Prints "N passed, N failed".
//
// Every wait is on a state (a log line, a file, a DOM element), with generous limits: a loaded
// 2-core machine makes each step slower, never different. IT_TIMEOUT_SCALE multiplies them.
//
// Run: npm run test:integration  (installs the tools once via setup.sh, then runs this file)
// Env: KEEP_TMP=1 keeps the temp folder (logs, screenshots), HEADED=1 shows the browser,
// IT_SCREENSHOT_DIR=<dir> saves the linked-selection workbench screenshot there,
// SHORT_LVLM_VSIX=<file> installs that .vsix instead of packaging one.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { checkVsixContents, packageExtension } from './vsix.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const tools = path.join(here, '.tools');
const require = createRequire(path.join(tools, 'package.json'));
const node24 = path.join(tools, 'node_modules', 'node', 'bin', 'node');
const codeServer = path.join(tools, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
const extId = `${pkg.publisher}.${pkg.name}`;
const SCALE = Number(process.env.IT_TIMEOUT_SCALE ?? 3);

const started = Date.now();
const t = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;
const say = (...a) => console.log(t(), ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const results = [];
let tmp;
let userData;
let ws;
let server;
let browser;
let page;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    say(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false, error: e });
    say(`FAIL ${name}: ${e?.stack ?? e}`);
    say(`  notifications so far: ${[...notifications].join(' | ')}`);
    if (page && tmp) await page.screenshot({ path: path.join(tmp, `fail-${results.length}.png`) }).catch(() => undefined);
    // Leave no quick input or menu open for the next step.
    for (let i = 0; i < 3 && page; i++) await page.keyboard.press('Escape').catch(() => undefined);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function waitFor(what, fn, timeoutMs, everyMs = 250) {
  timeoutMs *= SCALE;
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function findFiles(dir, re, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) findFiles(p, re, out);
    else if (re.test(e.name)) out.push(p);
  }
  return out;
}

// ------------------------------------------------------------------ workbench helpers

/** Notification texts seen so far: toasts vanish on their own, so they are polled continuously. */
const notifications = new Set();
let polling = true;
async function pollNotifications() {
  while (polling) {
    try {
      for (const s of await page.locator('.notification-toast .notification-list-item-message').allInnerTexts()) notifications.add(s.trim());
    } catch {
      /* page navigating or closed */
    }
    await sleep(200);
  }
}
const seen = (re) => [...notifications].find((s) => re.test(s));

async function explorerRow(name, level) {
  const row = page.locator(`.explorer-folders-view .monaco-list-row[aria-level="${level}"][aria-label="${name}"]`);
  await waitFor(`explorer row ${name}`, async () => (await row.count()) > 0, 30000);
  return row.first();
}

async function expand(name, level) {
  const row = await explorerRow(name, level);
  if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
  await waitFor(`${name} expanded`, async () => (await row.getAttribute('aria-expanded')) === 'true', 10000);
}

async function quickInput(titleRe) {
  const widget = page.locator('.quick-input-widget');
  await waitFor(`quick input "${titleRe}"`, async () => (await widget.isVisible()) && titleRe.test(await widget.locator('.quick-input-title').innerText()), 30000);
  // Keys typed next must reach the quick input, not a webview that still holds the focus.
  await widget.locator('.quick-input-box input').focus().catch(() => undefined);
  return widget;
}

/** Runs a command from the palette by its full title. */
async function palette(title) {
  const widget = page.locator('.quick-input-widget');
  // A focused webview may swallow F1: move focus to the side bar's title and try again.
  await waitFor('command palette', async () => {
    await page.keyboard.press('F1');
    if (await widget.isVisible().catch(() => false)) return true;
    await sleep(1000);
    if (await widget.isVisible().catch(() => false)) return true;
    await page.locator('.part.sidebar .composite.title').first().click({ timeout: 2000 }).catch(() => undefined);
    return false;
  }, 20000, 100);
  await page.keyboard.type(`>${title}`.slice(1));
  const row = widget.locator('.monaco-list-row', { hasText: title }).first();
  await waitFor(`palette entry "${title}"`, () => row.isVisible(), 10000);
  // Another command whose title contains this one ("Prune Model..." / "Prune Model (Form)...")
  // may be ranked first: run the row whose label is exactly the title when there is one.
  const rows = widget.locator('.monaco-list-row');
  for (let i = 0, n = await rows.count(); i < n; i++) {
    const label = rows.nth(i).locator('.label-name').first();
    if ((await label.count()) && (await label.innerText().catch(() => '')).trim() === title) {
      await rows.nth(i).click();
      return;
    }
  }
  await page.keyboard.press('Enter');
}

/** Right-clicks a file of the bundled model's onnx/ folder in the explorer and runs a context-menu entry. */
async function explorerMenu(fileName, entry) {
  if (!(await page.locator('.explorer-folders-view').isVisible())) await palette('View: Show Explorer');
  await expand('models', 1);
  await expand('tiny-llava', 2);
  await expand('onnx', 3);
  await menuOn(() => explorerRow(fileName, 4), entry);
}

/** Right-click models/tiny-llava/onnx/<file> in the Explorer and choose "Prune with Short-LVLM". */
async function explorerPrune(fileName) {
  await explorerMenu(fileName, 'Prune with Short-LVLM');
}

/** Right-clicks an explorer row and runs "Prune with Short-LVLM" from its context menu. */
async function pruneMenuOn(row) {
  await menuOn(async () => row, 'Prune with Short-LVLM');
}

/** Right-clicks the row `findRow` locates and runs `entry` from its context menu. */
async function menuOn(findRow, entry) {
  const item = page.getByRole('menuitem', { name: entry, exact: true });
  // Rows move while the explorer refreshes (new output folders): a right-click that opened
  // another row's menu is closed and tried again.
  await waitFor(`context menu entry "${entry}"`, async () => {
    if (await item.isVisible()) return true;
    await page.keyboard.press('Escape');
    await (await findRow()).click({ button: 'right' });
    await sleep(500);
    return item.isVisible();
  }, 20000, 100);
  // A click during the menu's opening animation can be lost: click until the menu closes.
  await waitFor('the context menu to run the command', async () => {
    if (await item.isVisible()) await item.click({ timeout: 2000 }).catch(() => undefined);
    await sleep(500);
    return !(await item.isVisible());
  }, 15000);
}

async function pruneFromExplorer() {
  await explorerPrune('decoder_model_merged.onnx');
  const ratio = await quickInput(/pruning ratio/);
  const first = await ratio.locator('.monaco-list-row').first().innerText();
  assert(/^\s*0\.3(?!\d)[\s\S]*remove 5 of 16/.test(first), `default ratio row should be 0.3, got "${first}"`);
  await page.keyboard.press('Enter');
  const calib = await quickInput(/calibration data/);
  const firstCalib = await calib.locator('.monaco-list-row').first().innerText();
  assert(/calib\.json/.test(firstCalib), `first calibration choice should be a calib.json, got "${firstCalib}"`);
  await page.keyboard.press('Enter');
}

/** Text of every webview's inner document (iframe.webview > iframe#active-frame). */
async function webviewTexts() {
  const out = [];
  for (const f of page.frames()) {
    if (f.name() !== 'active-frame' && !/active-frame/.test(await f.frameElement().then((e) => e.getAttribute('id')).catch(() => ''))) continue;
    const text = await f.locator('body').innerText().catch(() => '');
    out.push({ text, frame: f });
  }
  return out;
}

/** Edits the user settings file and waits until the extension logs that it saw the change. */
async function setUserSetting(key, value) {
  // Workspace settings: the workspace folder is watched, the user settings file is not re-read here.
  const sp = path.join(ws, '.vscode', 'settings.json');
  fs.mkdirSync(path.dirname(sp), { recursive: true });
  const cur = fs.existsSync(sp) ? JSON.parse(fs.readFileSync(sp, 'utf8')) : {};
  fs.writeFileSync(sp, JSON.stringify({ ...cur, [key]: value }, null, 1));
  const short = key.replace(/^shortLvlm\./, '');
  await waitFor(`the extension to see ${key}=${value}`, () => extensionLog().includes(`${short}=${JSON.stringify(value)}`), 30000, 300);
}

function extensionLog() {
  return findFiles(path.join(userData, 'logs'), /^Short-LVLM\.log$/).map((f) => fs.readFileSync(f, 'utf8')).join('\n');
}

// ------------------------------------------------------------------ main

async function main() {
  assert(fs.existsSync(node24) && fs.existsSync(codeServer), `test tools missing: run bash test/integration/setup.sh`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'short-lvlm-it-'));
  ws = path.join(tmp, 'workspace');
  userData = path.join(tmp, 'user-data');
  const extDir = path.join(tmp, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.mkdirSync(extDir, { recursive: true });
  // A temp copy of the demo model and data: the test writes pruned packages next to the model.
  fs.cpSync(path.join(repo, 'models', 'tiny-llava'), path.join(ws, 'models', 'tiny-llava'), { recursive: true });
  fs.cpSync(path.join(repo, 'data', 'tiny-vqa'), path.join(ws, 'data', 'tiny-vqa'), {
    recursive: true,
    filter: (src) => !src.includes(`${path.sep}reference`),
  });
  fs.writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify(
      {
        'explorer.compactFolders': false,
        'shortLvlm.samples': 16,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'security.workspace.trust.enabled': false,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        'update.mode': 'none',
        'chat.disableAIFeatures': true,
      },
      null,
      1,
    ),
  );

  const port = await freePort();
  const env = {
    ...process.env,
    HOME: tmp,
    XDG_CONFIG_HOME: path.join(tmp, 'xdg-config'),
    XDG_DATA_HOME: path.join(tmp, 'xdg-data'),
    XDG_CACHE_HOME: path.join(tmp, 'xdg-cache'),
    ONNXRUNTIME_NODE_INSTALL: 'skip',
  };
  let vsix = process.env.SHORT_LVLM_VSIX ? path.resolve(process.env.SHORT_LVLM_VSIX) : undefined;
  await step('npm run package builds the .vsix', async () => {
    if (vsix) return say(`  using ${vsix}`);
    vsix = packageExtension(repo, pkg, say);
  });
  await step('the .vsix holds the runtime for linux-x64 and no development files', async () => {
    assert(vsix, 'no .vsix');
    say(`  ${checkVsixContents(vsix, path.join(repo, 'README.md'))}`);
  });
  assert(vsix && fs.existsSync(vsix), 'no .vsix to install');
  await step('code-server installs the .vsix', async () => {
    const r = spawnSync(node24, [codeServer, '--user-data-dir', userData, '--extensions-dir', extDir, '--install-extension', vsix], { env, encoding: 'utf8', timeout: 120000 * SCALE });
    assert(r.status === 0, `--install-extension failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
    const installed = fs.readdirSync(extDir).filter((n) => n.startsWith(extId));
    assert(installed.length === 1 && !fs.lstatSync(path.join(extDir, installed[0])).isSymbolicLink(), `expected one installed copy of ${extId}, found ${installed.join(', ') || 'none'}`);
    assert(fs.existsSync(path.join(extDir, installed[0], 'dist', 'engineWorker.js')), 'the installed extension has no engine bundle');
    say(`  installed ${installed[0]}`);
  });
  assert(results.every((r) => r.ok), 'the extension could not be packaged and installed');

  const serverLog = fs.openSync(path.join(tmp, 'code-server.log'), 'w');
  say(`starting code-server on 127.0.0.1:${port} (${tmp})`);
  // Own process group (detached) so every helper it starts is ended with it.
  server = spawn(
    node24,
    [codeServer, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--user-data-dir', userData, '--extensions-dir', extDir, ws],
    { detached: true, env, stdio: ['ignore', serverLog, serverLog] },
  );
  await waitFor('code-server to listen', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 60000, 500);

  const { chromium } = require('playwright-core');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: !process.env.HEADED,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    env,
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
  void pollNotifications();

  await step('extension host starts and the extension is known', async () => {
    await waitFor(
      '"Eager extensions activated" in the extension host log',
      () => findFiles(path.join(userData, 'logs'), /exthost.*\.log$|remoteexthost\.log$/).some((f) => /Eager extensions activated/.test(fs.readFileSync(f, 'utf8'))),
      90000,
      500,
    );
    await page.locator('.explorer-folders-view').waitFor({ timeout: 30000 * SCALE });
  });

  const out1 = path.join(ws, 'models', 'tiny-llava-short-lvlm-greedy-r0.3');
  await step('prune from the explorer context menu writes a pruned package', async () => {
    await pruneFromExplorer();
    await waitFor('the progress notification', () => seen(/pruning tiny-llava/i) || seen(/calibrat|prune|scp/i), 60000);
    await waitFor('the "pruned" notification', () => seen(/pruned tiny-llava/) || seen(/failed/), 240000, 500);
    const failed = seen(/failed/);
    assert(!failed, `prune failed: ${failed}`);
    assert(fs.existsSync(path.join(out1, 'short-lvlm-report.json')), `no report in ${out1}`);
    assert(fs.existsSync(path.join(out1, 'onnx', 'decoder_model_merged.onnx')), 'no pruned decoder in the output package');
    const report = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8'));
    assert(report.model.numLayers === 16, `original layers ${report.model.numLayers}`);
    assert(report.removed.length === 5, `expected round(0.3 x 16) = 5 layers removed, got [${report.removed}]`);
    assert(report.output.numLayers === 11, `expected 11 layers left, got ${report.output.numLayers}`);
    // The default (greedy) chooses on some samples and measures on the held-out rest.
    const m = report.measurement;
    const used = report.calibration.samples + (m && !m.heldOutInCalibration ? m.heldOutSamples : 0);
    assert(used === 16, `calibration used ${report.calibration.samples} + ${m?.heldOutSamples} held-out samples, setting says 16`);
    assert(report.options.method === 'greedy' && m?.heldOutSamples > 0, `the explorer's default is greedy with a held-out slice (${report.options.method})`);
    say(`  removed layers ${report.removed.join(', ')}: ${seen(/pruned tiny-llava/)}`);
  });

  await step('Layers and Runs views show the run', async () => {
    await palette('View: Show Short-LVLM');
    const layers = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Layers' }) });
    await waitFor('layer rows', async () => (await layers.locator('.monaco-list-row').count()) > 3, 20000);
    const texts = await layers.locator('.monaco-list-row').allInnerTexts();
    assert(texts.some((s) => /Layer 0(?!\d)/.test(s)), `no "Layer 0" row: ${texts.slice(0, 3).join(' | ')}`);
    assert(texts.some((s) => /pruned/.test(s)), `no row marked pruned among ${texts.length} rendered`);
    const checked = await layers.locator('.monaco-list-row .monaco-checkbox.checked, .monaco-list-row input[type=checkbox]:checked').count();
    say(`  ${texts.length} layer rows rendered, ${checked} checked`);
    const runs = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Runs' }) });
    await waitFor('a run row', async () => (await runs.locator('.monaco-list-row', { hasText: 'tiny-llava-short-lvlm-greedy-r0.3' }).count()) > 0, 10000);
  });

  await step('Open Report shows the report in the custom editor webview', async () => {
    await palette('Short-LVLM: Open Report...');
    const pick = await quickInput(/open report/i);
    await waitFor('the report entry', () => pick.locator('.monaco-list-row', { hasText: 'tiny-llava-short-lvlm-greedy-r0.3' }).first().isVisible(), 10000);
    await page.keyboard.press('Enter');
    const text = await waitFor(
      'webview text',
      async () => (await webviewTexts()).map((w) => w.text).find((s) => s.trim().length > 40 && !/^Loading/.test(s.trim())),
      60000,
      500,
    );
    say(`  webview: ${text.replace(/\s+/g, ' ').slice(0, 160)}...`);
    assert(/layer/i.test(text), 'report webview does not mention layers');
  });

  await step('the four report panels open and render', async () => {
    for (const title of ['Token Importance', 'Compensation Gap', 'Benchmark', 'Layer Redundancy']) {
      await palette('Short-LVLM: Show Report Panel...');
      await quickInput(/panel for/);
      await page.keyboard.type(title);
      await page.keyboard.press('Enter');
      const tab = page.locator('.tab', { hasText: `${title}:` });
      await waitFor(`tab ${title}`, () => tab.first().isVisible(), 20000);
      // Hidden webviews are discarded (no retainContextWhenHidden): the rendered one is this panel.
      const text = await waitFor(
        `${title} panel text`,
        async () => (await webviewTexts()).map((w) => w.text.trim()).find((s) => s.length > 20 && !/^Loading/.test(s)),
        30000,
        500,
      );
      say(`  ${title}: ${text.replace(/\s+/g, ' ').slice(0, 120)}...`);
      if (title === 'Token Importance') {
        // The calibration image arrives from the host (requestImage -> data: URI).
        await waitFor(
          'a calibration image as a data: URI',
          async () => {
            for (const { frame } of await webviewTexts()) if (await frame.locator('img[src^="data:image/png"]').count()) return true;
          },
          20000,
          500,
        );
      }
    }
  });

  // ---------------------------------------------------------------- issue 15: linked selection (w15a)
  // A click on a layer in the Layer Redundancy panel selects its row in the Layers view, and a
  // click on a row of the Layers view highlights that layer in the panel (the host relays
  // selectLayer both ways).
  await step('linked selection: a click in the redundancy chart selects the layer in the Layers view, and the reverse; ticks follow both ways', async () => {
    // The previous step left the Layer Redundancy panel in front; open it only if it is not.
    const redundancyFrame = async () => {
      for (const { frame: f } of await webviewTexts()) if (await f.locator('#chart-redundancy').count()) return f;
    };
    if (!(await redundancyFrame())) {
      await palette('Short-LVLM: Show Report Panel...');
      await quickInput(/panel for/);
      await page.keyboard.type('Layer Redundancy');
      await page.keyboard.press('Enter');
    }
    const frame = await waitFor('the redundancy chart in a webview', redundancyFrame, 30000, 500);
    await palette('View: Show Short-LVLM');
    const layers = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Layers' }) });
    await waitFor('layer rows', async () => (await layers.locator('.monaco-list-row').count()) > 3, 20000);
    const selectedRow = async () => (await layers.locator('.monaco-list-row.selected').allInnerTexts()).join(' | ');
    // Panel -> Layers view: click layer 3's column in the chart.
    const at = await frame.evaluate(() => {
      const ch = window.Chart.getChart(document.getElementById('chart-redundancy'));
      return { x: ch.scales.x.getPixelForValue(3), y: (ch.chartArea.top + ch.chartArea.bottom) / 2 };
    });
    await frame.locator('#chart-redundancy').click({ position: at });
    await waitFor('the Layers view to select Layer 3', async () => /^\s*Layer 3(?!\d)/.test(await selectedRow()), 20000, 300);
    // Layers view -> panel: click the Layer 5 row's label.
    await layers.locator('.monaco-list-row', { hasText: /^\s*Layer 5(?!\d)/ }).first().locator('.label-name, .monaco-highlighted-label').first().click();
    await waitFor(
      'the panel to highlight layer 5',
      async () => (await frame.evaluate(() => document.body.dataset.selectedLayer)) === '5' && (await frame.locator('#layer-table tr.selected[data-layer="5"]').count()) === 1,
      20000,
      300,
    );
    say(`  Layers view selection: ${await selectedRow()}`);
    // IT_SCREENSHOT_DIR=docs/screenshots: the README's picture of linked selection in the workbench.
    if (process.env.IT_SCREENSHOT_DIR) await page.screenshot({ path: path.join(path.resolve(repo, process.env.IT_SCREENSHOT_DIR), 'linked-workbench.png') });
    // Ticks: a layer the run kept, ticked in the panel's table, is ticked in the Layers view; unticked there, it is unticked in the panel.
    const removed = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8')).removed;
    const kept = [...Array(16).keys()].find((l) => !removed.includes(l));
    const count = async () => Number(/(\d+) selected to remove/.exec(await layers.innerText())?.[1] ?? NaN);
    const n0 = await count();
    const panelBox = frame.locator(`#layer-table vscode-checkbox[data-layer="${kept}"]`);
    assert((await panelBox.getAttribute('checked')) === null, `layer ${kept} (kept by the run) starts unticked`);
    await panelBox.click();
    await waitFor('the Layers view to count the tick made in the panel', async () => (await count()) === n0 + 1, 20000, 300);
    const row = layers.locator('.monaco-list-row', { hasText: new RegExp(`^\\s*Layer ${kept}(?!\\d)`) }).first();
    await row.locator('.monaco-checkbox, .custom-checkbox, input[type=checkbox]').first().click();
    await waitFor(`the panel to untick layer ${kept}`, async () => (await panelBox.getAttribute('checked')) === null && (await count()) === n0, 20000, 300);
  });
  // ---------------------------------------------------------------- end of issue 15: linked selection

  await step('panels come back after a window reload (serializer)', async () => {
    await page.reload();
    await page.locator('.explorer-folders-view, .part.sidebar').first().waitFor({ timeout: 60000 * SCALE });
    // Which panels the workbench had saved when the page went away varies; any one restored proves the serializer.
    const tab = page.locator('.tab', { hasText: /^(Layer Redundancy|Token Importance|Compensation Gap|Benchmark): tiny-llava/ });
    await waitFor('a report panel tab after reload', async () => (await tab.count()) > 0, 60000, 500);
    await tab.first().click();
    const text = await waitFor(
      'the restored panel to render the report',
      async () => {
        const removed = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8')).removed.join(', ');
        return (await webviewTexts()).map((w) => w.text.trim()).find((s) => s.replace(/\s+/g, ' ').includes(`removed ${removed}`));
      },
      60000,
      500,
    );
    say(`  restored: ${text.replace(/\s+/g, ' ').slice(0, 100)}...`);
  });

  await step('Benchmark Models writes the result into the pruned report and opens the benchmark panel', async () => {
    await setUserSetting('shortLvlm.benchmarkSamples', 20);
    await palette('Short-LVLM: Benchmark Models...');
    const pick = await quickInput(/models to benchmark/);
    const checked = await pick.locator('.monaco-list-row[aria-checked="true"]').allInnerTexts();
    assert(checked.length === 2, `expected the original and the latest run preselected, got ${JSON.stringify(checked)}`);
    await pick.getByRole('button', { name: 'OK' }).click();
    await quickInput(/evaluation data/);
    await page.keyboard.press('Enter');
    const report = await waitFor(
      'report.benchmark in the pruned report',
      () => {
        const r = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8'));
        return r.benchmark ? r : undefined;
      },
      120000,
      500,
    );
    const tab = page.locator('.tab.active', { hasText: 'Benchmark:' });
    await waitFor('the benchmark panel', () => tab.first().isVisible(), 20000, 500);
    const rows = report.benchmark?.rows ?? [];
    assert(rows.length === 2, `report.benchmark should have 2 rows, has ${rows.length}`);
    assert(rows[0].numLayers === 16 && rows[1].numLayers === 11, `rows: ${rows.map((r) => r.numLayers)}`);
    assert(report.benchmark.items === 20, `benchmark items ${report.benchmark.items}, setting says 20`);
    const text = await waitFor(
      'benchmark panel text with accuracy',
      async () => (await webviewTexts()).map((w) => w.text).find((s) => /accuracy/i.test(s) && /\d+(\.\d+)?\s*%/.test(s)),
      30000,
      500,
    );
    say(`  ${rows.map((r) => `${r.label}: ${(r.accuracy * 100).toFixed(0)} %, ${r.samplesPerSecond.toFixed(1)}/s`).join('; ')}`);
    say(`  panel: ${text.replace(/\s+/g, ' ').slice(0, 120)}...`);
  });

  const out2 = `${out1}-2`;
  await step('a second prune can be cancelled and leaves no output or partial folder', async () => {
    const before = new Set(notifications);
    // All 320 calibration samples this time, so the run lasts long enough to be cancelled.
    await setUserSetting('shortLvlm.samples', 0);
    await pruneFromExplorer();
    await waitFor('progress of the second run', () => [...notifications].find((s) => !before.has(s) && /\d+\/\d+/.test(s)), 90000, 200);
    await palette('Short-LVLM: Cancel Run');
    await waitFor('the "cancelled" notification', () => seen(/cancelled/), 30000, 200);
    await waitFor('the cancelled run to leave no partial folder', () => !fs.readdirSync(path.join(ws, 'models')).some((n) => n.includes('.partial-')), 30000, 200).catch(() => undefined);
    const left = fs.readdirSync(path.join(ws, 'models'));
    assert(!fs.existsSync(out2), `${out2} exists after cancel`);
    assert(!left.some((n) => n.includes('.partial-')), `partial folder left: ${left.join(', ')}`);
    assert(!seen(/pruned tiny-llava.*-2/), 'the second run finished instead of being cancelled');
  });

  await step('an engine crash is reported with Show Log and leaves nothing partial', async () => {
    const before = new Set(notifications);
    await pruneFromExplorer();
    await waitFor('progress of the third run', () => [...notifications].find((s) => !before.has(s) && /\d+\/\d+/.test(s)), 90000, 200);
    const pids = [...extensionLog().matchAll(/engine ready \(pid (\d+)\)/g)].map((m) => Number(m[1]));
    const pid = pids[pids.length - 1];
    assert(pid, 'no engine pid in the log');
    process.kill(pid, 'SIGKILL');
    const msg = await waitFor('the crash notification', () => seen(/stopped unexpectedly/), 30000, 200);
    const toast = page.locator('.notification-toast', { hasText: 'stopped unexpectedly' });
    assert(await toast.getByRole('button', { name: 'Show Log' }).count(), 'the error has no "Show Log" button');
    // The host removes the killed engine's temporary folder before it shows the error.
    const left = fs.readdirSync(path.join(ws, 'models'));
    assert(!left.some((n) => n.includes('.partial-')), `partial folder left after the crash: ${left.join(', ')}`);
    assert(!fs.existsSync(out2), `${out2} exists after the crash`);
    say(`  ${msg}`);
  });

  await step('the engine still works after the cancel (Prune Selected Layers, no SCP)', async () => {
    // Turn SCP off in user settings: a hand-made choice then needs no calibration data.
    await setUserSetting('shortLvlm.scp', false);
    // The redundancy panel's "Prune selected layers…" button (selectLayers -> Prune Selected Layers).
    // Whichever report the palette's panel command opens (the family miniatures' runs may be newer).
    await palette('Short-LVLM: Show Report Panel...');
    await quickInput(/panel for/);
    await page.keyboard.type('Layer Redundancy');
    await page.keyboard.press('Enter');
    const button = await waitFor(
      'the "Prune selected layers" button in the webview',
      async () => {
        for (const { frame } of await webviewTexts()) {
          const b = frame.locator('#select-layers');
          if ((await b.count()) && (await b.first().isVisible())) return b.first();
        }
      },
      30000,
      500,
    );
    await button.click();
    await waitFor('the second "pruned" notification', () => [...notifications].filter((s) => /pruned tiny-llava/.test(s)).length >= 2, 120000, 300);
    const out = fs.readdirSync(path.join(ws, 'models')).find((n) => /-short-lvlm-l[\d-]+$/.test(n));
    assert(out, 'no hand-pruned package');
    const r = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8'));
    assert(out.endsWith(`l${r.removed.join('-')}`), `hand-made package ${out} should remove the report's layers ${r.removed}`);
  });

  await step('Layers view checkboxes + "Prune Selected Layers" title button prune that hand-made choice', async () => {
    await palette('View: Show Short-LVLM');
    const layers = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Layers' }) });
    const row = layers.locator('.monaco-list-row', { hasText: /^\s*Layer 11(?!\d)/ }).first();
    await waitFor('the Layer 11 row', () => row.isVisible(), 20000);
    const box = row.locator('.monaco-checkbox, .custom-checkbox, input[type=checkbox]').first();
    // The view's message counts the ticked layers: wait until the extension has seen the click.
    const selected = async () => Number(/(\d+) selected to remove/.exec(await layers.innerText())?.[1] ?? NaN);
    const before = await selected();
    await box.click();
    await waitFor('the Layers view to count the new tick', async () => (await selected()) !== before, 20000, 200);
    const count = [...notifications].filter((s) => /pruned tiny-llava/.test(s)).length;
    await layers.locator('.pane-header').hover();
    await layers.locator('.pane-header .action-label[aria-label="Prune Selected Layers"]').click();
    await waitFor('another "pruned" notification', () => [...notifications].filter((s) => /pruned tiny-llava/.test(s)).length > count, 120000, 300);
    // The report's choice with layer 11's box toggled.
    const removed = JSON.parse(fs.readFileSync(path.join(out1, 'short-lvlm-report.json'), 'utf8')).removed;
    const chosen = (removed.includes(11) ? removed.filter((l) => l !== 11) : [...removed, 11]).sort((a, b) => a - b);
    const out = path.join(ws, 'models', `tiny-llava-short-lvlm-l${chosen.join('-')}`);
    assert(fs.existsSync(path.join(out, 'onnx', 'decoder_model_merged.onnx')), `no ${out} (models: ${fs.readdirSync(path.join(ws, 'models')).join(', ')})`);
  });

  // ---------------------------------------------------------------- issue 15, host (w15b):
  // icons that render, reveal in a browser workbench, the prompt naming the decoder, a
  // setting naming a missing file, the status-bar item and a busy notice that does not go
  // stale after a cancel, the Getting Started walkthrough, the empty Benchmark panel's button.
  const models = path.join(ws, 'models');
  const noticesNow = () => [...notifications];

  await step('issue 15: view-title buttons show existing codicons (a glyph, not an empty box)', async () => {
    await palette('View: Show Short-LVLM');
    const glyphs = [];
    for (const [pane, label] of [['Layers', 'Prune Selected Layers'], ['Runs', 'Prune Model...'], ['Runs', 'Benchmark Models...']]) {
      const p = page.locator('.pane', { has: page.locator('.pane-header', { hasText: pane }) });
      await p.locator('.pane-header').hover();
      const action = p.locator(`.pane-header .action-label[aria-label="${label}"]`);
      await waitFor(`the "${label}" button`, async () => (await action.count()) > 0, 20000);
      // An unknown codicon name has no ::before glyph: the button is there but invisible.
      const content = await action.first().evaluate((el) => getComputedStyle(el, '::before').content);
      glyphs.push(`${label}: U+${(content.codePointAt(1) ?? 0).toString(16)}`);
      assert(content && !['none', 'normal', '""'].includes(content), `"${label}" has no icon glyph (${content}, class ${await action.first().getAttribute('class')})`);
    }
    // The control: the name main used has no glyph in this workbench.
    const control = await page.evaluate(() => {
      const a = document.createElement('a');
      a.className = 'action-label codicon codicon-scissors';
      document.body.append(a);
      const c = getComputedStyle(a, '::before').content;
      a.remove();
      return c;
    });
    assert(['none', 'normal', '""'].includes(control), `codicon-scissors unexpectedly has a glyph (${control}): the check cannot tell`);
    say(`  ${glyphs.join('; ')}; codicon-scissors: ${control}`);
  });

  await step('issue 15: Reveal Output Folder in the browser workbench shows the folder in the Explorer', async () => {
    const before = noticesNow().length;
    await palette('View: Show Short-LVLM');
    const runs = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Runs' }) });
    const row = runs.locator('.monaco-list-row', { hasText: path.basename(out1) }).first();
    await waitFor('the first run in the Runs view', () => row.isVisible(), 20000);
    await row.hover();
    await row.locator('.action-label[aria-label="Reveal Output Folder"]').click();
    const revealed = page.locator(`.explorer-folders-view .monaco-list-row[aria-level="2"][aria-label="${path.basename(out1)}"]`);
    await waitFor('the output folder selected in the Explorer', async () => /\b(selected|focused)\b/.test((await revealed.first().getAttribute('class').catch(() => '')) ?? ''), 30000, 300);
    const errors = noticesNow().slice(before).filter((s) => /not found|failed|error/i.test(s));
    assert(!errors.length, `reveal reported: ${errors.join(' | ')}`);
  });

  await step('issue 15: pruning from vision_encoder.onnx names the decoder that will be pruned', async () => {
    await explorerPrune('vision_encoder.onnx');
    const q = await quickInput(/pruning ratio/);
    const input = q.locator('.quick-input-box input');
    const text = [await q.locator('.quick-input-title').innerText(), await input.getAttribute('placeholder'), await input.getAttribute('aria-label')].join(' | ');
    await page.keyboard.press('Escape');
    say(`  ${text}`);
    assert(/onnx\/decoder_model_merged\.onnx/.test(text), `the prompt does not name the decoder: ${text}`);
    assert(/vision_encoder\.onnx is not the decoder/.test(text), `the prompt does not say the chosen file is not pruned: ${text}`);
    assert(/\(llava\)/.test(text), `the prompt does not name the family: ${text}`);
  });

  await step('issue 15: a calibrationData setting naming a missing file is reported, with Open Settings', async () => {
    await setUserSetting('shortLvlm.calibrationData', 'data/no-such-calib.json');
    try {
      await explorerPrune('decoder_model_merged.onnx');
      await quickInput(/pruning ratio/);
      await page.keyboard.press('Enter');
      await quickInput(/calibration data/);
      const msg = await waitFor('the warning naming the setting', () => seen(/shortLvlm\.calibrationData.*no-such-calib\.json/), 30000, 200);
      const toast = page.locator('.notification-toast', { hasText: 'no-such-calib.json' });
      const button = await toast.getByRole('button', { name: 'Open Settings' }).count();
      await page.keyboard.press('Escape');
      say(`  ${msg}`);
      assert(button, 'the warning has no "Open Settings" button');
    } finally {
      await setUserSetting('shortLvlm.calibrationData', '');
    }
  });

  await step('issue 15: a calibration file whose run failed is not offered first again', async () => {
    fs.writeFileSync(path.join(ws, 'data', 'bad-calib.json'), JSON.stringify({ not: 'a conversation list' }));
    await explorerPrune('decoder_model_merged.onnx');
    await quickInput(/pruning ratio/);
    await page.keyboard.press('Enter');
    const q = await quickInput(/calibration data/);
    await page.keyboard.type('bad-calib');
    await waitFor('the bad file as the only choice', async () => /bad-calib\.json/.test(await q.locator('.monaco-list-row').first().innerText()), 10000);
    await page.keyboard.press('Enter');
    await waitFor('the failure', () => seen(/bad-calib\.json (sample 0|line 1): expected LLaVA conversation format/), 60000, 200);
    await explorerPrune('decoder_model_merged.onnx');
    await quickInput(/pruning ratio/);
    await page.keyboard.press('Enter');
    const again = await quickInput(/calibration data/);
    const rows = await again.locator('.monaco-list-row').allInnerTexts();
    await page.keyboard.press('Escape');
    say(`  choices: ${rows.map((r) => r.replace(/\s+/g, ' ')).join(' | ')}`);
    assert(!/bad-calib/.test(rows[0]), `the failed file is offered first: ${rows[0]}`);
    assert(rows.some((r) => /bad-calib[\s\S]*failed last run/.test(r)), 'the failed file does not say that its last run failed');
  });

  await step('issue 15: a running job shows in the status bar; its busy notice closes when the job is cancelled from there', async () => {
    const cancelledRuns = () => (extensionLog().match(/pruning tiny-llava: cancelled after/g) ?? []).length;
    const cancelsBefore = cancelledRuns();
    await setUserSetting('shortLvlm.samples', 0); // all 320 samples: long enough to act on
    await pruneFromExplorer();
    const item = page.locator('.statusbar-item', { hasText: 'Short-LVLM: pruning tiny-llava' });
    const text = await waitFor('the status-bar item with the stage', async () => {
      const s = (await item.count()) ? await item.first().innerText() : '';
      return /pruning tiny-llava · [a-z ]+ \d+\/\d+/.test(s) && s; // any stage: calibration itself may take a second
    }, 90000, 200);
    say(`  status bar: ${text.replace(/\s+/g, ' ')}`);
    // A second prune while this one runs: a notice naming the running job.
    await palette('Short-LVLM: Prune Model...');
    await waitFor('the "already running" notice', () => seen(/already running: pruning tiny-llava/), 30000, 200);
    await item.first().click();
    const q = await quickInput(/pruning tiny-llava/);
    await waitFor('the cancel entry', () => q.locator('.monaco-list-row', { hasText: 'Cancel pruning tiny-llava' }).first().isVisible(), 10000);
    await q.locator('.monaco-list-row', { hasText: 'Cancel pruning tiny-llava' }).first().click();
    await waitFor('the run to be cancelled', () => cancelledRuns() > cancelsBefore, 60000, 300);
    await waitFor('the status-bar item to go away', async () => (await item.count()) === 0, 30000, 300);
    // The notice was bound to the job: nothing about it is left, not even in the notification centre.
    await palette('Notifications: Show Notifications');
    const center = page.locator('.notifications-center');
    await waitFor('the notification centre', () => center.isVisible(), 10000);
    const stale = await waitFor(
      'no "already running" notice left',
      async () => !(await center.locator('.notification-list-item-message').allInnerTexts()).some((s) => /already running/.test(s)) || undefined,
      30000,
      300,
    ).catch(async () => (await center.locator('.notification-list-item-message').allInnerTexts()).filter((s) => /already running/.test(s)));
    await page.keyboard.press('Escape');
    assert(stale === true, `stale notices: ${JSON.stringify(stale)}`);
    const left = fs.readdirSync(models);
    assert(!left.some((n) => n.includes('.partial-')) && !fs.existsSync(`${out1}-2`), `left after the cancel: ${left.join(', ')}`);
  });

  await step('issue 15: the Getting Started walkthrough opens the demo model, prunes it and opens its report', async () => {
    await setUserSetting('shortLvlm.samples', 16);
    const openWalkthrough = async () => {
      await palette('Open Walkthrough...');
      const pick = page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Get Started with Short-LVLM' }).first();
      await waitFor('the walkthrough in the list', () => pick.isVisible(), 20000);
      await pick.click();
    };
    const container = page.locator('.gettingStartedContainer');
    await openWalkthrough();
    // Back to the walkthrough's tab (typing into the palette races with the page moving focus to the next step).
    const show = async () => {
      if (!(await container.isVisible())) await page.locator('.tab', { hasText: 'Welcome' }).first().click();
      await waitFor('the walkthrough page', () => container.isVisible(), 20000);
    };
    const stepEl = (id) => container.locator(`button.getting-started-step[data-step-id$="${id}"]`).first();
    const runStep = async (id, link) => {
      await show();
      await waitFor(`walkthrough step ${id}`, () => stepEl(id).isVisible(), 30000);
      if ((await stepEl(id).getAttribute('aria-expanded')) !== 'true') await stepEl(id).click();
      const button = container.getByText(link, { exact: true }).filter({ visible: true }).first();
      await waitFor(`the "${link}" button`, () => button.isVisible(), 10000);
      await button.click();
    };
    const done = async (id) => {
      await show();
      await waitFor(`step ${id} marked done`, async () => (await stepEl(id).getAttribute('aria-checked', { timeout: 2000 })) === 'true', 60000, 300);
    };

    await runStep('openDemo', 'Open the Demo Model');
    const demo = path.join(ws, 'short-lvlm-demo', 'models', 'tiny-llava');
    await waitFor('the demo model copied into the workspace', () => fs.existsSync(path.join(demo, 'onnx', 'decoder_model_merged.onnx')), 30000, 300);
    await done('openDemo');

    const pruned = () => fs.readdirSync(path.dirname(demo)).filter((n) => n.startsWith('tiny-llava-short-lvlm-') && !n.includes('.partial-'));
    await runStep('pruneDemo', 'Prune the Demo Model');
    await quickInput(/pruning ratio/);
    await page.keyboard.press('Enter');
    await quickInput(/calibration data/);
    await page.keyboard.press('Enter');
    const out = await waitFor('the pruned demo package with its report', () => pruned().find((n) => fs.existsSync(path.join(path.dirname(demo), n, 'short-lvlm-report.json'))), 240000, 500);
    await done('pruneDemo');

    await runStep('openReport', 'Open the Demo Report');
    const removed = JSON.parse(fs.readFileSync(path.join(path.dirname(demo), out, 'short-lvlm-report.json'), 'utf8')).removed.join(', ');
    const text = await waitFor(
      'the demo report in the report editor',
      async () => (await webviewTexts()).map((w) => w.text.replace(/\s+/g, ' ')).find((s) => s.includes(`removed ${removed}`) && /no compensation|no SCP/.test(s)),
      60000,
      500,
    );
    say(`  ${out}: ${text.slice(0, 100)}...`);
    await done('openReport');
  });

  await step('issue 15: the empty Benchmark panel runs the benchmark command from its button', async () => {
    await palette('Short-LVLM: Show Report Panel...');
    await quickInput(/panel for short-lvlm|panel for tiny-llava-short-lvlm/);
    await page.keyboard.type('Benchmark');
    await page.keyboard.press('Enter');
    const button = await waitFor(
      'the "Run Benchmark" button',
      async () => {
        for (const { frame } of await webviewTexts()) {
          const b = frame.locator('#run-benchmark');
          if ((await b.count()) && (await b.first().isVisible())) return b.first();
        }
      },
      30000,
      500,
    );
    await button.click();
    const pick = await quickInput(/models to benchmark/);
    const checked = await pick.locator('.monaco-list-row[aria-checked="true"]').allInnerTexts();
    await page.keyboard.press('Escape');
    assert(checked.length === 2 && checked.some((s) => /original/.test(s)) && checked.some((s) => /pruned/.test(s)), `preselected: ${JSON.stringify(checked)}`);
  });
  // ---------------------------------------------------------------- end of issue 15, host (w15b)
  // ---------------------------------------------------------------- issue 11: every family's miniature
  // Right-click each family miniature in the explorer (Qwen2-VL, SmolVLM, Gemma 3, LLaVA-OneVision
  // and a Phi-3-vision-style onnxruntime-genai package), prune with calibration, benchmark the pruned
  // package against its original from the palette, and check the report and the benchmark
  // panel. The paper's method with SCP is set explicitly (the default is greedy, uncompensated).
  // Bounded: 8 calibration samples and 8 evaluation items per family.
  {
    const FAMILY_MINIATURES = [
      // image tokens per calibration prompt: Qwen2-VL 8x8 merged patches; SmolVLM 4 tiles + global x 16;
      // Gemma 3 one block of 16; Phi-3-vision 2x2 crops: (4+1) x 16 + 1 + 3 x 4.
      { name: 'tiny-qwen2vl', src: path.join(repo, 'models', 'tiny-qwen2vl'), imageTokens: 64, scp: true },
      { name: 'tiny-smolvlm', src: path.join(repo, 'models', 'tiny-smolvlm'), imageTokens: 80, scp: true },
      // A norm follows Gemma's down_proj: removed uncompensated, and the report says so.
      { name: 'tiny-gemma3', src: path.join(repo, 'models', 'tiny-gemma3'), imageTokens: 16, scp: false },
      // LLaVA-OneVision: the base view's 16 + 8 rows of (8 tile tokens + image_newline).
      { name: 'tiny-onevision', src: path.join(repo, 'models', 'tiny-onevision'), imageTokens: 88, scp: true },
      { name: 'genai-phi3v-gqa', src: path.join(repo, 'test', 'fixtures', 'genai-phi3v-gqa'), imageTokens: 93, scp: true, genai: true },
    ];
    const famRoot = path.join(ws, 'families');
    const FAMILY_SAMPLES = 8;
    /** Sets workspace settings in one write; an active extension logs each change, so wait for those lines. */
    const ensureSettings = async (kv) => {
      const read = (f) => (fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : {});
      const sp = path.join(ws, '.vscode', 'settings.json');
      const effective = { ...read(path.join(userData, 'User', 'settings.json')), ...read(sp) };
      const changed = Object.entries(kv).filter(([k, v]) => JSON.stringify(effective[k]) !== JSON.stringify(v));
      if (!changed.length) return;
      const active = extensionLog().length > 0;
      fs.mkdirSync(path.dirname(sp), { recursive: true });
      fs.writeFileSync(sp, JSON.stringify({ ...read(sp), ...kv }, null, 1));
      for (const [k, v] of active ? changed : []) {
        const line = `${k.replace(/^shortLvlm\./, '')}=${JSON.stringify(v)}`;
        await waitFor(`the extension to see ${k}=${JSON.stringify(v)}`, () => extensionLog().includes(line), 30000, 300);
      }
    };
    const pickRow = async (widget, text) => {
      const row = widget.locator('.monaco-list-row', { hasText: text }).first();
      await waitFor(`a quick-pick row with "${text}"`, () => row.isVisible(), 20000);
      await row.click();
    };

    await step('family miniatures: copied into the workspace, explorer shows them', async () => {
      for (const f of FAMILY_MINIATURES) fs.cpSync(f.src, path.join(famRoot, f.name), { recursive: true, filter: (s) => path.basename(s) !== 'reference.json' });
      await ensureSettings({ 'shortLvlm.samples': FAMILY_SAMPLES, 'shortLvlm.benchmarkSamples': FAMILY_SAMPLES, 'shortLvlm.method': 'svl', 'shortLvlm.compensation': 'scp', 'shortLvlm.scp': true });
      if (!(await page.locator('.explorer-folders-view').isVisible())) await palette('View: Show Explorer');
      // Collapse the earlier steps' folders: the explorer list is virtualised, rows out of view are not in the page.
      await palette('Collapse Folders in Explorer');
      await expand('families', 1);
      for (const f of FAMILY_MINIATURES) await explorerRow(f.name, 2);
    });

    for (const fam of FAMILY_MINIATURES) {
      const dir = path.join(famRoot, fam.name);
      const cfg = JSON.parse(fs.readFileSync(path.join(fam.src, fam.genai ? 'genai_config.json' : 'config.json'), 'utf8'));
      const L = fam.genai ? cfg.model.decoder.num_hidden_layers : (cfg.text_config ?? cfg).num_hidden_layers;
      let out;
      let expectRemoved;
      await step(`${fam.name}: prune with calibration from the explorer menu`, async () => {
        const before = new Set(notifications);
        const fresh = (re) => [...notifications].find((s) => !before.has(s) && re.test(s));
        if (!(await page.locator('.explorer-folders-view').isVisible())) await palette('View: Show Explorer');
        await expand('families', 1);
        await pruneMenuOn(await explorerRow(fam.name, 2));
        const ratio = await quickInput(/pruning ratio/);
        const first = await ratio.locator('.monaco-list-row').first().innerText();
        const m = /remove (\d+) of (\d+) layers/.exec(first);
        assert(m && Number(m[2]) === L, `the ratio pick should count the package's ${L} layers: "${first}"`);
        expectRemoved = Number(m[1]);
        await page.keyboard.press('Enter');
        await pickRow(await quickInput(/calibration data/), 'data/tiny-vqa/calib.json');
        const done = await waitFor(`"pruned ${fam.name}" or an error`, () => fresh(new RegExp(`pruned ${fam.name}\\b|failed|cannot prune|not a model package`)), 240000, 500);
        assert(/pruned/.test(done) && !/failed/.test(done), done);
        out = path.join(famRoot, /→\s*(\S+)\s*$/.exec(done)?.[1] ?? '');
        const report = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8'));
        assert(report.model.numLayers === L, `report: ${report.model.numLayers} layers, package has ${L}`);
        assert(report.removed.length === expectRemoved && report.output.numLayers === L - expectRemoved, `removed [${report.removed}], ${report.output.numLayers} left`);
        assert(report.calibration.samples === FAMILY_SAMPLES, `calibration used ${report.calibration.samples} samples`);
        assert(report.calibration.visualTokensMean === fam.imageTokens, `image tokens per prompt ${report.calibration.visualTokensMean}, the family's processor gives ${fam.imageTokens}`);
        if (fam.scp) assert(report.pairs.length === expectRemoved && !report.warnings.some((w) => /SCP skipped/.test(w)), `pairs ${JSON.stringify(report.pairs)}, warnings ${report.warnings}`);
        else assert(report.pairs.length === 0 && /SCP skipped/.test(report.warnings.join('\n')), `Gemma: ${JSON.stringify(report.pairs)} / ${report.warnings}`);
        const outCfg = JSON.parse(fs.readFileSync(path.join(out, fam.genai ? 'genai_config.json' : 'config.json'), 'utf8'));
        const outL = fam.genai ? outCfg.model.decoder.num_hidden_layers : (outCfg.text_config ?? outCfg).num_hidden_layers;
        assert(outL === L - expectRemoved, `pruned config says ${outL} layers`);
        say(`  ${done}`);
      });

      await step(`${fam.name}: Benchmark Models compares it with its original and opens the benchmark panel`, async () => {
        assert(out && fs.existsSync(out), 'no pruned package from the previous step');
        await palette('Short-LVLM: Benchmark Models...');
        const pick = await quickInput(/models to benchmark/);
        const checked = await pick.locator('.monaco-list-row[aria-checked="true"]').allInnerTexts();
        assert(checked.length === 2 && checked.some((s) => s.includes(path.basename(out))) && checked.some((s) => /original/.test(s) && s.includes(fam.name)), `preselected: ${JSON.stringify(checked)}`);
        await pick.getByRole('button', { name: 'OK' }).click();
        await pickRow(await quickInput(/evaluation data/), 'data/tiny-vqa/eval.jsonl');
        const report = await waitFor('report.benchmark in the pruned report', () => {
          const r = JSON.parse(fs.readFileSync(path.join(out, 'short-lvlm-report.json'), 'utf8'));
          return r.benchmark ? r : undefined;
        }, 120000, 500);
        const rows = report.benchmark.rows;
        assert(rows.length === 2 && rows[0].numLayers === L && rows[1].numLayers === L - expectRemoved, `rows: ${rows.map((r) => `${r.label} ${r.numLayers}`)}`);
        assert(report.benchmark.items === FAMILY_SAMPLES, `benchmark items ${report.benchmark.items}`);
        for (const r of rows) {
          const n = Object.values(r.families).reduce((a, f) => a + f.n, 0);
          assert(n === FAMILY_SAMPLES && r.accuracy >= 0 && r.accuracy <= 1 && r.samplesPerSecond > 0, `row ${r.label}: ${n} items, ${r.accuracy}, ${r.samplesPerSecond}/s`);
        }
        assert(rows[1].agreement >= 0 && rows[1].agreement <= 1 && Number.isFinite(rows[1].klMean), `pruned row against its original: agreement ${rows[1].agreement}, KL ${rows[1].klMean}`);
        const tab = page.locator('.tab.active', { hasText: `Benchmark: ${path.basename(out)}` });
        await waitFor('the benchmark panel of this package', () => tab.first().isVisible(), 30000, 500);
        const text = await waitFor('benchmark panel text with accuracy', async () => (await webviewTexts()).map((w) => w.text).find((s) => s.includes(fam.name) && /accuracy/i.test(s) && /\d+(\.\d+)?\s*%/.test(s)), 30000, 500);
        say(`  ${rows.map((r) => `${r.label}: ${(r.accuracy * 100).toFixed(0)} %, ${r.samplesPerSecond.toFixed(1)}/s`).join('; ')}`);
        if (fam.name === 'tiny-qwen2vl') await page.screenshot({ path: path.join(tmp, 'qwen2vl-benchmark-workbench.png') });
        say(`  panel: ${text.replace(/\s+/g, ' ').slice(0, 100)}...`);
      });
    }
  }
  // ---------------------------------------------------------------- end of issue 11's block
  // ---------------------------------------------------------------- issue 15: ask both models
  await step('Ask Both Models from a run in the Runs view: both models answer a calibration question', async () => {
    await palette('View: Show Short-LVLM');
    const runs = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Runs' }) });
    const row = runs.locator('.monaco-list-row', { hasText: new RegExp(`${path.basename(out1).replace(/\./g, '\\.')}(?![-\\d])`) }).first();
    await waitFor('the first run in the Runs view', () => row.isVisible(), 20000);
    await row.hover();
    const action = row.locator('.action-label[aria-label^="Ask Both Models"]');
    await waitFor('the run\'s inline "Ask Both Models" action', () => action.isVisible(), 10000, 200);
    await action.click();
    await waitFor('the ask panel tab', () => page.locator('.tab', { hasText: `Ask Both Models: ${path.basename(out1)}` }).first().isVisible(), 30000, 300);
    const frame = await waitFor(
      'the ask page with a calibration image and its question',
      async () => {
        for (const { frame } of await webviewTexts()) {
          if (!(await frame.locator('#ask-question').count())) continue;
          if ((await frame.locator('#ask-question').inputValue()).trim() && (await frame.locator('.ask-preview img').count())) return frame;
        }
      },
      60000,
      500,
    );
    const question = await frame.locator('#ask-question').inputValue();
    const image = await frame.locator('.ask-preview figcaption').innerText();
    assert(/^calib_\d+\.png$/.test(image), `the first image offered should be a calibration image, got "${image}"`);
    await frame.locator('#ask-run').click();
    await waitFor('both answers', async () => (await frame.locator('#ask-pruned-text').count()) > 0 || (await frame.locator('#ask-status.ask-error').count()) > 0, 120000, 500);
    assert(!(await frame.locator('#ask-status.ask-error').count()), `the ask failed: ${await frame.locator('#ask-status').innerText().catch(() => '')}`);
    const original = (await frame.locator('#ask-original-text').innerText()).trim();
    const pruned = (await frame.locator('#ask-pruned-text').innerText()).trim();
    const kl = (await frame.locator('#ask-kl-first').innerText()).trim();
    assert(original && pruned, `both answers shown: "${original}" / "${pruned}"`);
    assert(/^\d[\d.e+-]* nats$/.test(kl), `first-token KL shown, got "${kl}"`);
    assert((await frame.locator('#ask-detail table').count()) === 2, 'the top-k of both models at the first step');
    say(`  ${image} "${question}": original "${original}", pruned "${pruned}", KL first token ${kl}`);
  });

  await step('Ask Both Models from the report: the panels\' header button opens it on the report\'s pruned model', async () => {
    await palette('View: Close All Editors');
    await waitFor('no ask tab', async () => (await page.locator('.tab', { hasText: 'Ask Both Models:' }).count()) === 0, 20000, 300);
    // Whichever report the palette's panel command opens (the family miniatures' runs may be newer).
    await palette('Short-LVLM: Show Report Panel...');
    await quickInput(/panel for/);
    await page.keyboard.type('Layer Redundancy');
    await page.keyboard.press('Enter');
    const button = await waitFor(
      'the report panel\'s "Ask Both Models" button',
      async () => {
        for (const { frame } of await webviewTexts()) if (await frame.locator('#open-ask').count()) return frame.locator('#open-ask');
      },
      60000,
      500,
    );
    await button.click();
    await waitFor('the ask panel tab', () => page.locator('.tab', { hasText: /Ask Both Models: \S+-short-lvlm-/ }).first().isVisible(), 30000, 300);
    await waitFor(
      'the ask page',
      async () => {
        for (const { frame } of await webviewTexts()) if (await frame.locator('#ask-question').count()) return true;
      },
      60000,
      500,
    );
  });
  await formSteps();
}

// ------------------------------------------------------------------ issue 15: the run form and the sweep from the UI

/** The webview frame holding `selector` (forms keep their context when hidden: several frames may be live). */
async function frameWith(what, selector, timeoutMs = 30000) {
  return waitFor(
    what,
    async () => {
      for (const { frame } of await webviewTexts()) if (await frame.locator(selector).count().catch(() => 0)) return frame;
    },
    timeoutMs,
    500,
  );
}

/** Types into a form's text field (a toolkit element; the input is in its shadow root) and waits for the engine's check. */
async function formType(frame, field, text) {
  await frame.locator(`#field-${field} input`).fill(text);
  await waitFor(`the form to check ${field}`, async () => !(await frame.locator('#reasons').innerText()).includes('Checking'), 30000, 200);
}

async function formSteps() {
  const formOut = path.join(ws, 'models', 'tiny-llava-form');
  await step('the run form opens from the explorer, checks its fields, runs and writes a pruned package', async () => {
    // The vision encoder: the form must say that the decoder is what gets pruned.
    await explorerMenu('vision_encoder.onnx', 'Prune Model (Form)...');
    const form = await frameWith('the run form', '#field-model');
    await waitFor('the model facts', async () => /decoder_model_merged\.onnx/.test(await form.locator('#model-facts').innerText()), 60000, 500);
    const facts = (await form.locator('#model-facts').innerText()).replace(/\s+/g, ' ');
    assert(/decoder pruned onnx\/decoder_model_merged\.onnx \(fp32\)/.test(facts) && /family llava \(LlavaForConditionalGeneration\)/.test(facts) && /layers 16/.test(facts), `model facts: ${facts}`);
    const count = await form.locator('#calib-count').innerText();
    // All 320 samples, or the 16 that shortLvlm.samples asks for when this runs before the cancel step resets it.
    assert(/^\d+ usable samples( of 320 records)? \(JSON\)/.test(count), `calibration preview: ${count}`);
    assert((await form.locator('.thumb img[src^="data:image/png"]').count()) === 4, 'four thumbnails in the calibration preview');
    // Invalid first: Run disabled with the reason.
    await formType(form, 'targetValue', '0.7');
    assert(await form.locator('#run').evaluate((b) => b.hasAttribute('disabled')), 'Run is enabled with ratio 0.7');
    const why = await form.locator('#reasons').innerText();
    assert(/Share of layers removed: must be a number in \(0, 0\.5\], got "0\.7"/.test(why), `reasons: ${why}`);
    await formType(form, 'targetValue', '0.25');
    await formType(form, 'samples', '8');
    await formType(form, 'out', formOut);
    await waitFor('Run to be enabled', async () => !(await form.locator('#run').evaluate((b) => b.hasAttribute('disabled'))), 30000, 300);
    const method = await form.locator('#field-method').evaluate((d) => d.value);
    const pruned = [...notifications].filter((s) => /pruned tiny-llava/.test(s)).length;
    await form.locator('#run').click();
    await waitFor('the run to finish in the form', async () => /^Pruned: removed layers/.test(await form.locator('#run-outcome').innerText().catch(() => '')), 240000, 500);
    await waitFor('the "pruned" notification', () => [...notifications].filter((s) => /pruned tiny-llava/.test(s)).length > pruned, 30000, 300);
    const report = JSON.parse(fs.readFileSync(path.join(formOut, 'short-lvlm-report.json'), 'utf8'));
    assert(report.removed.length === 4 && report.output.numLayers === 12, `expected round(0.25 x 16) = 4 layers removed, got [${report.removed}]`);
    // Output-aware methods choose on some samples and measure on a held-out rest: together the 8 the form asked for.
    const m = report.measurement;
    const used = report.calibration.samples + (m && !m.heldOutInCalibration ? m.heldOutSamples : 0);
    assert(used === 8, `calibration used ${report.calibration.samples} + ${m?.heldOutSamples} held-out samples, the form said 8`);
    assert(report.options.method === method, `the report's method ${report.options.method}, the form's ${method}`);
    assert(fs.existsSync(path.join(formOut, 'onnx', 'decoder_model_merged.onnx')), 'no pruned decoder');
    say(`  ${await form.locator('#run-outcome').innerText()}`);
  });

  await step('a small sweep started from the UI shows its progress and opens the trade-off chart', async () => {
    await palette('Short-LVLM: Trade-off Sweep...');
    const form = await frameWith('the sweep form', '#field-ratios');
    await waitFor('the sweep form to know the model', async () => /layers 16/.test((await form.locator('#model-facts').innerText()).replace(/\s+/g, ' ')), 60000, 500);
    await formType(form, 'ratios', '0.25');
    await formType(form, 'samples', '8');
    await formType(form, 'evalSamples', '12');
    await formType(form, 'randomSeeds', '1');
    await formType(form, 'exhaustiveLimit', '0');
    await waitFor('Run Sweep to be enabled', async () => !(await form.locator('#run').evaluate((b) => b.hasAttribute('disabled'))), 30000, 300);
    const methods = await form.locator('#field-methods vscode-checkbox[checked]').evaluateAll((els) => els.map((e) => e.dataset.method));
    await form.locator('#run').click();
    await waitFor('the sweep progress in the form', async () => /\d+\/\d+/.test(await form.locator('#progress-text').innerText().catch(() => '')) || (await form.locator('#run-outcome').count()) > 0, 60000, 200);
    await waitFor('the sweep to finish', async () => /^Done in/.test(await form.locator('#run-outcome').innerText().catch(() => '')), 240000, 500);
    await waitFor('the chart tab', () => page.locator('.tab', { hasText: 'Trade-off Chart: tiny-llava' }).first().isVisible(), 30000, 300);
    const chart = await frameWith('the trade-off chart', '#chart-sweep');
    const saved = findFiles(path.join(userData, 'User', 'globalStorage'), /^tiny-llava-.*\.json$/).filter((f) => f.includes(`${path.sep}sweeps${path.sep}`));
    assert(saved.length === 1, `one saved sweep expected, found ${saved.join(', ')}`);
    const result = JSON.parse(fs.readFileSync(saved[0], 'utf8'));
    const drawn = await waitFor('the chart to draw', () => chart.evaluate(() => {
      const c = window.Chart?.getChart(document.getElementById('chart-sweep'));
      return c && c.data.datasets.length ? c.data.datasets.map((d) => ({ label: d.label, data: d.data })) : undefined;
    }), 20000, 300);
    for (const m of methods) {
      const row = result.rows.find((r) => r.method === m && r.ratio === 0.25);
      const ds = drawn.find((d) => d.label.startsWith(`${m}:`));
      assert(row && ds && ds.data.length === 1 && ds.data[0].x === 0.25 && ds.data[0].y === row.accuracy, `method ${m}: chart ${JSON.stringify(ds)} vs result ${JSON.stringify(row)}`);
    }
    assert((await chart.locator('#sweep-table tbody tr').count()) === result.rows.length, 'one table row per scored choice');
    say(`  ${await form.locator('#run-outcome').innerText()}`);
  });
}

async function cleanup() {
  polling = false;
  await browser?.close().catch(() => undefined);
  if (server?.pid) {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    await sleep(1000);
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (tmp && !process.env.KEEP_TMP && results.every((r) => r.ok)) fs.rmSync(tmp, { recursive: true, force: true });
  else if (tmp) say(`kept ${tmp} (code-server.log, user-data/logs, screenshots)`);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void cleanup().then(() => process.exit(130)));

try {
  await main();
} catch (e) {
  results.push({ name: 'setup', ok: false, error: e });
  say(`FAIL setup: ${e?.stack ?? e}`);
} finally {
  await cleanup();
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
