// Custom editor for the report file (REPORT_FILE): opening the file shows the report's overview (the
// redundancy panel, whose buttons open the other panels) instead of raw JSON. Read-only: the
// report is the engine's output, edits belong in a new run.

import * as vscode from 'vscode';
import { REPORT_FILE } from '../protocol/files';
import { REPORT_VIEW_TYPE } from '../protocol/messages';
import { bindWebview, PanelHost } from './panels';

export class ReportEditorProvider implements vscode.CustomReadonlyEditorProvider {
  constructor(
    private readonly ctx: vscode.ExtensionContext,
    private readonly host: PanelHost,
    /** Called when a report is shown, so the Layers view can follow it. */
    private readonly onShow: (reportPath: string) => void,
  ) {}

  static register(ctx: vscode.ExtensionContext, host: PanelHost, onShow: (reportPath: string) => void): vscode.Disposable {
    return vscode.window.registerCustomEditorProvider(REPORT_VIEW_TYPE, new ReportEditorProvider(ctx, host, onShow), {
      supportsMultipleEditorsPerDocument: true,
    });
  }

  openCustomDocument(uri: vscode.Uri): vscode.CustomDocument {
    return { uri, dispose: () => undefined };
  }

  resolveCustomEditor(document: vscode.CustomDocument, panel: vscode.WebviewPanel): void {
    const reportPath = document.uri.fsPath;
    const disposables: vscode.Disposable[] = [];
    const refresh = bindWebview(this.ctx, panel.webview, 'redundancy', reportPath, this.host, disposables);
    // Follow rewrites of the file (a benchmark adds its results to the report).
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.joinPath(document.uri, '..'), REPORT_FILE));
    disposables.push(watcher, watcher.onDidChange(() => refresh()), watcher.onDidCreate(() => refresh()));
    disposables.push(panel.onDidChangeViewState((e) => e.webviewPanel.active && this.onShow(reportPath)));
    panel.onDidDispose(() => disposables.forEach((d) => d.dispose()));
    this.onShow(reportPath);
  }
}
