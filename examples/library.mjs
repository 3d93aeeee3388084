// The library API in-process: load a checkpoint, stream a chat (reasoning apart from the answer),
// cancel with an AbortSignal, and ask for JSON that follows a schema.
//   node examples/library.mjs [MODEL_DIR]
// Without MODEL_DIR it writes a tiny synthetic gpt-oss checkpoint (random weights: the text is
// gibberish, the API is real).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tessera, synthSpecFor, writeSynthetic } from '../dist/src/index.js';

let dir = process.argv[2];
let scratch; // the synthetic checkpoint this example wrote, removed at the end
if (!dir) {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-example-'));
  dir = path.join(scratch, 'gpt-oss-tiny');
  writeSynthetic(synthSpecFor('gpt-oss-tiny'), dir);
}
const t = await Tessera.load(dir, { maxModelLen: 2048 });
try {
  // 1. stream a chat: reasoning, content and tool-call events, then `done` with usage
  const request = {
    messages: [{ role: 'user', content: 'What is the capital of France?' }],
    reasoning_effort: 'low', max_tokens: 24, temperature: 0,
  };
  for await (const e of t.chat(request)) {
    if (e.type === 'reasoning') process.stdout.write(`[reasoning] ${e.delta}\n`);
    else if (e.type === 'content') process.stdout.write(`[content] ${e.delta}\n`);
    else if (e.type === 'tool_call_start') process.stdout.write(`[tool call] ${e.name}\n`);
    else if (e.type === 'done') console.log(`done: ${e.finishReason}, ${e.usage.completionTokens} tokens`);
  }

  // 2. cancel: the sequence is freed at the next engine step
  const ac = new AbortController();
  let n = 0;
  for await (const e of t.chat({ ...request, max_tokens: 200 }, { signal: ac.signal })) {
    if (e.type === 'tokens' && ++n === 3) ac.abort();
    if (e.type === 'done') console.log(`aborted after ${e.usage.completionTokens} tokens: ${e.finishReason}`);
  }

  // 3. JSON output that follows a schema (constrained decoding after the reasoning)
  const done = await t.chatOnce({
    ...request, max_tokens: 64,
    response_format: {
      type: 'json_schema',
      json_schema: { name: 'city', schema: { type: 'object', properties: { city: { type: 'string', maxLength: 8 } }, required: ['city'], additionalProperties: false } },
    },
  });
  // the constraint starts where the answer starts (harmony's final channel): random weights may
  // never get there, a real model does
  console.log(`json (${done.finishReason}): ${done.output.content}`);
} finally {
  await t.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
}
