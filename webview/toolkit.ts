// The only module that knows about @vscode/webview-ui-toolkit (deprecated since 2025): panels
// ask it for a button, a dropdown or a checkbox and get plain elements with plain events, so
// moving to @vscode-elements/elements means rewriting this file only.

import { provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDropdown, vsCodeOption, vsCodeTextField } from '@vscode/webview-ui-toolkit';

let registered = false;

export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeDropdown(), vsCodeOption(), vsCodeCheckbox(), vsCodeTextField());
}

export function button(label: string, onClick: () => void, opts: { appearance?: 'primary' | 'secondary'; title?: string; id?: string } = {}): HTMLElement {
  const b = document.createElement('vscode-button');
  b.setAttribute('appearance', opts.appearance ?? 'secondary');
  if (opts.title) b.setAttribute('title', opts.title);
  if (opts.id) b.id = opts.id;
  b.textContent = label;
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

export function setDisabled(el: HTMLElement, disabled: boolean): void {
  if (disabled) el.setAttribute('disabled', '');
  else el.removeAttribute('disabled');
}

export interface Choice {
  value: string;
  label: string;
}

/** A labelled dropdown. `onChange` gets the chosen value; read/write it with dropdownValue. */
export function dropdown(id: string, label: string, choices: Choice[], value: string, onChange: (value: string) => void): HTMLElement {
  const dd = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  dd.id = id;
  dd.setAttribute('aria-label', label);
  dd.setAttribute('position', 'below');
  for (const c of choices) {
    const o = document.createElement('vscode-option') as HTMLElement & { value: string };
    o.setAttribute('value', c.value);
    o.textContent = c.label;
    if (c.value === value) o.setAttribute('selected', '');
    dd.append(o);
  }
  let last = value;
  dd.addEventListener('change', () => {
    const v = String(dd.value);
    if (v !== last) {
      last = v;
      onChange(v);
    }
  });
  const wrap = document.createElement('label');
  wrap.className = 'control';
  const span = document.createElement('span');
  span.textContent = label;
  wrap.append(span, dd);
  return wrap;
}

export function checkbox(label: string, checked: boolean, onChange: (checked: boolean) => void, opts: { title?: string; data?: Record<string, string> } = {}): HTMLElement {
  const cb = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
  if (checked) cb.setAttribute('checked', '');
  cb.setAttribute('aria-label', opts.title ?? label);
  if (opts.title) cb.setAttribute('title', opts.title);
  for (const [k, v] of Object.entries(opts.data ?? {})) cb.dataset[k] = v;
  cb.textContent = label;
  cb.addEventListener('change', () => onChange(Boolean(cb.checked)));
  return cb;
}

export function isChecked(el: Element): boolean {
  return Boolean((el as HTMLElement & { checked?: boolean }).checked);
}

/** A text field (the run forms' paths and numbers). `onInput` fires on every edit with the text. */
export function textField(id: string, value: string, onInput: (value: string) => void, opts: { placeholder?: string; label?: string } = {}): HTMLElement & { value: string } {
  const tf = document.createElement('vscode-text-field') as HTMLElement & { value: string };
  tf.id = id;
  tf.setAttribute('value', value);
  if (opts.placeholder) tf.setAttribute('placeholder', opts.placeholder);
  if (opts.label) tf.setAttribute('aria-label', opts.label);
  tf.addEventListener('input', () => onInput(String(tf.value ?? '')));
  return tf;
}
