// Small text formats shared by the CLI's progress line and the extension's notification.

/** Seconds left as "12s", "1m 05s", "2h 03m". */
export function formatEta(seconds: number): string {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "calibrate 3/16, ETA 12s" (no ETA once the stage is done). */
export function progressText(p: { stage: string; done: number; total: number; etaSeconds?: number }): string {
  const eta = p.etaSeconds !== undefined && p.done < p.total ? `, ETA ${formatEta(p.etaSeconds)}` : '';
  return `${p.stage} ${p.done}/${p.total}${eta}`;
}
