// Browser harness for the webview panels: a small HTTP server on 127.0.0.1 that serves the
// page built by webviewHtml() (the extension's own CSP), dist/webview.js, media/webview.css
// and a fake VS Code environment (acquireVsCodeApi, theme variables, the webview's default
// styles); and a headless Chromium (Debian's, through playwright-core) to load it.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { ASK_PAGE, FORM_KINDS, FormKind, HostToAsk, HostToForm, HostToWebview, WebviewPage } from '../../src/protocol/messages';
import { webviewHtml } from '../../src/host/webviewHtml';
import { DEFAULT_WEBVIEW_CSS, HarnessTheme, THEME_CLASS, THEME_VARS } from './themes';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const MIME: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.png': 'image/png' };

/** The fake VS Code side of the page: runs before dist/webview.js, under the same CSP. */
function harnessScript(theme: HarnessTheme): string {
  return `(() => {
  const THEMES = ${JSON.stringify(THEME_VARS)};
  const CLASSES = ${JSON.stringify(THEME_CLASS)};
  const h = (window.__harness = { messages: [], errors: [], csp: [], images: {}, stateWrites: 0, acquired: 0 });
  document.addEventListener('securitypolicyviolation', (e) => h.csp.push(e.violatedDirective + ' ' + e.blockedURI));
  window.addEventListener('error', (e) => h.errors.push(String(e.message)));
  h.setTheme = (kind) => {
    const vars = THEMES[kind];
    // A variable the new theme does not define is gone, as in VS Code (e.g. charts.orange in high contrast).
    for (const t of Object.values(THEMES)) for (const k of Object.keys(t)) document.documentElement.style.removeProperty(k);
    for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
    document.body.classList.remove('vscode-light', 'vscode-dark', 'vscode-high-contrast');
    document.body.classList.add(CLASSES[kind]);
    document.body.dataset.vscodeThemeKind = CLASSES[kind];
    document.body.dataset.vscodeThemeName = kind === 'light' ? 'Light+' : 'Dark+';
  };
  h.send = (msg) => window.postMessage(msg, '*');
  h.setTheme(${JSON.stringify(theme)});
  window.acquireVsCodeApi = () => {
    if (h.acquired++) throw new Error('An instance of the VS Code API has already been acquired');
    return Object.freeze({
      postMessage(m) {
        h.messages.push(JSON.parse(JSON.stringify(m)));
        if (m && m.type === 'requestImage' && h.images[m.sample]) setTimeout(() => h.send({ type: 'image', sample: m.sample, dataUri: h.images[m.sample] }), 10);
      },
      getState() {
        const s = sessionStorage.getItem('vscode-state');
        return s ? JSON.parse(s) : undefined;
      },
      setState(s) {
        h.stateWrites++;
        sessionStorage.setItem('vscode-state', JSON.stringify(s));
        return s;
      },
    });
  };
})();
`;
}

export interface Harness {
  origin: string;
  close(): Promise<void>;
}

export async function startServer(): Promise<Harness> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (code: number, type: string, body: string | Buffer) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/panel') {
      const origin = `http://${req.headers.host}`;
      const panel = (url.searchParams.get('kind') ?? 'redundancy') as WebviewPage | FormKind;
      const theme = (url.searchParams.get('theme') ?? 'dark') as HarnessTheme;
      const nonce = crypto.randomBytes(16).toString('base64');
      // The run forms and the sweep's chart are dist/forms.js, the ask page dist/askWebview.js, as the host serves them.
      const script = (FORM_KINDS as readonly string[]).includes(panel) ? 'forms.js' : panel === ASK_PAGE ? 'askWebview.js' : 'webview.js';
      let html = webviewHtml({ cspSource: origin, nonce, scriptUri: `${origin}/dist/${script}`, styleUri: `${origin}/media/webview.css`, panel, title: `Short-LVLM ${panel}` });
      // What VS Code adds around our page: its default styles and the API shim.
      html = html.replace('<link rel="stylesheet"', `<link rel="stylesheet" href="${origin}/harness.css">\n<link rel="stylesheet"`);
      html = html.replace('<script nonce=', `<script nonce="${nonce}" src="${origin}/harness.js?theme=${theme}"></script>\n<script nonce=`);
      return send(200, 'text/html; charset=utf-8', html);
    }
    if (url.pathname === '/harness.js') return send(200, MIME['.js'], harnessScript((url.searchParams.get('theme') ?? 'dark') as HarnessTheme));
    if (url.pathname === '/favicon.ico') return send(204, 'image/x-icon', ''); // Chromium asks; VS Code's webview frame never does
    if (url.pathname === '/harness.css') return send(200, MIME['.css'], DEFAULT_WEBVIEW_CSS);
    const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^[/\\]+/, '');
    if (!/^(dist|media)[/\\]/.test(rel)) return send(404, 'text/plain', 'not found');
    const file = path.join(REPO, rel);
    if (!fs.existsSync(file)) return send(404, 'text/plain', 'not found');
    send(200, MIME[path.extname(file)] ?? 'application/octet-stream', fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** One page with everything recorded that the test must check. */
export interface PanelPage {
  page: Page;
  requests: string[];
  consoleErrors: string[];
  /** Messages the webview posted to the (fake) host. */
  messages(): Promise<{ type: string; [k: string]: unknown }[]>;
  send(msg: HostToWebview | HostToAsk | HostToForm): Promise<void>;
  /** CSP violations + page errors + console errors recorded in the page. */
  problems(): Promise<string[]>;
}

export async function openPanel(
  browser: Browser,
  origin: string,
  panel: WebviewPage | FormKind,
  theme: HarnessTheme,
  opts: { width?: number; height?: number; images?: Record<number, string> } = {},
): Promise<PanelPage> {
  const page = await browser.newPage({ viewport: { width: opts.width ?? 1100, height: opts.height ?? 900 }, deviceScaleFactor: 1 });
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/panel?kind=${panel}&theme=${theme}`);
  await page.waitForFunction(() => (window as any).__harness?.messages.some((m: { type: string }) => m.type === 'ready'));
  if (opts.images) await page.evaluate((imgs) => Object.assign((window as any).__harness.images, imgs), opts.images);
  return {
    page,
    requests,
    consoleErrors,
    messages: () => page.evaluate(() => (window as any).__harness.messages),
    async send(msg) {
      const before = Number(await page.evaluate(() => document.body.dataset.renders ?? 0));
      await page.evaluate((m) => (window as any).__harness.send(m), msg as unknown);
      if (msg.type === 'show') await page.waitForFunction((n) => Number(document.body.dataset.renders ?? 0) > n, before);
    },
    async problems() {
      const inPage: { csp: string[]; errors: string[] } = await page.evaluate(() => ({ csp: (window as any).__harness.csp, errors: (window as any).__harness.errors }));
      return [...inPage.csp.map((c) => `CSP: ${c}`), ...inPage.errors.map((e) => `error: ${e}`), ...consoleErrors];
    },
  };
}

export function pngDataUri(file: string): string {
  return `data:image/png;base64,${fs.readFileSync(file).toString('base64')}`;
}
