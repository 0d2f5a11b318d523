// A status-bar item while a job runs: its name and stage, so a hidden progress notification
// never hides the job. A click offers to cancel it or show the log.

import * as vscode from 'vscode';
import { log } from './log';
import { ActiveJob, RunManager } from './runManager';

export const SHOW_JOB_COMMAND = 'shortLvlm.showRunProgress';

export function jobStatusText(job: ActiveJob): string {
  const name = job.title.replace(/^Short-LVLM: /, '');
  const stage = job.cancelling ? 'cancelling' : job.progress ?? 'starting';
  return `$(sync~spin) Short-LVLM: ${name} · ${stage}`;
}

export class JobStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('shortLvlm.job', vscode.StatusBarAlignment.Left, 10);
  private readonly subs: vscode.Disposable[];

  constructor(private readonly runs: RunManager) {
    this.item.name = 'Short-LVLM job';
    this.item.command = SHOW_JOB_COMMAND;
    this.subs = [runs.onDidChangeJob((j) => this.update(j)), vscode.commands.registerCommand(SHOW_JOB_COMMAND, () => this.showJob())];
    this.update(runs.active);
  }

  private update(job: ActiveJob | undefined): void {
    if (!job) return void this.item.hide();
    this.item.text = jobStatusText(job);
    this.item.tooltip = `${job.title}: ${job.cancelling ? 'cancelling' : job.progress ?? 'starting'}. Click to cancel it or show the log.`;
    this.item.show();
  }

  private async showJob(): Promise<void> {
    const job = this.runs.active;
    if (!job) return void vscode.window.showInformationMessage('Short-LVLM: nothing is running.');
    const cancel = { label: `$(debug-stop) Cancel ${job.title.replace(/^Short-LVLM: /, '')}`, action: 'cancel' };
    const show = { label: '$(output) Show Log', action: 'log' };
    const pick = await vscode.window.showQuickPick(job.cancelling ? [show] : [cancel, show], {
      title: `${job.title}: ${job.cancelling ? 'cancelling' : job.progress ?? 'starting'}`,
      ignoreFocusOut: true,
    });
    // The job may have ended while the pick was open: cancel only the job it named.
    if (pick?.action === 'cancel' && this.runs.active?.id === job.id) this.runs.cancelCurrent();
    if (pick?.action === 'log') log().show(true);
  }

  dispose(): void {
    this.item.dispose();
    for (const s of this.subs) s.dispose();
  }
}
