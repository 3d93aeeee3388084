/**
 * The OpenAI-compatible server, driven by the official `openai` client: a real HTTP server over
 * the real engine, tokenizer and harmony format. Two models: a synthetic gpt-oss checkpoint with
 * the real o200k vocabulary (random weights: the engine path, concurrency, prefix cache,
 * cancellation) and a replay model that emits a given token script (exact API objects:
 * reasoning, tool calls, constrained JSON).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import OpenAI from 'openai';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../src/server/app.js';
import { WorkerEngine } from '../src/engine/worker-engine.js';
import { Engine } from '../src/engine/engine.js';
import { EngineLoop } from '../src/engine/client.js';
import { constraintFactory } from '../src/constrain/index.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { HarmonyChatFormat } from '../src/harmony/chat-format.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { synthSpecFor, writeSynthetic } from '../src/weights/synth.js';
import { ReplayModel } from './replay-model.js';
import { runServeBench } from '../bench/serve-bench.js';
import { tmpDir } from './helpers.js';

const NOW = () => new Date('2026-11-24T12:00:00Z');
let modelDir: string;
let tok: Tokenizer;

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const a = app.server.address() as { port: number };
  return `http://127.0.0.1:${a.port}`;
}

async function metric(base: string, name: string, key = 'k'): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}

before(async () => {
  modelDir = path.join(tmpDir(), 'gpt-oss-tiny');
  writeSynthetic(synthSpecFor('gpt-oss-tiny'), modelDir);
  tok = await loadTokenizer(modelDir);
});

describe('engine path (synthetic gpt-oss, worker thread)', () => {
  let engine: WorkerEngine;
  let app: FastifyInstance;
  let client: OpenAI;
  let base: string;
  before(async () => {
    engine = await WorkerEngine.start({ modelDir, maxNumSeqs: 16, maxModelLen: 2048, maxBatchedTokens: 128 });
    app = buildServer({ engine, tokenizer: tok, format: new HarmonyChatFormat(tok, { now: NOW }), modelName: 'tiny', apiKey: 'k' });
    base = await listen(app);
    client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'k', maxRetries: 0 });
  });
  after(async () => {
    await app.close();
    await engine.close();
  });

  test('models, health, auth', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['tiny']);
    assert.equal((await fetch(`${base}/health`)).status, 200);
    const r = await fetch(`${base}/v1/models`);
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'invalid_api_key');
    const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e: unknown) => (e as { status?: number }).status === 401);
  });

  test('16 concurrent streaming requests at temperature 0 each equal the request run alone', async () => {
    const req = (i: number) => ({ model: 'tiny', messages: [{ role: 'user' as const, content: `question number ${i}: ${'why '.repeat(i)}` }], temperature: 0, max_tokens: 12 });
    const collect = async (i: number) => {
      const stream = await client.chat.completions.create({ ...req(i), stream: true, stream_options: { include_usage: true } });
      let text = '';
      let reasoning = '';
      let usage: OpenAI.CompletionUsage | undefined | null;
      for await (const c of stream) {
        const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
        text += d?.content ?? '';
        reasoning += d?.reasoning_content ?? '';
        if (c.usage) usage = c.usage;
      }
      return { text, reasoning, usage };
    };
    const alone = [];
    for (let i = 0; i < 16; i++) {
      const r = await client.chat.completions.create(req(i));
      alone.push(r.choices[0].message.content ?? '');
      assert.equal(r.usage!.completion_tokens <= 12, true);
    }
    const together = await Promise.all(Array.from({ length: 16 }, (_, i) => collect(i)));
    for (let i = 0; i < 16; i++) {
      assert.equal(together[i].text, alone[i], `request ${i}`);
      assert.ok(together[i].usage && together[i].usage!.prompt_tokens > 0);
    }
  });

  test('a repeated long prefix is served from the prefix cache, output unchanged', async () => {
    const system = 'You are a careful assistant. ' + 'Follow these rules exactly. '.repeat(60);
    const ask = (q: string) => client.chat.completions.create({ model: 'tiny', temperature: 0, max_tokens: 6, messages: [{ role: 'system', content: system }, { role: 'user', content: q }] });
    const hits0 = await metric(base, 'tessera_prefix_cache_hit_tokens');
    const a = await ask('first question');
    const b = await ask('first question');
    const c = await ask('another question');
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    const cached = (r: typeof a) => r.usage!.prompt_tokens_details!.cached_tokens!;
    assert.ok(cached(b) > 300, `cached ${cached(b)}`);
    assert.ok(cached(c) > 300, `cached ${cached(c)}`);
    const hits1 = await metric(base, 'tessera_prefix_cache_hit_tokens');
    assert.ok(hits1 - hits0 >= cached(b) + cached(c));
    assert.ok((await metric(base, 'tessera_prefix_cache_hit_rate')) > 0);
  });

  test('a client that disconnects mid-stream frees its sequence', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: 'tiny', stream: true, max_tokens: 1500, temperature: 1, seed: 3, messages: [{ role: 'user', content: 'talk' }] }, { signal: ac.signal });
    let n = 0;
    try {
      for await (const _c of stream) {
        if (++n === 3) {
          ac.abort();
          break;
        }
      }
    } catch {
      // the client may report the abort as an error
    }
    assert.equal(n, 3);
    assert.equal((await engine.stats()).running, 1, 'still generating when the client left');
    let running = 1;
    for (let i = 0; i < 100 && running > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      running = (await engine.stats()).running;
    }
    assert.equal(running, 0);
  });

  test('completions endpoint: text and token prompts, echo, logprobs, stop strings', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, logprobs: 2 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].logprobs!.tokens!.length, r.usage!.completion_tokens);
    const ids = tok.encode('Once upon a time');
    const r2 = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 5, temperature: 0 });
    assert.equal(r2.choices[0].text, r.choices[0].text);
    const e = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, echo: true });
    assert.equal(e.choices[0].text, 'Once upon a time' + r.choices[0].text);
    const full = r.choices[0].text;
    if (full.length > 2) {
      const stop = full.slice(1, 2);
      const s = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, stop: [stop] });
      assert.equal(s.choices[0].text, full.slice(0, full.indexOf(stop)));
      assert.equal(s.choices[0].finish_reason, 'stop');
    }
  });

  test('seeded sampling is reproducible; n choices', async () => {
    const body = { model: 'tiny', messages: [{ role: 'user' as const, content: 'pick' }], temperature: 1, seed: 42, max_tokens: 8 };
    const a = await client.chat.completions.create(body);
    const b = await client.chat.completions.create(body);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const n = await client.chat.completions.create({ ...body, n: 3 });
    assert.equal(n.choices.length, 3);
    assert.equal(n.choices[0].message.content, a.choices[0].message.content);
  });

  test('the serving benchmark streams every token and reports rates and latencies', async () => {
    const r = await runServeBench({ url: base, model: 'tiny', apiKey: 'k', clients: 2, requestsPerClient: 2, promptTokens: 12, outputTokens: 6 });
    assert.equal(r.requests, 4);
    assert.ok(r.output_tokens_per_s > 0 && r.requests_per_s > 0);
    assert.ok(Number.isFinite(r.ttft_ms.p50) && Number.isFinite(r.itl_ms.p90), JSON.stringify(r));
    assert.equal(r.output_tokens, 24, 'usage counts every token');
  });

  test('bad requests get OpenAI-style errors naming the problem, and the server keeps serving', async () => {
    const post = (p: string, body: string) => fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k' }, body });
    const cases: [string, string, number, RegExp][] = [
      ['/v1/chat/completions', '{"messages": [', 400, /JSON/],
      ['/v1/chat/completions', JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), 404, /nope/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'wizard', content: 'x' }] }), 400, /messages\[0\]\.role/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }), 400, /temperature/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], top_p: 0 }), 400, /top_p/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }), 400, /max_tokens/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x '.repeat(3000) }] }), 400, /context/],
      ['/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'a', schema: { type: 'string', pattern: 'a+' } } } }), 400, /pattern/],
      ['/v1/completions', JSON.stringify({ prompt: [999999999] }), 400, /vocabulary/],
      ['/v1/responses', JSON.stringify({ input: 5 }), 400, /input/],
    ];
    for (const [p, body, status, re] of cases) {
      const r = await post(p, body);
      const j = await r.json();
      assert.equal(r.status, status, `${body.slice(0, 60)} → ${JSON.stringify(j)}`);
      assert.match(j.error.message, re);
      assert.equal(typeof j.error.type, 'string');
    }
    const ok = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'still there?' }], max_tokens: 2 });
    assert.equal(ok.object, 'chat.completion');
  });
});

describe('API objects (replay model)', () => {
  let app: FastifyInstance;
  let client: OpenAI;
  let model: ReplayModel;
  const T = (s: string) => tok.encode(s, { allowedSpecial: 'all' });
  before(async () => {
    model = new ReplayModel(tok.vocabSize, []);
    const engine = new EngineLoop(new Engine(model, { numBlocks: 512, blockSize: 16, maxNumSeqs: 4, maxBatchedTokens: 256, maxModelLen: 4096, prefixCaching: false }), constraintFactory(tok));
    app = buildServer({ engine, tokenizer: tok, format: new HarmonyChatFormat(tok, { now: NOW }), modelName: 'replay' });
    client = new OpenAI({ baseURL: `${await listen(app)}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  after(async () => app.close());

  const weather = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

  test('reasoning and content, non-streaming and streaming', async () => {
    model.script = T('<|channel|>analysis<|message|>Think first.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!<|return|>');
    const r = await client.chat.completions.create({ model: 'replay', messages: [{ role: 'user', content: 'hi' }] });
    const m = r.choices[0].message as { content: string; reasoning_content?: string };
    assert.equal(m.content, 'Hello there!');
    assert.equal(m.reasoning_content, 'Think first.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    const stream = await client.chat.completions.create({ model: 'replay', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let content = '';
    let reasoning = '';
    for await (const c of stream) {
      const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string };
      content += d?.content ?? '';
      reasoning += d?.reasoning_content ?? '';
    }
    assert.equal(content, 'Hello there!');
    assert.equal(reasoning, 'Think first.');
  });

  test('a tool call round trip: call, tool result, final answer', async () => {
    model.script = T('<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>');
    const r = await client.chat.completions.create({ model: 'replay', tools: weather, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    const call = r.choices[0].message.tool_calls![0] as { id: string; function: { name: string; arguments: string } };
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    // the prompt offered the tool as a TypeScript-like namespace
    const prompt = tok.decode(model.prompts.at(-1)!);
    assert.match(prompt, /namespace functions/);
    assert.match(prompt, /type get_weather = /);
    model.script = T('<|channel|>final<|message|>It is sunny in Paris.<|return|>');
    const r2 = await client.chat.completions.create({
      model: 'replay', tools: weather,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: call.function }] },
        { role: 'tool', tool_call_id: call.id, content: '{"sky":"sunny"}' },
      ],
    });
    assert.equal(r2.choices[0].message.content, 'It is sunny in Paris.');
    const p2 = tok.decode(model.prompts.at(-1)!);
    assert.match(p2, /<\|start\|>functions\.get_weather to=assistant<\|channel\|>commentary<\|message\|>\{"sky":"sunny"\}<\|end\|>/);
    // streamed tool-call deltas
    model.script = T('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>');
    const s = await client.chat.completions.create({ model: 'replay', tools: weather, messages: [{ role: 'user', content: 'Oslo?' }], stream: true });
    let args = '';
    let name = '';
    let finish = '';
    for await (const c of s) {
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
        name += tc.function?.name ?? '';
        args += tc.function?.arguments ?? '';
      }
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { city: 'Oslo' });
    assert.equal(finish, 'tool_calls');
  });

  test('responses API: reasoning item, message, function_call, streaming events', async () => {
    model.script = T('<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>final<|message|>Done.<|return|>');
    const r = await client.responses.create({ model: 'replay', input: 'hi', reasoning: { effort: 'high' } });
    assert.equal(r.output_text, 'Done.');
    assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'message']);
    assert.match(tok.decode(model.prompts.at(-1)!), /Reasoning: high/);
    model.script = T('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Rome"}<|call|>');
    const tools = [{ type: 'function' as const, name: 'get_weather', description: 'Weather', parameters: weather[0].function.parameters, strict: false }];
    const fc = await client.responses.create({ model: 'replay', input: 'Rome?', tools });
    const item = fc.output.find((o) => o.type === 'function_call') as { name: string; arguments: string; call_id: string };
    assert.equal(item.name, 'get_weather');
    assert.deepEqual(JSON.parse(item.arguments), { city: 'Rome' });
    model.script = T('<|channel|>final<|message|>Streamed answer.<|return|>');
    const stream = await client.responses.create({ model: 'replay', input: 'hi', stream: true });
    const types: string[] = [];
    let text = '';
    for await (const e of stream) {
      types.push(e.type);
      if (e.type === 'response.output_text.delta') text += e.delta;
    }
    assert.equal(text, 'Streamed answer.');
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    assert.ok(types.includes('response.output_item.added') && types.includes('response.output_text.done'));
  });

  test('malformed model output is kept as content, never a failed request', async () => {
    model.script = T('<|channel|>final<|start|>oops<|message|>still text<|end|>');
    const r = await client.chat.completions.create({ model: 'replay', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 });
    assert.match(r.choices[0].message.content ?? '', /still text/);
  });

  test('tool_choice naming a function forces that call, its arguments constrained to the schema', async () => {
    // the model continues inside the call the prompt opened
    model.script = T('{"city":"Oslo"}<|call|>');
    const r = await client.chat.completions.create({
      model: 'replay', tools: weather, tool_choice: { type: 'function', function: { name: 'get_weather' } },
      messages: [{ role: 'user', content: 'Anything.' }], max_tokens: 40,
    });
    const calls = r.choices[0].message.tool_calls as { function: { name: string; arguments: string } }[];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), [['get_weather', { city: 'Oslo' }]]);
    assert.equal(r.choices[0].message.content ?? '', '');
    const header = T('<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>');
    assert.deepEqual(model.prompts.at(-1)!.slice(-header.length), header, 'the prompt opens the call');
    const p = new HarmonyChatFormat(tok, { now: NOW }).renderChatCompletion({
      messages: [{ role: 'user', content: 'x' }], tools: weather, tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    assert.deepEqual(p.constraint, { type: 'json_schema', schema: weather[0].function.parameters });
    // a schema the grammar cannot enforce still gets a JSON object
    const loose = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object', properties: { s: { type: 'string', pattern: '^a+$' } } } } }];
    const q = new HarmonyChatFormat(tok, { now: NOW }).renderChatCompletion({ messages: [{ role: 'user', content: 'x' }], tools: loose, tool_choice: { type: 'function', function: { name: 'f' } } });
    assert.deepEqual(q.constraint, { type: 'json_object' });
  });

  test('tool_choice "required" with several tools: the model picks one, the header and its arguments are constrained', async () => {
    const tools = [...weather, { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'], additionalProperties: false } } }];
    // the model continues after `to=functions.`: a name, the header tail, then arguments
    model.script = T('get_time <|constrain|>json<|message|>{"tz":"UTC"}<|call|>');
    const r = await client.chat.completions.create({ model: 'replay', tools, tool_choice: 'required', messages: [{ role: 'user', content: 'Anything.' }], max_tokens: 40 });
    const calls = r.choices[0].message.tool_calls as { function: { name: string; arguments: string } }[];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), [['get_time', { tz: 'UTC' }]]);
    const head = T('<|start|>assistant<|channel|>commentary to=functions.');
    assert.deepEqual(model.prompts.at(-1)!.slice(-head.length), head, 'the prompt opens the recipient');
    // a name that is not offered cannot be produced
    const p = new HarmonyChatFormat(tok, { now: NOW }).renderChatCompletion({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'required' });
    assert.equal(p.constraint?.type, 'tool_call');
    const c = constraintFactory(tok)(p.constraint!);
    for (const id of T('get_')) { assert.ok(c.allowed(id)); c.accept(id); }
    assert.ok(c.allowed(T('time')[0]) && c.allowed(T('weather')[0]));
    assert.ok(!c.allowed(T('xyz')[0]) && !c.allowed(T(' ')[0]), 'only the offered names continue');
    // and the arguments follow the chosen tool's schema (get_time: no other keys)
    for (const id of T('time <|constrain|>json<|message|>{"tz":"UTC"')) { assert.ok(c.allowed(id)); c.accept(id); }
    assert.ok(!c.allowed(T(',"')[0]) && c.allowed(T('}')[0]));
  });

  test('json_schema output is enforced by constrained decoding and validates', async () => {
    // the script tries to answer with a string where the schema wants an integer, then an extra key
    const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'], additionalProperties: false };
    model.script = T('<|channel|>analysis<|message|>ok<|end|><|start|>assistant<|channel|>final<|message|>{"answer": "seven", "extra": 1}<|return|>');
    model.fallback = [tok.encode('}')[0], tok.encode('7')[0]];
    const r = await client.chat.completions.create({
      model: 'replay', messages: [{ role: 'user', content: 'number?' }], max_tokens: 60, temperature: 0,
      response_format: { type: 'json_schema', json_schema: { name: 'n', schema, strict: true } },
    });
    const text = r.choices[0].message.content!;
    const v = JSON.parse(text);
    assert.ok(new Ajv().compile(schema)(v), text);
    model.fallback = [];
  });
});
