// One LogOutputChannel for the whole extension: the engine's log lines, progress stages and
// full error stacks go here, so notifications can stay short and point at "Show Log".

import * as vscode from 'vscode';

let channel: vscode.LogOutputChannel | undefined;

export function log(): vscode.LogOutputChannel {
  channel ??= vscode.window.createOutputChannel('Short-LVLM', { log: true });
  return channel;
}

/** An error notification (one line; the details are in the log) whose "Show Log" button reveals the channel. */
export async function showError(message: string): Promise<void> {
  const pick = await vscode.window.showErrorMessage(message.split('\n')[0], 'Show Log');
  if (pick === 'Show Log') log().show(true);
}
