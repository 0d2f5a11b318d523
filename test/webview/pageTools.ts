// Reading charts and driving controls in a panel page (shared by the panel test files).

import type { PanelPage } from './harness';

export interface ChartInfo {
  type: string;
  labels?: string[];
  datasets: { label: string; data: any[]; borderColor: unknown; pointStyle: unknown }[];
  yType?: string;
  bands: any;
  drawn: boolean;
}

/** Reads a chart's datasets (data, labels, colours, point styles) and its options of interest. */
export async function chart(p: PanelPage, id: string): Promise<ChartInfo | null> {
  return p.page.evaluate((cid) => {
    const canvas = document.getElementById(cid) as HTMLCanvasElement | null;
    const c = canvas && (window as any).Chart.getChart(canvas);
    if (!c) return null;
    return {
      type: c.config.type as string,
      labels: c.data.labels as string[] | undefined,
      datasets: c.data.datasets.map((d: any) => ({ label: d.label, data: d.data, borderColor: d.borderColor, pointStyle: d.pointStyle })),
      yType: c.options.scales?.y?.type as string | undefined,
      bands: c.options.plugins?.layerBands,
      drawn: c.chartArea ? c.chartArea.right - c.chartArea.left > 100 && c.chartArea.bottom - c.chartArea.top > 100 : false,
    };
  }, id);
}

export async function choose(p: PanelPage, dropdownId: string, value: string) {
  const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
  await p.page.evaluate(
    ([id, v]) => {
      const dd = document.getElementById(id) as any;
      dd.value = v;
      dd.dispatchEvent(new Event('change'));
    },
    [dropdownId, value],
  );
  await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

export async function setSlider(p: PanelPage, id: string, value: number) {
  const before = Number(await p.page.evaluate(() => document.body.dataset.renders));
  await p.page.evaluate(
    ([sid, v]) => {
      const s = document.getElementById(sid as string) as HTMLInputElement;
      s.value = String(v);
      s.dispatchEvent(new Event('input'));
      s.dispatchEvent(new Event('change'));
    },
    [id, value] as const,
  );
  await p.page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

