// Webview panels (redundancy, tokens, gap, benchmark) over one report each. The host only
// feeds data: the panels' UI is dist/webview.js (webview/), its HTML and CSP come from
// webviewHtml(). The report path is kept in workspaceState per panel kind so a serializer can
// bring a panel back after a window reload.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { describeError } from '../protocol/errorText';
import { ExportRequest, HostToWebview, LinkedSelection, PANEL_KINDS, PANEL_TITLES, PanelKind, panelViewType as viewType, WebviewToHost } from '../protocol/messages';
import type { Report } from '../protocol/report';
import { log, showError } from './log';
import { webviewHtml } from './webviewHtml';
const stateKey = (kind: PanelKind) => `shortLvlm.panelReport.${kind}`;

const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.bmp': 'image/bmp' };

export function readReport(file: string): Report {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Report;
}

/** Finds a token sample's image: as recorded, else next to the calibration file or the report. */
export function resolveSampleImage(report: Report, reportPath: string, sample: number): string | undefined {
  const image = report.tokenSamples?.[sample]?.image;
  if (!image) return undefined;
  const candidates = path.isAbsolute(image)
    ? [image]
    : [report.calibration?.file ? path.resolve(path.dirname(report.calibration.file), image) : '', path.resolve(path.dirname(reportPath), image)].filter(Boolean);
  return candidates.find((p) => fs.existsSync(p));
}

export function imageDataUri(file: string): string {
  const mime = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
  return `data:${mime};base64,${fs.readFileSync(file).toString('base64')}`;
}

export interface PanelHost {
  /** Open (or reveal) a panel of this kind on the report. */
  open(kind: PanelKind, reportPath: string): void;
  /** A webview asked to select these layers for removal. */
  selectLayers(reportPath: string, layers: number[]): void;
}

// ---------------------------------------------------------------- linked selection and export
/** What the host relays between webviews and the Layers view (see LinkedSelection). */
export interface LinkHost {
  /** A webview selected a layer or changed its ticks; `from` is that webview (not echoed back). */
  linked(reportPath: string, m: LinkedSelection, from: vscode.Webview): void;
  /** The selection and ticks the Layers view holds for this report's model, sent after each show. */
  current(report: Report): LinkedSelection[];
}

let linkHost: LinkHost | undefined;
export const setLinkHost = (h: LinkHost | undefined): void => {
  linkHost = h;
};

/** Every bound webview (panels and the report editor) with its report. */
const bound = new Set<{ webview: vscode.Webview; reportPath: string }>();

/** Sends a selection to every bound webview but `except`. */
export function broadcast(m: LinkedSelection, except?: vscode.Webview): void {
  for (const b of bound) if (b.webview !== except) void b.webview.postMessage(m);
}

/** The clipboard and the save dialog for a webview's "Copy as CSV" / "Save PNG". */
async function exportFromWebview(m: ExportRequest, reportPath: string): Promise<void> {
  if (m.type === 'copyText') {
    await vscode.env.clipboard.writeText(m.text);
    const rows = m.text.split('\n').filter(Boolean).length - 1;
    vscode.window.setStatusBarMessage(`Short-LVLM: copied the ${m.what} as CSV (${rows} rows)`, 4000);
    return;
  }
  const b64 = /^data:image\/png;base64,(.+)$/.exec(m.dataUri)?.[1];
  if (!b64) throw new Error('the panel sent no PNG image');
  const name = path.basename(m.name).replace(/[^\w.-]+/g, '-');
  const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(path.dirname(reportPath), name)), filters: { 'PNG image': ['png'] }, title: 'Short-LVLM: save chart as PNG' });
  if (!target) return;
  // Written beside the target, then renamed: an interrupted save leaves no half image.
  const tmp = `${target.fsPath}.${process.pid}.partial`;
  fs.writeFileSync(tmp, Buffer.from(b64, 'base64'));
  fs.renameSync(tmp, target.fsPath);
  vscode.window.setStatusBarMessage(`Short-LVLM: saved ${target.fsPath}`, 4000);
}

/**
 * Binds a webview (a panel's or the custom editor's) to a report: HTML, and answers to its
 * messages. Returns a function that re-sends the report (after a benchmark rewrote it).
 */
