/**
 * The engine-facing output parser: routing of well-formed output, recovery from malformed
 * output, and a property test over randomly corrupted token streams (no throw, no lost text).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES } from './helpers.js';
import { harmonyTokenizer } from '../src/harmony/default-tokenizer.js';
import { HarmonyOutputParser } from '../src/harmony/output-parser.js';
import type { OutputEvent } from '../src/chat/chat-format.js';

const SPECIAL = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'harmony', 'special_tokens.json'), 'utf8'));
const ST: Record<string, number> = SPECIAL.special_tokens;
const tk = harmonyTokenizer();
const enc = (s: string) => tk.encode(s, { allowedSpecial: 'all' });

function run(ids: number[], finish = true) {
  let n = 0;
  const p = new HarmonyOutputParser(tk, { newCallId: () => `call_${n++}` });
  const events: OutputEvent[] = [];
  for (const id of ids) events.push(...p.push(id));
  if (finish) events.push(...p.finish());
  return { events, result: p.result() };
}

test('analysis → reasoning, final → content, streamed as deltas', () => {
  const { events, result } = run(enc('<|channel|>analysis<|message|>Think 2+2.<|end|><|start|>assistant<|channel|>final<|message|>It is 4.<|return|>'));
  assert.deepEqual(result, { reasoning: 'Think 2+2.', content: 'It is 4.', toolCalls: [], malformed: false });
  assert.ok(events.filter((e) => e.type === 'reasoning').length > 1, 'reasoning streams token by token');
  assert.equal(events.filter((e) => e.type === 'content').map((e) => (e as { delta: string }).delta).join(''), 'It is 4.');
});

test('tool calls in both header orders, bare json type; arguments streamed; ids from the generator', () => {
  for (const header of [
    '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json',
    '<|start|>assistant<|channel|>commentary to=functions.get_weather<|constrain|>json',
    '<|start|>assistant to=functions.get_weather<|channel|>commentary json',
  ]) {
    const { events, result } = run(enc(`<|channel|>analysis<|message|>Need weather.<|end|>${header}<|message|>{"city": "Tokyo"}<|call|>`));
    assert.equal(result.malformed, false, header);
    assert.equal(result.reasoning, 'Need weather.');
    assert.deepEqual(result.toolCalls, [{ id: 'call_0', name: 'get_weather', arguments: '{"city": "Tokyo"}' }]);
    assert.deepEqual(events[events.length - 1], { type: 'tool_call_end', index: 0 });
    const start = events.find((e) => e.type === 'tool_call_start');
    assert.deepEqual(start, { type: 'tool_call_start', index: 0, id: 'call_0', name: 'get_weather' });
    assert.ok(events.filter((e) => e.type === 'tool_call_arguments').length > 1);
  }
});

test('commentary preamble and missing channel go to content; built-in recipients to reasoning', () => {
  const a = run(enc('<|channel|>commentary<|message|>Checking now.<|end|><|start|>assistant<|message|>Done.<|return|>'));
  assert.deepEqual([a.result.content, a.result.malformed], ['Checking now.Done.', false]);
  const b = run(enc('<|channel|>analysis<|message|>x<|end|><|start|>assistant to=browser.search<|channel|>analysis code<|message|>{"q":1}<|call|>'));
  assert.deepEqual([b.result.reasoning, b.result.toolCalls.length], ['x{"q":1}', 0]);
});

test('malformed output is kept and flagged, never thrown', () => {
  // missing <|message|>: the header words become content of that message
  const a = run(enc('<|channel|>final Hello there<|return|>'));
  assert.deepEqual([a.result.content, a.result.malformed], [' Hello there', true]);
  // no header at all
  const b = run(enc('I must refuse<|end|><|start|>assistant<|channel|>final<|message|>Sorry.<|return|>'));
  assert.deepEqual([b.result.content, b.result.malformed], ['I must refuseSorry.', true]);
  // truncated inside content and inside a header
  const c = run(enc('<|channel|>analysis<|message|>Let me'));
  assert.deepEqual([c.result.reasoning, c.result.malformed], ['Let me', true]);
  const d = run(enc('<|channel|>analysis<|message|>ok<|end|><|start|>assistant<|channel|>fin'));
  assert.deepEqual([d.result.reasoning, d.result.content, d.result.malformed], ['ok', 'fin', true]);
  // stray special tokens inside content stay as their text; unknown ids become U+FFFD
  const e = run([...enc('<|channel|>final<|message|>a'), ST['<|constrain|>'], ST['<|reserved_200013|>'] ?? 200013, 1e9, ...enc('b<|return|>')]);
  assert.deepEqual([e.result.content, e.result.malformed], ['a<|constrain|><|reserved_200013|>\uFFFDb', true]);
  // a missing <|end|> before the next header
  const f = run(enc('<|channel|>analysis<|message|>think<|start|>assistant<|channel|>final<|message|>ans<|return|>'));
  assert.deepEqual([f.result.reasoning, f.result.content, f.result.malformed], ['think', 'ans', true]);
  // a tool call cut off in its arguments is still a tool call
  const g = run(enc('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"a":'));
  assert.deepEqual([g.result.toolCalls, g.result.malformed], [[{ id: 'call_0', name: 'f', arguments: '{"a":' }], true]);
});

/** mulberry32: a small seeded PRNG so failures reproduce */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** content words: no role, channel or content-type keywords; some multi-byte */
const WORDS = ['lorem', 'ipsum', '42', 'naïve', 'café', '日本語', '🎉', 'x=1', '{"k": [1, 2]}', '\n', 'ok.', 'Zürich', '—', '√2', 'ends'];

