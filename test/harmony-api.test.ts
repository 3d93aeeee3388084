/** OpenAI API → harmony mapping: the rendered prompt text, history rules, and field-naming errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapChatCompletion } from '../src/harmony/api-chat.js';
import { mapResponses } from '../src/harmony/api-responses.js';
import { completionPieces, type Piece } from '../src/harmony/renderer.js';
import { FORMATTING_TOKENS } from '../src/harmony/special-tokens.js';
import { InputError } from '../src/util/errors.js';

const OPTS = { currentDate: '2026-01-02' };

function text(pieces: Piece[]): string {
  return pieces.map((p) => ('special' in p ? FORMATTING_TOKENS[p.special] : p.text)).join('');
}
const chat = (body: Record<string, unknown>) => text(completionPieces(mapChatCompletion(body, OPTS).messages, 'assistant', { autoDropAnalysis: true }));
const responses = (body: Record<string, unknown>) => text(completionPieces(mapResponses(body, OPTS).messages, 'assistant', { autoDropAnalysis: true }));

const SYSTEM = (effort: string, fnLine = false) => '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n'
  + `Knowledge cutoff: 2024-06\nCurrent date: 2026-01-02\n\nReasoning: ${effort}\n\n`
  + '# Valid channels: analysis, commentary, final. Channel must be included for every message.'
  + (fnLine ? "\nCalls to these tools must go to the commentary channel: 'functions'." : '') + '<|end|>';

const TOOLS = [{ type: 'function', function: { name: 'get_weather', description: 'Weather now.', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const DEV_TOOLS = '# Tools\n\n## functions\n\nnamespace functions {\n\n// Weather now.\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n} // namespace functions';

test('chat: system text → developer instructions, default effort medium, ends with <|start|>assistant', () => {
  assert.equal(chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: '!' }] }] }),
    `${SYSTEM('medium')}<|start|>developer<|message|># Instructions\n\nBe brief.<|end|><|start|>user<|message|>Hi!<|end|><|start|>assistant`);
  assert.equal(chat({ messages: [{ role: 'user', content: 'Hi' }], reasoning_effort: 'low' }), `${SYSTEM('low')}<|start|>user<|message|>Hi<|end|><|start|>assistant`);
});

test('chat: tools, tool calls with reasoning, tool results by call id', () => {
  const got = chat({
    messages: [
      { role: 'user', content: 'SF?' },
      { role: 'assistant', reasoning_content: 'Use the tool.', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"SF"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '{"t":20}' },
    ],
    tools: TOOLS,
    reasoning_effort: 'high',
  });
  assert.equal(got, `${SYSTEM('high', true)}<|start|>developer<|message|>${DEV_TOOLS}<|end|>`
    + '<|start|>user<|message|>SF?<|end|>'
    + '<|start|>assistant<|channel|>analysis<|message|>Use the tool.<|end|>'
    + '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"SF"}<|call|>'
    + '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"t":20}<|end|><|start|>assistant');
});

test('chat: tool_choice none leaves the tools out; named choice must exist', () => {
  const got = chat({ messages: [{ role: 'user', content: 'x' }], tools: TOOLS, tool_choice: 'none' });
  assert.equal(got, `${SYSTEM('medium')}<|start|>user<|message|>x<|end|><|start|>assistant`);
  assert.ok(chat({ messages: [{ role: 'user', content: 'x' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } } }).includes('type get_weather'));
  assert.throws(() => chat({ messages: [{ role: 'user', content: 'x' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }), /^InputError: tool_choice: function "nope"/);
});

test('chat: reasoning of completed turns is dropped, the turn in progress keeps it', () => {
  const turn1 = [{ role: 'user', content: 'Q1' }, { role: 'assistant', reasoning_content: 'R1', content: 'A1' }];
  const done = chat({ messages: [...turn1, { role: 'user', content: 'Q2' }] });
  assert.ok(!done.includes('R1') && done.includes('<|start|>assistant<|channel|>final<|message|>A1<|end|>'));
  const ongoing = chat({
    messages: [...turn1, { role: 'user', content: 'Q2' },
      { role: 'assistant', reasoning_content: 'R2', tool_calls: [{ id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'a', content: 'ok' }],
    tools: TOOLS,
  });
  assert.ok(!ongoing.includes('R1'), 'the answered turn loses its reasoning');
  assert.ok(ongoing.includes('<|channel|>analysis<|message|>R2<|end|>'), 'the tool-calling turn keeps its reasoning');
});

test('chat: invalid requests name the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }, { role: 'foo', content: 'x' }] }, /^messages\[2\]\.role: unknown role "foo"$/],
    [{ messages: [] }, /^messages: /],
    [{}, /^messages: expected an array/],
    [{ messages: [{ role: 'user', content: 5 }] }, /^messages\[0\]\.content: expected a string or an array of text parts/],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, /^messages\[0\]\.content\[0\]\.type: unsupported/],
    [{ messages: [{ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] }] }, /^messages\[0\]\.tool_calls\[0\]\.id: /],
    [{ messages: [{ role: 'tool', tool_call_id: 'zz', content: 'x' }] }, /^messages\[0\]\.tool_call_id: unknown tool call id "zz"/],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'strin' } } } } }] }, /^tools\[0\]\.function\.parameters\.properties\.a\.type: invalid JSON schema/],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', required: 'a' } } }] }, /^tools\[0\]\.function\.parameters\.required: invalid JSON schema/],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f', parameters: 'nope' } }] }, /^tools\[0\]\.function\.parameters: expected a JSON schema object/],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'retrieval' }] }, /^tools\[0\]\.type: unsupported tool type "retrieval"/],
    [{ messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'max' }, /^reasoning_effort: must be one of low, medium, high/],
    [{ messages: [{ role: 'user', content: 'x' }], tool_choice: 'required' }, /^tool_choice: "required" needs at least one tool/],
    [{ messages: [{ role: 'user', content: 'x' }], tool_choice: 'sometimes' }, /^tool_choice: must be "auto", "none", "required" or a function/],
  ];
  for (const [body, re] of cases) {
    assert.throws(() => mapChatCompletion(body, OPTS), (e: unknown) => e instanceof InputError && re.test(e.message), JSON.stringify(body));
  }
});

test('responses: instructions, input string or items, reasoning items, function calls and outputs', () => {
  assert.equal(responses({ input: 'Hi', instructions: 'Be brief.', reasoning: { effort: 'low' } }),
    `${SYSTEM('low')}<|start|>developer<|message|># Instructions\n\nBe brief.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant`);
  const got = responses({
    input: [
      { role: 'user', content: [{ type: 'input_text', text: 'SF?' }] },
      { type: 'reasoning', id: 'rs_1', summary: [], content: [{ type: 'reasoning_text', text: 'Use the tool.' }] },
      { type: 'function_call', call_id: 'c1', name: 'get_weather', arguments: '{"city":"SF"}' },
      { type: 'function_call_output', call_id: 'c1', output: '{"t":20}' },
    ],
    tools: [{ type: 'function', name: 'get_weather', description: 'Weather now.', parameters: TOOLS[0].function.parameters }],
  });
  assert.equal(got, `${SYSTEM('medium', true)}<|start|>developer<|message|>${DEV_TOOLS}<|end|>`
    + '<|start|>user<|message|>SF?<|end|>'
    + '<|start|>assistant<|channel|>analysis<|message|>Use the tool.<|end|>'
    + '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"SF"}<|call|>'
    + '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"t":20}<|end|><|start|>assistant');
  const done = responses({ input: [
    { role: 'user', content: 'Q1' }, { type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'R1' }] },
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A1' }] }, { role: 'user', content: 'Q2' }] });
  assert.ok(!done.includes('R1') && done.includes('<|channel|>final<|message|>A1<|end|>'));
});

test('responses: invalid requests name the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ input: [{ role: 'robot', content: 'x' }] }, /^input\[0\]\.role: unknown role "robot"/],
    [{ input: [{ type: 'function_call_output', call_id: 'q', output: 'x' }] }, /^input\[0\]\.call_id: unknown call id "q"/],
    [{ input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, /^input\[0\]\.call_id: /],
    [{ input: 'x', tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: 3 } }] }, /^tools\[0\]\.parameters\.properties: invalid JSON schema/],
    [{ input: 'x', reasoning: { effort: 'extreme' } }, /^reasoning\.effort: /],
    [{ input: 7 }, /^input: /],
    [{ input: [{ type: 'item_reference', id: 'x' }] }, /^input\[0\]\.type: unsupported input item type "item_reference"/],
  ];
  for (const [body, re] of cases) {
    assert.throws(() => mapResponses(body, OPTS), (e: unknown) => e instanceof InputError && re.test(e.message), JSON.stringify(body));
  }
});

test('parsed output → Chat Completions message/deltas and Responses items', async () => {
  const { toChatCompletionMessage, chatFinishReason, chatDelta, toResponsesOutput } = await import('../src/harmony/api-output.js');
  const parsed = { reasoning: 'R', content: '', toolCalls: [{ id: 'call_1', name: 'f', arguments: '{"a":1}' }], malformed: false };
  assert.deepEqual(toChatCompletionMessage(parsed), {
    role: 'assistant', content: null, reasoning_content: 'R',
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
  });
  assert.equal(chatFinishReason(parsed, 'stop'), 'tool_calls');
  assert.equal(chatFinishReason({ ...parsed, toolCalls: [] }, 'length'), 'length');
  assert.deepEqual(chatDelta({ type: 'tool_call_arguments', index: 0, delta: '{' }), { tool_calls: [{ index: 0, function: { arguments: '{' } }] });
  assert.deepEqual(chatDelta({ type: 'reasoning', delta: 'x' }), { reasoning_content: 'x' });
  let n = 0;
  const items = toResponsesOutput({ ...parsed, content: 'done' }, (p) => `${p}_${n++}`);
  assert.deepEqual(items.map((i) => i.type), ['reasoning', 'function_call', 'message']);
  assert.equal((items[1] as { call_id: string }).call_id, 'call_1');
});
