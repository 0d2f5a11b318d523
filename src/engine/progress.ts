// Progress on stderr: a redrawn bar on a terminal, a line every 10 % otherwise (logs, CI).

import type { Progress } from '../protocol/engineApi';
import { formatEta } from '../protocol/format';

export function stderrProgress(quiet = false): (p: Progress) => void {
  const tty = process.stderr.isTTY;
  let lastStage = '';
  let lastTenth = -1;
  return (p) => {
    if (quiet) return;
    const frac = p.total ? p.done / p.total : 1;
    const eta = p.etaSeconds !== undefined && p.done < p.total ? ` ETA ${formatEta(p.etaSeconds)}` : '';
    if (tty) {
      const width = 28;
      const filled = Math.round(frac * width);
      process.stderr.write(`\r${p.stage.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total}${eta}\x1b[K`);
      if (p.done >= p.total) process.stderr.write('\n');
      return;
    }
    const tenth = Math.floor(frac * 10);
    if (p.stage !== lastStage || tenth !== lastTenth) {
      lastStage = p.stage;
      lastTenth = tenth;
      process.stderr.write(`${p.stage} ${p.done}/${p.total}${eta}\n`);
    }
  };
}
