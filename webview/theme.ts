// Colours and fonts read from VS Code's CSS variables at render time (and again when the body's
// theme class changes), applied to Chart.js defaults.

import { Chart } from 'chart.js';

export type ThemeKind = 'light' | 'dark' | 'high-contrast';

export interface Theme {
  kind: ThemeKind;
  fg: string;
  muted: string;
  bg: string;
  grid: string;
  border: string;
  fontFamily: string;
  monoFamily: string;
  fontSize: number;
  blue: string;
  red: string;
  green: string;
  orange: string;
  purple: string;
  yellow: string;
  /** Grey for reference series (random seeds, unused directions), readable like the colours. */
  neutral: string;
}

const FALLBACK = {
  light: { fg: '#616161', bg: '#ffffff', blue: '#1a85ff', red: '#e51400', green: '#388a34', orange: '#d18616', purple: '#652d90', yellow: '#bf8803' },
  dark: { fg: '#cccccc', bg: '#1e1e1e', blue: '#3794ff', red: '#f14c4c', green: '#89d185', orange: '#d18616', purple: '#b180d7', yellow: '#cca700' },
};

export function themeKind(): ThemeKind {
  const c = document.body.classList;
  if (c.contains('vscode-high-contrast') || c.contains('vscode-high-contrast-light')) return 'high-contrast';
  if (c.contains('vscode-light')) return 'light';
  return 'dark';
}

let probe: CanvasRenderingContext2D | null = null;

/** Any CSS colour -> [r, g, b, a] (a in 0..1), via the canvas parser. */
export function parseColor(c: string): [number, number, number, number] {
  probe ??= document.createElement('canvas').getContext('2d');
  if (!probe) return [128, 128, 128, 1];
  probe.fillStyle = '#000';
  probe.fillStyle = c.trim();
  const s = String(probe.fillStyle);
  if (s.startsWith('#')) return [parseInt(s.slice(1, 3), 16), parseInt(s.slice(3, 5), 16), parseInt(s.slice(5, 7), 16), 1];
  const m = /rgba?\(([^)]+)\)/.exec(s);
  if (!m) return [128, 128, 128, 1];
  const p = m[1].split(',').map((x) => parseFloat(x));
  return [p[0], p[1], p[2], p[3] ?? 1];
}

export function alpha(c: string, a: number): string {
  const [r, g, b, a0] = parseColor(c);
  return `rgba(${r}, ${g}, ${b}, ${+(a * a0).toFixed(3)})`;
}

/** Mix two colours (t = 0 -> a, 1 -> b). */
export function mix(a: string, b: string, t: number): string {
  const x = parseColor(a);
  const y = parseColor(b);
  const m = (i: number) => Math.round(x[i] + (y[i] - x[i]) * t);
  return `rgb(${m(0)}, ${m(1)}, ${m(2)})`;
}

