// Showing an output folder. `revealFileInOS` exists only in a desktop window working on local
// files: in a browser workbench (code-server, vscode.dev) or a remote one (Remote-SSH, WSL,
// containers; the extension runs where the files are) the folder is not on the user's
// machine, so it is shown in the Explorer instead, after adding it to the workspace if it is
// outside every workspace folder.

import * as path from 'path';
import * as vscode from 'vscode';

/** Where a folder can be shown: the OS file manager only for a local desktop window. */
export function revealTarget(env: { remoteName: string | undefined; uiKind: vscode.UIKind }, inWorkspace: boolean): 'os' | 'explorer' | 'outside' {
  if (env.remoteName === undefined && env.uiKind === vscode.UIKind.Desktop) return 'os';
  return inWorkspace ? 'explorer' : 'outside';
}

function inWorkspace(folder: string): boolean {
  return (vscode.workspace.workspaceFolders ?? []).some((w) => {
    const rel = path.relative(w.uri.fsPath, folder);
    return !rel.startsWith('..') && !path.isAbsolute(rel);
  });
}

export async function revealFolder(folder: string): Promise<void> {
  const uri = vscode.Uri.file(folder);
  switch (revealTarget(vscode.env, inWorkspace(folder))) {
    case 'os':
      await vscode.commands.executeCommand('revealFileInOS', uri);
      return;
    case 'explorer':
      await vscode.commands.executeCommand('revealInExplorer', uri);
      return;
    case 'outside': {
      const add = 'Add to Workspace';
      const open = 'Open in New Window';
      const a = await vscode.window.showInformationMessage(`Short-LVLM: ${folder} is outside the workspace.`, add, open);
      if (a === add) {
        vscode.workspace.updateWorkspaceFolders(vscode.workspace.workspaceFolders?.length ?? 0, 0, { uri });
        await vscode.commands.executeCommand('revealInExplorer', uri);
      } else if (a === open) await vscode.commands.executeCommand('vscode.openFolder', uri, { forceNewWindow: true });
    }
  }
}
