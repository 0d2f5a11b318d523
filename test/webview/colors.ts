// Colour arithmetic for the panel tests, written from the WCAG 2.x definitions (relative
// luminance, contrast ratio) independently of webview/theme.ts, which the tests check.

export type Rgba = [number, number, number, number];

const NAMED: Record<string, Rgba> = { transparent: [0, 0, 0, 0], black: [0, 0, 0, 1], white: [255, 255, 255, 1] };

/** #rgb, #rrggbb, #rrggbbaa, rgb(), rgba() and a few names -> [r, g, b, a]. */
export function parseCss(c: string): Rgba {
  const s = c.trim().toLowerCase();
  if (NAMED[s]) return NAMED[s];
  let m = /^#([0-9a-f]{3})$/.exec(s);
  if (m) return [...m[1].split('').map((x) => parseInt(x + x, 16)), 1] as Rgba;
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/.exec(s);
  if (m) return [parseInt(m[1].slice(0, 2), 16), parseInt(m[1].slice(2, 4), 16), parseInt(m[1].slice(4, 6), 16), m[2] ? parseInt(m[2], 16) / 255 : 1];
  m = /^rgba?\(([^)]+)\)$/.exec(s);
  if (m) {
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p[3] ?? 1];
  }
  throw new Error(`cannot parse colour ${c}`);
}

const channel = (v: number) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
};

export function relativeLuminance(c: string, bg: string): number {
  const [r, g, b, a] = parseCss(c);
  const [R, G, B] = parseCss(bg);
  const mix = (x: number, y: number) => x * a + y * (1 - a);
  return 0.2126 * channel(mix(r, R)) + 0.7152 * channel(mix(g, G)) + 0.0722 * channel(mix(b, B));
}

/** Contrast ratio of a colour drawn over an opaque background. */
export function contrastRatio(c: string, bg: string): number {
  const l1 = relativeLuminance(c, bg);
  const l2 = relativeLuminance(bg, bg);
  return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
}

/** Whether `c` is `base` (opaque) moved part of the way to black or to white. */
export function isShadeOf(c: string, base: string): boolean {
  const x = parseCss(c);
  const y = parseCss(base);
  if (x[3] !== 1) return false;
  return [0, 255].some((to) => {
    const t = y[0] !== to ? (x[0] - y[0]) / (to - y[0]) : y[1] !== to ? (x[1] - y[1]) / (to - y[1]) : 0;
    return t >= -0.01 && t <= 1 && [0, 1, 2].every((i) => Math.abs(y[i] + (to - y[i]) * t - x[i]) <= 2);
  });
}