/** WCAG relative luminance of an opaque colour. */
function luminance([r, g, b]: number[]): number {
  const lin = (v: number) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** The colour as seen over an opaque background (alpha composited). */
function over(c: string, bg: string): number[] {
  const [r, g, b, a] = parseColor(c);
  const [R, G, B] = parseColor(bg);
  return [r * a + R * (1 - a), g * a + G * (1 - a), b * a + B * (1 - a)];
}

/** WCAG contrast ratio of a (possibly translucent) colour against an opaque background. */
export function contrast(c: string, bg: string): number {
  const x = luminance(over(c, bg));
  const y = luminance(over(bg, '#808080'));
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/** Minimum contrast of every chart series against the editor background (WCAG's for graphics). */
export const SERIES_CONTRAST = 3;
/** Bars and areas are filled at this opacity; their series colour must stay readable there too. */
export const FILL_ALPHA = 0.8;

/**
 * The theme's colour made usable as a chart series: opaque (a theme may give a translucent
 * highlight colour, e.g. Dark Modern's charts.orange falls back to a 33 % find-match tint), then
 * moved towards black on light backgrounds or white on dark ones until even its fill reaches
 * SERIES_CONTRAST against the background.
 */
export function readable(c: string, bg: string): string {
  const [r, g, b, a] = parseColor(c);
  if (a === 1 && contrast(alpha(c, FILL_ALPHA), bg) >= SERIES_CONTRAST + 0.05) return c;
  const towards = luminance(over(bg, '#808080')) > 0.4 ? 0 : 255;
  for (let t = 0; t <= 1.0001; t += 0.04) {
    const m = (v: number) => Math.round(v + (towards - v) * t);
    const col = `rgb(${m(r)}, ${m(g)}, ${m(b)})`;
    if (contrast(alpha(col, FILL_ALPHA), bg) >= SERIES_CONTRAST + 0.05) return col;
  }
  return towards ? '#ffffff' : '#000000';
}

export function readTheme(): Theme {
  const kind = themeKind();
  const fb = kind === 'light' ? FALLBACK.light : FALLBACK.dark;
  const cs = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => cs.getPropertyValue(name).trim() || getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
  const fg = v('--vscode-foreground', fb.fg);
  const bg = v('--vscode-editor-background', fb.bg);
  const muted = v('--vscode-descriptionForeground', mix(fg, bg, 0.3));
  const series = (name: string, fallback: string) => readable(v(`--vscode-charts-${name}`, fallback), bg);
  return {
    kind,
    fg,
    muted,
    bg,
    grid: alpha(v('--vscode-charts-lines', fg), kind === 'high-contrast' ? 0.5 : 0.25),
    border: v('--vscode-panel-border', alpha(fg, 0.3)),
    fontFamily: v('--vscode-font-family', 'system-ui, sans-serif'),
    monoFamily: v('--vscode-editor-font-family', 'monospace'),
    fontSize: parseFloat(v('--vscode-font-size', '13px')) || 13,
    blue: series('blue', fb.blue),
    red: series('red', fb.red),
    green: series('green', fb.green),
    orange: series('orange', fb.orange),
    purple: series('purple', fb.purple),
    yellow: series('yellow', fb.yellow),
    neutral: readable(mix(fg, bg, 0.35), bg),
  };
}

export function applyChartDefaults(t: Theme): void {
  Chart.defaults.color = t.fg;
  Chart.defaults.borderColor = t.grid;
  Chart.defaults.font.family = t.fontFamily;
  Chart.defaults.font.size = Math.max(11, t.fontSize - 1);
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.responsive = true;
  Chart.defaults.plugins.legend.labels.boxWidth = 14;
  Chart.defaults.plugins.legend.labels.boxHeight = 10;
  Chart.defaults.plugins.tooltip.backgroundColor = alpha(t.bg, 0.96);
  Chart.defaults.plugins.tooltip.titleColor = t.fg;
  Chart.defaults.plugins.tooltip.bodyColor = t.fg;
  Chart.defaults.plugins.tooltip.footerColor = t.muted;
  Chart.defaults.plugins.tooltip.borderColor = t.border;
  Chart.defaults.plugins.tooltip.borderWidth = 1;
  Chart.defaults.plugins.tooltip.bodyFont = { family: t.monoFamily, size: Math.max(11, t.fontSize - 1) };
  Chart.defaults.plugins.title.font = { weight: 'bold', size: t.fontSize };
}

/** Perceptual heat colormap (inferno-like), t in [0, 1]. */
const INFERNO: [number, number, number][] = [
  [0, 0, 4],
  [40, 11, 84],
  [101, 21, 110],
  [159, 42, 99],
  [212, 72, 66],
  [245, 125, 21],
  [250, 193, 39],
  [252, 255, 164],
];

export function heat(t: number, a = 1): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (INFERNO.length - 1);
  const i = Math.min(INFERNO.length - 2, Math.floor(x));
  const f = x - i;
  const c = INFERNO[i].map((v, k) => Math.round(v + (INFERNO[i + 1][k] - v) * f));
  return `rgba(${c[0]}, ${c[1]}, ${c[2]}, ${a})`;
}

/** Black or white text, whichever reads on this background. */
export function textOn(bg: string): string {
  const [r, g, b] = parseColor(bg);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000000' : '#ffffff';
}
