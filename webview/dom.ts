// A tiny element builder: text always goes through textContent (token strings and model names
// come from files), styles through the CSSOM (the CSP forbids style="" attributes).

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener> & { class?: string };

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Attrs, ...children: Child[]): HTMLElement;
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function setStyle(el: HTMLElement, style: Partial<Record<string, string>>): HTMLElement {
  for (const [k, v] of Object.entries(style)) if (v !== undefined) el.style.setProperty(k, v);
  return el;
}

/** A section with a heading and an optional one-line explanation. */
export function section(title: string, note?: string, ...children: Child[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', {}, title), note ? h('p', { class: 'note' }, note) : null, ...children);
}

/** A canvas inside a sized box (Chart.js needs a positioned parent to be responsive). */
export function chartBox(id: string, height = 320, label?: string): { box: HTMLElement; canvas: HTMLCanvasElement } {
  const canvas = h('canvas', { id, role: 'img', 'aria-label': label ?? id });
  const inner = h('div', { class: 'chart-box' }, canvas);
  inner.style.height = `${height}px`;
  // The block also holds the chart's export buttons (added by makeChart, above the box).
  return { box: h('div', { class: 'chart-block' }, inner), canvas };
}
