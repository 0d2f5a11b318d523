// Issue 13: a package whose chat template renders message content as a plain string (older
// LLaVA-style `USER: {{ content }}`) drops the image entry of a content list. Benchmarking
// must then place the image token in the text, as LLaVA's prompts do. Reference: the bundled
// package, whose template handles content lists and renders exactly the same prompt text, so
// both packages must give the same answers item by item. A template that drops the image
// whatever it is given must be named as the cause.

import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchModels } from '../../src/engine/bench/evaluate';
import { loadEval } from '../../src/engine/data/datasets';
import { copyPackage, editJson, REPO } from '../support/hostileCorpus';

const MODEL = path.join(REPO, 'models', 'tiny-llava');
const EVAL = path.join(REPO, 'data', 'tiny-vqa', 'eval.jsonl');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'template-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The bundled template's text for string content, without any handling of content lists. */
const STRING_ONLY =
  "{{- 'Answer in one word.\\n' -}}{%- for message in messages -%}{%- if message['role'] == 'user' -%}" +
  "{{- 'USER: ' + message['content'] + ' ' -}}{%- else -%}{{- 'ASSISTANT: ' + message['content'] + '</s>' -}}{%- endif -%}" +
  "{%- endfor -%}{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}";

function withTemplate(name: string, template: string): string {
  const dir = copyPackage(MODEL, path.join(tmp, name));
  editJson(path.join(dir, 'tokenizer_config.json'), (j) => (j.chat_template = template));
  return dir;
}

test('bench on a package whose template takes string content only answers as the original does', async () => {
  const items = loadEval(EVAL, 12);
  const stringOnly = withTemplate('string-only', STRING_ONLY);
  const [original, copy] = await benchModels([MODEL, stringOnly], items);
  assert.deepEqual(copy.answers.map((a) => a.predicted), original.answers.map((a) => a.predicted));
  assert.equal(copy.accuracy, original.accuracy);
  assert.equal(copy.agreement, 1);
});

test('a template that drops the image whatever it is given is named as the cause', async () => {
  const items = loadEval(EVAL, 2);
  const dropping = withTemplate('drops-image', STRING_ONLY.replaceAll("message['content']", "message['content'] | replace('<image>', '')"));
  await assert.rejects(benchModels([dropping], items), (e: Error) => {
    assert.match(e.message, /the chat template in .*drops-image\/tokenizer_config\.json drops the image/);
    assert.doesNotMatch(e.message, /processor_config\.json and the vision encoder disagree/);
    return true;
  });
});
