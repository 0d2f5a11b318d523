// Integration test in a real VS Code extension host: code-server (offline, Node 24) driven
// through Debian's chromium with playwright-core. The extension under test is the .vsix a user
// would install: `npm run package` builds it, its contents are checked, and code-server
// installs it into an empty extensions folder. Scenario: prune the bundled tiny model from the
// explorer's context menu, check the output package, open the report and its panels and read
// the webviews' text, benchmark, cancel a run, survive an engine crash, prune a hand-made
// choice. Prints "N passed, N failed".
//
// Every wait is on a state (a log line, a file, a DOM element), with generous limits: a loaded
// 2-core machine makes each step slower, never different. IT_TIMEOUT_SCALE multiplies them.
//
// Run: npm run test:integration  (installs the tools once via setup.sh, then runs this file)
// Env: KEEP_TMP=1 keeps the temp folder (logs, screenshots), HEADED=1 shows the browser,
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
  await page.keyboard.press('Enter');
}

/** Right-clicks a file of the bundled model's onnx/ folder in the explorer and runs a context-menu entry. */
async function explorerMenu(fileName, entry) {
  if (!(await page.locator('.explorer-folders-view').isVisible())) await palette('View: Show Explorer');
  await expand('models', 1);
  await expand('tiny-llava', 2);
  await expand('onnx', 3);
  const item = page.getByRole('menuitem', { name: entry, exact: true });
  // Rows move while the explorer refreshes (new output folders): a right-click that opened
  // another row's menu is closed and tried again.
  await waitFor(`context menu entry "${entry}"`, async () => {
    if (await item.isVisible()) return true;
    await page.keyboard.press('Escape');
    await (await explorerRow(fileName, 4)).click({ button: 'right' });
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
  await explorerMenu('decoder_model_merged.onnx', 'Prune with Short-LVLM');
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
    assert(/^(320 usable samples|16 usable samples of 320 records) \(JSON\)/.test(count), `calibration preview: ${count}`);
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
