// Styles of the ask page only (the shared ones are media/webview.css), adopted through the
// CSSOM: the CSP allows no inline <style>.

export const ASK_CSS = `
.ask-form { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.ask-fields { flex: 1 1 420px; min-width: 0; }
#ask-question {
  width: 100%; box-sizing: border-box; resize: vertical; margin: 6px 0 10px; padding: 6px 8px;
  font: inherit; color: var(--vscode-input-foreground); background: var(--vscode-input-background);
  border: 1px solid var(--vscode-input-border, var(--vscode-panel-border, rgba(128,128,128,.4))); border-radius: 2px;
}
#ask-question:focus, .control input[type=number]:focus { outline: 1px solid var(--vscode-focusBorder); outline-offset: -1px; }
.control input[type=number] {
  width: 5em; padding: 3px 6px; font: inherit; color: var(--vscode-input-foreground); background: var(--vscode-input-background);
  border: 1px solid var(--vscode-input-border, var(--vscode-panel-border, rgba(128,128,128,.4))); border-radius: 2px;
}
.ask-preview { margin: 0; flex: 0 0 auto; text-align: center; }
.ask-preview img, .ask-preview .image-placeholder { width: 168px; height: 168px; object-fit: contain; image-rendering: pixelated; border: 1px solid var(--border); display: block; }
.ask-preview .image-placeholder { display: flex; align-items: center; justify-content: center; color: var(--muted); }
.ask-preview figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; max-width: 168px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ask-error { color: var(--vscode-errorForeground, #f14c4c); }
.linklike { background: none; border: none; padding: 0; font: inherit; color: var(--vscode-textLink-foreground); cursor: pointer; text-align: left; }
.linklike:hover { text-decoration: underline; }
.ask-text { font-size: 1.5em; font-weight: 600; margin: 4px 0 8px; word-break: break-word; }
.ask-answer.pruned .ask-text.differs { color: var(--vscode-editorWarning-foreground, #cca700); }
.ask-chips { margin: 0 0 6px; }
.ask-chip { cursor: default; background: var(--vscode-badge-background); color: var(--vscode-badge-foreground); font-family: var(--vscode-editor-font-family, monospace); }
.ask-chip.eos { background: transparent; color: var(--muted); border: 1px dashed var(--muted); }
.ask-chip.current, .ask-chip:focus { border-color: var(--vscode-focusBorder); outline: none; }
.ask-detail { margin-top: 8px; }
table.ask-top caption { text-align: left; color: var(--muted); padding: 0 0 4px; }
table.ask-top tr.ask-chosen td { font-weight: 700; }
.ask-bar-cell { width: 45%; }
.ask-bar { display: block; height: 0.8em; background: var(--vscode-charts-blue, var(--blue)); border-radius: 2px; }
.ask-kl-step { font-variant-numeric: tabular-nums; margin: 6px 0 0; }
`;
