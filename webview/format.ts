// Number formatting shared by tables, tooltips and axes.

export const fixed = (x: number | null | undefined, d = 4): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

export const pct = (x: number | null | undefined, d = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(d)} %`);

/** Three significant digits, scientific below 1e-3. */
export function sig(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a < 1e-3 || a >= 1e6) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x >= 100 || i === 0 ? x.toFixed(0) : x.toFixed(1)} ${units[i]}`;
}

export const signed = (x: number, d = 4): string => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(d)}`;

export function basename(p: string): string {
  const parts = p.split(/[\\/]/).filter(Boolean);
  return parts[parts.length - 1] ?? p;
}

export function layerList(layers: number[]): string {
  return layers.length ? layers.join(', ') : 'none';
}