export function bindWebview(ctx: vscode.ExtensionContext, webview: vscode.Webview, kind: PanelKind, reportPath: string, host: PanelHost, disposables: vscode.Disposable[]): () => void {
  const dist = vscode.Uri.joinPath(ctx.extensionUri, 'dist');
  const media = vscode.Uri.joinPath(ctx.extensionUri, 'media');
  webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
  const cssInDist = fs.existsSync(path.join(ctx.extensionPath, 'dist', 'webview.css'));
  webview.html = webviewHtml({
    cspSource: webview.cspSource,
    nonce: crypto.randomBytes(16).toString('base64'),
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js')).toString(),
    styleUri: webview.asWebviewUri(cssInDist ? vscode.Uri.joinPath(dist, 'webview.css') : vscode.Uri.joinPath(media, 'webview.css')).toString(),
    panel: kind,
    title: `${PANEL_TITLES[kind]} — ${path.basename(path.dirname(reportPath))}`,
  });
  let ready = false;
  const post = (m: HostToWebview) => void webview.postMessage(m);
  const show = () => {
    if (!ready) return;
    try {
      const report = readReport(reportPath);
      post({ type: 'show', panel: kind, report, benchmark: report.benchmark });
      for (const m of linkHost?.current(report) ?? []) post(m);
    } catch (e) {
      log().error(`cannot read report ${reportPath}: ${(e as Error).message}`);
      void showError(`Short-LVLM: cannot read ${reportPath}: ${describeError(e)}`);
    }
  };
  disposables.push(
    webview.onDidReceiveMessage((m: WebviewToHost) => {
      switch (m.type) {
        case 'ready':
          ready = true;
          show();
          return;
        case 'requestImage': {
          try {
            const file = resolveSampleImage(readReport(reportPath), reportPath, m.sample);
            if (!file) throw new Error(`sample ${m.sample} has no image on disk`);
            post({ type: 'image', sample: m.sample, dataUri: imageDataUri(file) });
          } catch (e) {
            log().warn(`image for sample ${m.sample}: ${(e as Error).message}`);
          }
          return;
        }
        case 'openPanel':
          host.open(m.panel, reportPath);
          return;
        case 'selectLayers':
          host.selectLayers(reportPath, m.layers);
          return;
        case 'runBenchmark':
          void vscode.commands.executeCommand('shortLvlm.benchmark', reportPath);
          return;
        case 'selectLayer':
        case 'tickLayers':
          linkHost?.linked(reportPath, m, webview);
          return;
        case 'copyText':
        case 'savePng':
          exportFromWebview(m, reportPath).catch((e) => void showError(`Short-LVLM: ${describeError(e)}`));
          return;
        case 'openAsk':
          // "Ask both models" on this report's pruned package (issue 15).
          void vscode.commands.executeCommand('shortLvlm.askBoth', vscode.Uri.file(path.dirname(reportPath)));
          return;
      }
    }),
  );
  const entry = { webview, reportPath };
  bound.add(entry);
  disposables.push({ dispose: () => bound.delete(entry) });
  return show;
}

class ReportPanel {
  private readonly disposables: vscode.Disposable[] = [];
  private refresh: () => void = () => undefined;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    readonly kind: PanelKind,
    readonly panel: vscode.WebviewPanel,
    public reportPath: string,
    private readonly host: PanelHost,
    onDispose: () => void,
  ) {
    this.bind(reportPath);
    panel.onDidDispose(() => {
      onDispose();
      for (const d of this.disposables.splice(0)) d.dispose();
    });
  }

  bind(reportPath: string): void {
    for (const d of this.disposables.splice(0)) d.dispose();
    this.reportPath = reportPath;
    this.panel.title = `${PANEL_TITLES[this.kind]}: ${path.basename(path.dirname(reportPath))}`;
    this.panel.iconPath = vscode.Uri.joinPath(this.ctx.extensionUri, 'media', 'activitybar.svg');
    this.refresh = bindWebview(this.ctx, this.panel.webview, this.kind, reportPath, this.host, this.disposables);
  }

  update(): void {
    this.refresh();
  }
}

export class Panels implements PanelHost, vscode.Disposable {
  private readonly open_ = new Map<PanelKind, ReportPanel>();
  private readonly subs: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly onSelectLayers: (reportPath: string, layers: number[]) => void,
  ) {
    for (const kind of PANEL_KINDS) {
      this.subs.push(
        vscode.window.registerWebviewPanelSerializer(viewType(kind), {
          deserializeWebviewPanel: async (panel, state: unknown) => {
            const fromState = (state as { reportPath?: string } | undefined)?.reportPath;
            const reportPath = fromState ?? ctx.workspaceState.get<string>(stateKey(kind));
            if (!reportPath || !fs.existsSync(reportPath)) {
              panel.webview.html = `<!DOCTYPE html><html><body><p>The Short-LVLM report shown here is no longer available${reportPath ? ` (${reportPath})` : ''}.</p></body></html>`;
              return;
            }
            this.adopt(kind, panel, reportPath);
          },
        }),
      );
    }
  }

  open(kind: PanelKind, reportPath: string): void {
    void this.ctx.workspaceState.update(stateKey(kind), reportPath);
    const existing = this.open_.get(kind);
    if (existing) {
      if (existing.reportPath !== reportPath) existing.bind(reportPath);
      existing.panel.reveal();
      return;
    }
    const panel = vscode.window.createWebviewPanel(viewType(kind), PANEL_TITLES[kind], vscode.ViewColumn.Active, {
      enableScripts: true,
      retainContextWhenHidden: false,
      localResourceRoots: [vscode.Uri.joinPath(this.ctx.extensionUri, 'dist'), vscode.Uri.joinPath(this.ctx.extensionUri, 'media')],
    });
    this.adopt(kind, panel, reportPath);
  }

  selectLayers(reportPath: string, layers: number[]): void {
    this.onSelectLayers(reportPath, layers);
  }

  /** Re-sends the report to every panel showing it (after a benchmark was written into it). */
  refresh(reportPath: string): void {
    for (const p of this.open_.values()) if (p.reportPath === reportPath) p.update();
  }

  private adopt(kind: PanelKind, panel: vscode.WebviewPanel, reportPath: string): void {
    this.open_.get(kind)?.panel.dispose();
    this.open_.set(kind, new ReportPanel(this.ctx, kind, panel, reportPath, this, () => {
      if (this.open_.get(kind)?.panel === panel) this.open_.delete(kind);
    }));
  }

  dispose(): void {
    for (const p of this.open_.values()) p.panel.dispose();
    for (const s of this.subs) s.dispose();
  }
}
