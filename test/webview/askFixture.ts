// A real "ask both models" result of the bundled tiny VLM and a pruned copy (layers 9 and 10
// removed), made by the CLI the way the engine process makes it, on an item where the two
// answers differ; and the page's setup message with the calibration set's images.

import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { calibrationImages } from '../../src/host/askImages';
import type { AskResult } from '../../src/protocol/engineApi';
import type { HostToAsk } from '../../src/protocol/messages';
import type { Browser } from 'playwright-core';
import { openPanel, pngDataUri, REPO } from './harness';
import type { HarnessTheme } from './themes';

const run = promisify(execFile);

export interface AskFixture {
  dir: string;
  setup: Extract<HostToAsk, { type: 'askSetup' }>;
  result: AskResult;
  /** The question and image asked. */
  question: string;
  image: string;
}

export async function makeAskFixture(): Promise<AskFixture> {
  const cli = path.join(REPO, 'dist', 'cli.js');
  if (!fs.existsSync(path.join(REPO, 'dist', 'askWebview.js'))) throw new Error('dist/askWebview.js is missing: run `npm run build` first');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'short-lvlm-ask-'));
  const model = path.join(REPO, 'models', 'tiny-llava');
  const pruned = path.join(dir, 'tiny-llava-pruned');
  const data = path.join(REPO, 'data', 'tiny-vqa');
  const opt = { cwd: REPO, maxBuffer: 64 << 20 };
  await run(process.execPath, [cli, 'prune', model, '--layers', '9,10', '--no-scp', '--out', pruned, '--quiet'], opt);
  const image = path.join(data, 'images', 'eval_0258.png');
  const question = 'What colour is the square? A. red B. green C. blue D. yellow';
  const { stdout } = await run(process.execPath, [cli, 'ask', '--original', model, '--pruned', pruned, '--image', image, '--question', question, '--json', '--quiet'], opt);
  const result = JSON.parse(stdout) as AskResult;
  const images = calibrationImages(path.join(data, 'calib.json'), 12);
  return {
    dir,
    result,
    question,
    image,
    setup: { type: 'askSetup', target: { original: model, pruned, originalLayers: 16, prunedLayers: 14, removed: [9, 10] }, images: [{ path: image, label: 'eval_0258.png', source: 'chosen' }, ...images] },
  };
}

/** The README's screenshot of the page in one theme: the fixture's answer, its first step shown. */
export async function askScreenshot(browser: Browser, origin: string, theme: HarnessTheme, file: string, fx: AskFixture): Promise<void> {
  const p = await openPanel(browser, origin, 'ask', theme, { width: 1100, height: 820 });
  await p.send(fx.setup);
  await p.send({ type: 'askImage', path: fx.image, dataUri: pngDataUri(fx.image) });
  await p.page.fill('#ask-question', fx.question);
  await p.send({ type: 'askAnswer', result: fx.result });
  // The first answer token, where the two models part: both distributions side by side.
  await p.page.hover('.ask-chip[data-side="original"][data-step="0"]');
  await p.page.waitForSelector('.ask-chip.current[data-side="original"][data-step="0"]');
  const problems = await p.problems();
  if (problems.length) throw new Error(`ask/${theme}: ${problems.join('; ')}`);
  await p.page.screenshot({ path: file, fullPage: true });
  await p.page.close();
}