test('property: corrupted token streams never throw and lose no content text', () => {
  const rnd = prng(20260124);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rnd() * a.length)];
  const specials = ['<|start|>', '<|message|>', '<|end|>', '<|return|>', '<|call|>', '<|channel|>', '<|constrain|>', '<|endoftext|>', '<|reserved_200013|>']
    .map((n) => ST[n]).filter((id) => id !== undefined);
  const specialSet = new Set(Object.values(ST));
  for (let iter = 0; iter < 400; iter++) {
    // a well-formed completion: tokens tagged content (true) or structure (false)
    const toks: { id: number; content: boolean }[] = [];
    const add = (s: string, content: boolean) => { for (const id of enc(s)) toks.push({ id, content }); };
    const n = 1 + Math.floor(rnd() * 4);
    for (let m = 0; m < n; m++) {
      const kind = pick(['analysis', 'final', 'call'] as const);
      const body = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => ` ${pick(WORDS)}`).join('');
      const prefix = m === 0 ? '' : '<|start|>assistant';
      if (kind === 'call') add(`${prefix} to=functions.tool_${m}<|channel|>commentary <|constrain|>json<|message|>`, false);
      else add(`${prefix}<|channel|>${kind}<|message|>`, false);
      add(body, true);
      add(kind === 'call' ? '<|call|>' : m === n - 1 ? '<|return|>' : '<|end|>', false);
    }
    // corrupt: insert / delete / swap special tokens, then maybe truncate; only at character boundaries
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const atBoundary = (i: number) => {
      try {
        fatal.decode(tk.decodeBytes(toks.slice(0, i).map((t) => t.id)));
        return true;
      } catch {
        return false;
      }
    };
    const ops = Math.floor(rnd() * 5);
    for (let k = 0; k < ops; k++) {
      const op = pick(['insert', 'delete', 'swap'] as const);
      if (op === 'insert') {
        const i = Math.floor(rnd() * (toks.length + 1));
        if (atBoundary(i)) toks.splice(i, 0, { id: pick(specials), content: false });
      } else {
        const idx = toks.map((t, i) => (specialSet.has(t.id) ? i : -1)).filter((i) => i >= 0);
        if (idx.length === 0) continue;
        const i = pick(idx);
        if (op === 'delete') toks.splice(i, 1);
        else if (i + 1 < toks.length && atBoundary(i + 2) && atBoundary(i)) [toks[i], toks[i + 1]] = [toks[i + 1], toks[i]];
      }
    }
    if (rnd() < 0.3) {
      const cut = Math.floor(rnd() * toks.length);
      if (atBoundary(cut)) toks.length = cut;
    }
    const ids = toks.map((t) => t.id);
    let events: OutputEvent[] = [];
    const p = new HarmonyOutputParser(tk);
    assert.doesNotThrow(() => {
      for (const id of ids) events = events.concat(p.push(id));
      events = events.concat(p.finish());
    }, `iteration ${iter}: ${tk.decode(ids)}`);
    const out = events.map((e) => (e.type === 'tool_call_start' ? e.name : 'delta' in e ? e.delta : '')).join('');
    const want = tk.decode(toks.filter((t) => t.content).map((t) => t.id));
    // every content character appears in the output, in order
    let j = 0;
    for (const ch of out) if (j < want.length && want.startsWith(ch, j)) j += ch.length;
    assert.equal(j, want.length, `iteration ${iter}: lost content after ${JSON.stringify(want.slice(0, j))}\ninput: ${JSON.stringify(tk.decode(ids))}\noutput: ${JSON.stringify(out)}`);
    // result() says exactly what the events said
    const r = p.result();
    const deltas = (type: string, index?: number) => events
      .filter((e) => e.type === type && (index === undefined || (e as { index: number }).index === index))
      .map((e) => (e as { delta: string }).delta).join('');
    assert.equal(r.reasoning, deltas('reasoning'));
    assert.equal(r.content, deltas('content'));
    r.toolCalls.forEach((c, i) => assert.equal(c.arguments, deltas('tool_call_arguments', i)));
    assert.equal(events.filter((e) => e.type === 'tool_call_start').length, r.toolCalls.length);
    assert.equal(events.filter((e) => e.type === 'tool_call_end').length, r.toolCalls.length);
  }
});
