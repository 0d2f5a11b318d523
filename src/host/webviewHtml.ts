// The HTML page of every Short-LVLM webview panel. Pure (no `vscode` import) so tests and the
// browser harness render exactly what the extension host serves.
//
// CSP: nothing remote, no inline script (the one script carries the nonce), no 'unsafe-inline'
// styles: Chart.js and the toolkit set styles through the CSSOM and adopted stylesheets, which
// style-src does not govern; the one <style> element the toolkit creates (FAST's
// :focus-visible probe) takes its nonce from <meta property="csp-nonce">. Images only from the
// extension's resources or data: URIs (calibration images arrive as data URIs from the host).

import { ASK_PAGE, FORM_KINDS, FormKind, PANEL_KINDS, PanelKind, WebviewPage } from '../protocol/messages';

export interface WebviewHtmlOptions {
  /** `webview.cspSource` */
  cspSource: string;
  /** Fresh random nonce for this page (base64 or hex). */
  nonce: string;
  /** `webview.asWebviewUri(dist/webview.js)` */
  scriptUri: string;
  /** `webview.asWebviewUri(media/webview.css)` */
  styleUri: string;
  /** A report panel, the ask page, or a form (dist/forms.js). */
  panel: WebviewPage | FormKind;
  title: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

export function webviewHtml(opts: WebviewHtmlOptions): string {
  if (!/^[A-Za-z0-9+/=_-]{8,}$/.test(opts.nonce)) throw new Error('webviewHtml: nonce must be at least 8 base64/hex characters');
  if (!PANEL_KINDS.includes(opts.panel as PanelKind) && opts.panel !== ASK_PAGE && !FORM_KINDS.includes(opts.panel as FormKind)) throw new Error(`webviewHtml: unknown panel "${opts.panel}"`);
  const nonce = opts.nonce;
  const csp = contentSecurityPolicy(opts.cspSource, nonce);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta property="csp-nonce" content="${escapeHtml(nonce)}">
<link rel="stylesheet" href="${escapeHtml(opts.styleUri)}">
<title>${escapeHtml(opts.title)}</title>
</head>
<body data-panel="${opts.panel}">
<main id="app" aria-live="polite"><p class="empty">Loading ${escapeHtml(opts.title)}…</p></main>
<script nonce="${escapeHtml(nonce)}" src="${escapeHtml(opts.scriptUri)}"></script>
</body>
</html>
`;
}
