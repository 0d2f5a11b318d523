// The host's side of a run form in the browser harness: every check the form posts is answered
// by the engine's real checkRun, mapped from the form's request as the extension maps it.

import { checkRun } from '../../src/engine/commands/checkRun';
import { checkArgsOf } from '../../src/host/formRequests';
import type { FormFields, FormKind, FormRequest } from '../../src/protocol/messages';
import type { PanelPage } from './harness';

export interface FormHost {
  /** Stops answering. */
  stop(): void;
  /** Checks answered so far. */
  answered(): number;
}

/** Sends the form its fields and answers its checks until stopped. */
export async function serveForm(p: PanelPage, kind: FormKind, fields: FormFields): Promise<FormHost> {
  let seen = 0;
  let answered = 0;
  let stopped = false;
  await p.send({ type: 'init', kind, fields });
  const loop = async () => {
    while (!stopped && !p.page.isClosed()) {
      const msgs = (await p.messages().catch(() => [])) as { type: string; seq?: number; request?: FormRequest }[];
      for (const m of msgs.slice(seen)) {
        if (m.type !== 'check') continue;
        const check = await checkRun(checkArgsOf(m.request!));
        if (!stopped && !p.page.isClosed()) await p.send({ type: 'check', seq: m.seq!, check }).catch(() => undefined);
        answered++;
      }
      seen = msgs.length;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  void loop();
  return { stop: () => void (stopped = true), answered: () => answered };
}
