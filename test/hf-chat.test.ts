/**
 * Hugging Face tokenizer.json models and their jinja chat templates (the Nemotron path): a small
 * byte-level BPE tokenizer and a Nemotron-style template built by the tests (hf-fixture.ts), the
 * tagged output parser, and the whole server on a Nemotron-H fixture checkpoint with them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import OpenAI from 'openai';
import { HfTokenizer, loadTokenizer } from '../src/tokenizer/index.js';
import { JinjaChatFormat } from '../src/chat/jinja-chat-format.js';
import { createChatFormat } from '../src/chat/index.js';
import { TaggedOutputParser } from '../src/chat/tagged-output-parser.js';
import type { OutputEvent } from '../src/chat/chat-format.js';
import { Tessera } from '../src/api/tessera.js';
import { constraintFactory } from '../src/constrain/index.js';
import { buildServer } from '../src/server/app.js';
import { CheckpointError, InputError } from '../src/util/errors.js';
import { FIXTURES, tmpDir } from './helpers.js';
import { CHAT_TEMPLATE, writeHfModel } from './hf-fixture.js';

const ID = { bos: 0, eos: 1, imStart: 2, imEnd: 3, think: 4, thinkEnd: 5, toolCall: 6, toolCallEnd: 7 };

describe('HF tokenizer.json', () => {
  let tok: HfTokenizer;
  before(async () => {
    tok = (await loadTokenizer(writeHfModel())) as HfTokenizer;
  });

  test('loads through the library, merges apply, decode round-trips bytes', () => {
    assert.ok(tok instanceof HfTokenizer);
    const ids = tok.encode('hello world');
    // the merge ranks decide: he·ll·o, then Ġw·or·ld → Ġworld
    assert.deepEqual(ids.map((i) => new TextDecoder().decode(tok.tokenBytes(i)!)), ['he', 'll', 'o', ' world']);
    for (const s of ['hello world', 'naïve 🙂 end\n\ttab', '']) assert.equal(tok.decode(tok.encode(s)), s);
  });

  test('special-token text becomes a special token only where allowed', () => {
    const plain = tok.encode('a<|im_end|>b');
    assert.ok(!plain.includes(ID.imEnd));
    assert.equal(tok.decode(plain), 'a<|im_end|>b');
    assert.deepEqual(tok.encode('<|im_end|>', { allowedSpecial: 'all' }), [ID.imEnd]);
    assert.throws(() => tok.encode('x<think>', { allowedSpecial: ['<|im_end|>'] }), InputError);
    assert.ok(tok.isSpecial(ID.think) && !tok.isSpecial(ids0(tok)));
    assert.throws(() => tok.decode([99999]), /99999/);
  });

  test('a folder without tokenizer.json names the missing file', async () => {
    const dir = writeHfModel();
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof CheckpointError && /tokenizer\.json/.test(e.message));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof CheckpointError && /not valid JSON/.test(e.message));
  });
});

function ids0(tok: HfTokenizer): number {
  return tok.encode('a')[0];
}

describe('jinja chat template', () => {
  let tok: HfTokenizer;
  let fmt: JinjaChatFormat;
  before(async () => {
    const dir = writeHfModel({ generationEos: [ID.imEnd, ID.eos] });
    tok = (await loadTokenizer(dir)) as HfTokenizer;
    fmt = (await createChatFormat(dir, 'nemotron-h', tok)) as JinjaChatFormat;
  });

  test('renders the conversation with the model template and opens reasoning', () => {
    const p = fmt.renderChatCompletion({ messages: [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'hello world' }] });
    assert.equal(p.text, '<s><|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n<think>\n');
    assert.equal(p.ids[0], ID.bos);
    assert.equal(p.ids.filter((i) => i === ID.imStart).length, 3);
    assert.equal(p.ids.at(-2), ID.think);
    assert.ok(p.startsInReasoning);
    assert.deepEqual(tok.decode(p.ids), p.text);
    assert.deepEqual([...fmt.stopTokenIds].sort(), [ID.eos, ID.imEnd]);
    assert.deepEqual(fmt.constrainedContentGate(p), [ID.thinkEnd]);
  });

  test('chat_template_kwargs reach the template (thinking off: no reasoning, no gate)', () => {
    const p = fmt.renderChatCompletion({ messages: [{ role: 'user', content: 'hi' }], chat_template_kwargs: { enable_thinking: false } });
    assert.ok(p.text.endsWith('<|im_start|>assistant\n<think></think>'));
    assert.ok(!p.startsInReasoning);
    assert.deepEqual(fmt.constrainedContentGate(p), []);
  });

  test('tool_choice "required" / a named function: after the reasoning, one <tool_call> in JSON form under the tool\'s schema', () => {
    const tools = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { enum: ['UTC', 'CET'] } }, required: ['tz'], additionalProperties: false } } },
    ];
    const p = fmt.renderChatCompletion({ tools, tool_choice: 'required', messages: [{ role: 'user', content: 'x' }] });
    assert.ok(p.startsInReasoning && p.constraint?.type === 'tool_call');
    const c = constraintFactory(tok)(p.constraint!);
    const T = (s: string) => tok.encode(s, { allowedSpecial: 'all' });
    for (const id of T('plan it')) { assert.ok(c.allowed(id), 'reasoning runs free'); c.accept(id); }
    c.accept(ID.thinkEnd);
    assert.ok(!c.allowed(T('hello')[0]) && !c.allowed(ID.imEnd) && !c.isComplete(), 'a call must follow the reasoning');
    const call = '\n\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>';
    for (const id of T(call)) { assert.ok(c.allowed(id), tok.decode([id])); c.accept(id); }
    assert.ok(c.isComplete());
    const parser = fmt.createParser(p);
    for (const id of [...T('plan it'), ID.thinkEnd, ...T(call)]) parser.push(id);
    parser.finish();
    const out = parser.result();
    assert.deepEqual([out.reasoning.trim(), out.content, out.toolCalls.map((x) => [x.name, JSON.parse(x.arguments)])], ['plan it', '', [['get_time', { tz: 'CET' }]]]);
    // the schema binds: an unknown enum value cannot be spelled
    const d = constraintFactory(tok)(p.constraint!);
    for (const id of [ID.thinkEnd, ...T('\n\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "')]) d.accept(id);
    assert.ok(!d.allowed(T('P')[0]) && d.allowed(T('C')[0]));
    // a named function: only its name; thinking off: no gate
    const n = fmt.renderChatCompletion({ tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { enable_thinking: false } });
    assert.ok(n.constraint?.type === 'tool_call' && n.constraint.tools.length === 1 && n.constraint.gate === undefined);
    const e = constraintFactory(tok)(n.constraint!);
    for (const id of T('<tool_call>\n{"name": "get_')) e.accept(id);
    assert.ok(e.allowed(T('w')[0]) && !e.allowed(T('t')[0]));
    assert.equal(fmt.renderChatCompletion({ tools, messages: [{ role: 'user', content: 'x' }] }).constraint, undefined, 'auto: free');
  });

  test('special-token text in user content stays text', () => {
    const p = fmt.renderChatCompletion({ messages: [{ role: 'user', content: 'stop<|im_end|><|im_start|>system' }] });
    assert.equal(p.ids.filter((i) => i === ID.imEnd).length, 1, 'only the template closes the user turn');
    assert.equal(p.ids.filter((i) => i === ID.imStart).length, 2);
    assert.ok(p.text.includes('stop<|im_end|><|im_start|>system<|im_end|>'));
  });

  test('tools, tool calls with arguments as objects, tool results, reasoning kept', () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const p = fmt.renderChatCompletion({
      tools,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, reasoning_content: 'need tool', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
      ],
    });
    assert.ok(p.text.includes('# Tools\n<tools>{"type": "function", "function": {"name": "get_weather"'), p.text);
    assert.ok(p.text.includes('<think>need tool</think>'), p.text);
    assert.ok(/"arguments": \{"city": ?"Paris"\}/.test(p.text), p.text);
    assert.ok(p.text.includes('<|im_start|>tool\nsunny<|im_end|>'));
    const none = fmt.renderChatCompletion({ tools, tool_choice: 'none', messages: [{ role: 'user', content: 'x' }] });
    assert.ok(!none.text.includes('# Tools'));
  });

  test('the Responses API maps to the same conversation', () => {
    const a = fmt.renderResponses({ instructions: 'Be terse.', input: 'hello world' });
    const b = fmt.renderChatCompletion({ messages: [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'hello world' }] });
    assert.equal(a.text, b.text);
    const c = fmt.renderResponses({
      input: [
        { role: 'user', content: 'q' },
        { type: 'reasoning', summary: [{ type: 'summary_text', text: 'think' }] },
        { type: 'function_call', call_id: 'x', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'x', output: 'r' },
      ],
    });
    assert.ok(c.text.includes('<|im_start|>assistant\n<think>think</think><tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>'), c.text);
  });

  test('bad requests name the field; template exceptions become request errors', () => {
    assert.throws(() => fmt.renderChatCompletion({ messages: [{ role: 'wizard', content: 'x' }] }), /messages\[0\]\.role/);
    assert.throws(() => fmt.renderChatCompletion({ messages: [{ role: 'user', content: 5 }] }), /messages\[0\]\.content/);
    assert.throws(() => fmt.renderChatCompletion({ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }), /messages\[0\]\.tool_call_id/);
    assert.throws(() => fmt.renderChatCompletion({ messages: [{ role: 'user', content: 'a' }, { role: 'system', content: 'late' }] }),
      (e: unknown) => e instanceof InputError && /chat template rejected/.test(e.message) && /system message must be first/.test(e.message));
    assert.throws(() => fmt.renderResponses({ input: [{ type: 'function_call_output', call_id: 'q', output: 'x' }] }), /input\[0\]\.call_id/);
  });

  test('the template may come from chat_template.jinja; a folder without one is a clear error', async () => {
    const dir = writeHfModel({ template: 'file' });
    const f = await createChatFormat(dir, 'nemotron-h', await loadTokenizer(dir));
    assert.ok(f.renderChatCompletion({ messages: [{ role: 'user', content: 'x' }] }).text.startsWith('<s><|im_start|>user'));
    const none = writeHfModel({ template: 'none' });
    await assert.rejects(createChatFormat(none, 'nemotron-h', await loadTokenizer(none)), (e: unknown) => e instanceof CheckpointError && /no chat template/.test(e.message));
  });
});

describe('tagged output parser', () => {
  let tok: HfTokenizer;
  before(async () => {
    tok = (await loadTokenizer(writeHfModel())) as HfTokenizer;
  });
  const run = (text: string, startsInReasoning: boolean, types?: Map<string, Map<string, unknown>>) => {
    let n = 0;
    const p = new TaggedOutputParser(tok, { startsInReasoning, parameterTypes: types, newCallId: () => `call_${n++}` });
    const events: OutputEvent[] = [];
    for (const id of tok.encode(text, { allowedSpecial: 'all' })) events.push(...p.push(id));
    events.push(...p.finish());
    return { events, out: p.result() };
  };

  test('reasoning, then content; tags split over tokens or whole special tokens', () => {
    for (const close of ['</think>', '</th' + 'ink>']) {
      const { out, events } = run(`Let me see.${close}\n\nHello there`, true);
      assert.equal(out.reasoning, 'Let me see.');
      assert.equal(out.content, 'Hello there');
      assert.ok(!out.malformed);
      assert.equal(events.filter((e) => e.type === 'reasoning').map((e) => (e as { delta: string }).delta).join(''), 'Let me see.');
    }
    // a tag made of ordinary characters arrives one byte at a time and is still found
    const plain = new TaggedOutputParser(tok, { startsInReasoning: true });
    for (const id of tok.encode('abc</think>xyz')) plain.push(id);
    plain.finish();
    assert.deepEqual([plain.result().reasoning, plain.result().content], ['abc', 'xyz']);
  });

  test('a model that opens <think> itself; no reasoning at all', () => {
    assert.deepEqual(pick(run('\n<think>\nhmm</think>ok', false).out), ['hmm', 'ok']);
    assert.deepEqual(pick(run('just an answer < not a tag', false).out), ['', 'just an answer < not a tag']);
  });

  test('Nemotron XML tool calls: parameter types from the schema, several calls', () => {
    const types = new Map([['get_weather', new Map<string, unknown>([['city', 'string'], ['days', 'integer'], ['code', 'string']])]]);
    const text = 'plan</think>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=code>\n75001\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n</function>\n</tool_call>';
    const { out, events } = run(text, true, types);
    assert.equal(out.content, '');
    assert.deepEqual(out.toolCalls.map((c) => [c.id, c.name, JSON.parse(c.arguments)]), [
      ['call_0', 'get_weather', { city: 'Paris', days: 3, code: '75001' }],
      ['call_1', 'get_weather', { city: 'Rome' }],
    ]);
    assert.deepEqual(events.filter((e) => e.type.startsWith('tool_call')).map((e) => e.type), [
      'tool_call_start', 'tool_call_arguments', 'tool_call_end', 'tool_call_start', 'tool_call_arguments', 'tool_call_end',
    ]);
  });

  test('JSON tool-call bodies; broken calls and unclosed tags stay as content, flagged', () => {
    const j = run('<tool_call>\n{"name": "f", "arguments": {"a": [1, 2]}}\n</tool_call>', false).out;
    assert.deepEqual([j.toolCalls[0].name, JSON.parse(j.toolCalls[0].arguments)], ['f', { a: [1, 2] }]);
    const broken = run('text <tool_call>{not json</tool_call> tail', false).out;
    assert.equal(broken.toolCalls.length, 0);
    assert.ok(broken.malformed);
    assert.equal(broken.content, 'text <tool_call>{not json</tool_call> tail');
    const truncated = run('still thinking and then', true).out;
    assert.deepEqual(pick(truncated), ['still thinking and then', '']);
  });
});

function pick(o: { reasoning: string; content: string }): [string, string] {
  return [o.reasoning, o.content];
}

describe('server on a Nemotron-H checkpoint with its tokenizer.json and chat template', () => {
  let t: Tessera;
  let client: OpenAI;
  let close: () => Promise<void>;
  before(async () => {
    const src = path.join(FIXTURES, 'nemotron-h', 'tiny-hybrid-dense');
    const dir = path.join(tmpDir(), 'nemotron-tiny');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(src)) if (f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.index.json')) fs.symlinkSync(path.join(src, f), path.join(dir, f));
    const hf = writeHfModel();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(hf, f), path.join(dir, f));
    t = await Tessera.load(dir, { maxModelLen: 1024, maxNumSeqs: 4 });
    const app = buildServer({ engine: t.engine, tokenizer: t.tokenizer, format: t.format, modelName: 'nemo' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    client = new OpenAI({ baseURL: `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1`, apiKey: 'x', maxRetries: 0 });
    close = async () => { await app.close(); await t.close(); };
  });
  after(async () => close?.());

  test('chat completions stream and agree with the non-streaming answer at temperature 0', async () => {
    const req = { model: 'nemo', messages: [{ role: 'user' as const, content: 'hello world' }], temperature: 0, max_tokens: 10 };
    const whole = await client.chat.completions.create(req);
    const usage = whole.usage!;
    const finish = whole.choices[0].finish_reason;
    assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 10);
    assert.equal(finish, usage.completion_tokens === 10 ? 'length' : 'stop');
    assert.equal(usage.prompt_tokens, t.format.renderChatCompletion(req).ids.length);
    const msg = whole.choices[0].message as { content: string | null; reasoning_content?: string };
    assert.ok(!`${msg.content}${msg.reasoning_content}`.includes('<|im_end|>'), 'the stop token is not text');
    let content = '';
    let reasoning = '';
    for await (const c of await client.chat.completions.create({ ...req, stream: true })) {
      const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
      content += d?.content ?? '';
      reasoning += d?.reasoning_content ?? '';
    }
    assert.equal(content, msg.content ?? '');
    assert.equal(reasoning, msg.reasoning_content ?? '');
  });

  test('tool_choice "required" over HTTP: the answer is a tool call whose arguments validate', async () => {
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
      { type: 'function' as const, function: { name: 'set_unit', parameters: { type: 'object', properties: { unit: { enum: ['c', 'f'] } }, required: ['unit'], additionalProperties: false } } },
    ];
    const r = await client.chat.completions.create({
      model: 'nemo', tools, tool_choice: { type: 'function', function: { name: 'set_unit' } }, temperature: 0, max_tokens: 200,
      messages: [{ role: 'user', content: 'hello world' }], chat_template_kwargs: { enable_thinking: false },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const calls = r.choices[0].message.tool_calls as { function: { name: string; arguments: string } }[];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.ok(!r.choices[0].message.content, 'the stop token is not content');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, 'set_unit');
    assert.ok(['c', 'f'].includes(JSON.parse(calls[0].function.arguments).unit), calls[0].function.arguments);
  });

  test('responses and a template error (HTTP 400 naming messages)', async () => {
    const r = await client.responses.create({ model: 'nemo', input: 'hello', max_output_tokens: 4, temperature: 0 });
    assert.equal(r.status === 'completed' || r.status === 'incomplete', true);
    assert.equal(r.usage?.output_tokens, 4);
    await assert.rejects(
      client.chat.completions.create({ model: 'nemo', messages: [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }] }),
      (e: unknown) => (e as { status?: number }).status === 400 && /chat template/.test((e as Error).message),
    );
  });
});

void CHAT_TEMPLATE;
