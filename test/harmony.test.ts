/**
 * Harmony against the real o200k_harmony vocabulary: every fixture case (render, parse, stream,
 * tokenizer), the conformance command, HarmonyChatFormat and `tessera render`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES, runCli } from './helpers.js';
import { HarmonyCaseRunner } from '../src/harmony/cases.js';
import { harmonyTokenizer } from '../src/harmony/default-tokenizer.js';
import { HarmonyChatFormat } from '../src/harmony/chat-format.js';
import { parseCompletionTokens } from '../src/harmony/stream-parser.js';
import { messageText } from '../src/harmony/types.js';

const DIR = path.join(FIXTURES, 'harmony');
const CASES = path.join(DIR, 'cases');
const SPECIAL = JSON.parse(fs.readFileSync(path.join(DIR, 'special_tokens.json'), 'utf8'));
const caseFiles = () => fs.readdirSync(CASES).filter((f) => f.endsWith('.json')).sort();

test('every harmony fixture case passes', () => {
  const runner = new HarmonyCaseRunner(harmonyTokenizer());
  const failures: string[] = [];
  const files = caseFiles();
  assert.ok(files.length > 0);
  for (const f of files) {
    const c = JSON.parse(fs.readFileSync(path.join(CASES, f), 'utf8'));
    const r = runner.run(c, CASES);
    if (!r.ok) failures.push(`${f}: ${r.detail}`);
  }
  assert.deepEqual(failures, []);
});

test('the case runner fails a case whose expectation is wrong', () => {
  const runner = new HarmonyCaseRunner(harmonyTokenizer());
  const c = JSON.parse(fs.readFileSync(path.join(CASES, 'simple_convo.json'), 'utf8'));
  c.expected.tokens = [...c.expected.tokens.slice(0, -1), 0];
  assert.equal(runner.run(c, CASES).ok, false);
  const s = JSON.parse(fs.readFileSync(path.join(CASES, 'stream_docs_example.json'), 'utf8'));
  s.expected.steps[3].last_content_delta = 'Usr';
  assert.equal(runner.run(s, CASES).ok, false);
  const e = JSON.parse(fs.readFileSync(path.join(CASES, 'error_parse_unknown_role.json'), 'utf8'));
  const tk = harmonyTokenizer();
  const st = SPECIAL.special_tokens;
  e.input.tokens = [st['<|start|>'], ...tk.encode('assistant'), st['<|message|>'], ...tk.encode('hi'), st['<|end|>']];
  assert.equal(runner.run(e, CASES).ok, false, 'a valid stream in an error case must fail the case');
});

test('tessera conformance runs the harmony folder: one line per case, all pass', () => {
  const r = runCli(['conformance', DIR]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  const n = caseFiles().length;
  assert.equal(lines.filter((l) => l.startsWith('PASS harmony/')).length, n);
  assert.equal(lines[lines.length - 1], `${n} passed, 0 failed`);
});

test('HarmonyChatFormat: stop tokens, prompt ids = text encoded, parse of a rendered tool call round-trips', () => {
  const tk = harmonyTokenizer();
  const fmt = new HarmonyChatFormat(tk, { now: () => new Date('2025-06-28T12:00:00Z') });
  assert.deepEqual([...fmt.stopTokenIds].sort((a, b) => a - b), SPECIAL.stop_tokens_for_assistant_actions);
  const p = fmt.renderChatCompletion({
    messages: [{ role: 'user', content: 'Weather <|end|> in SF?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"SF"}' } }] }],
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
  });
  assert.ok(p.text.includes('Current date: 2025-06-28'));
  assert.ok(p.text.endsWith('<|start|>assistant'));
  assert.deepEqual(p.ids.slice(-2), [SPECIAL.special_tokens['<|start|>'], ...tk.encode('assistant')]);
  // the user's "<|end|>" stays text: one <|end|> id each for system, developer and user (the call ends in <|call|>)
  const end = SPECIAL.special_tokens['<|end|>'];
  assert.equal(p.ids.filter((id) => id === end).length, 3);
  assert.equal(tk.decode(p.ids), p.text);
  // a lone surrogate is encoded as tiktoken does (U+FFFD), and the text says so too
  const q = fmt.renderChatCompletion({ messages: [{ role: 'user', content: 'a\ud800b' }] });
  assert.ok(q.text.includes('<|message|>a\uFFFDb<|end|>'));
  assert.equal(tk.decode(q.ids), q.text);
  // the call message parses back to what was rendered
  const start = p.ids.lastIndexOf(SPECIAL.special_tokens['<|start|>'], p.ids.length - 3);
  const msgs = parseCompletionTokens(tk, p.ids.slice(start, -2), null);
  assert.deepEqual(msgs.map((m) => [m.role, m.recipient, m.channel, m.contentType, messageText(m)]),
    [['assistant', 'functions.get_weather', 'commentary', '<|constrain|>json', '{"city":"SF"}']]);
});

test('tessera render: Chat Completions and Responses bodies → {text, ids}; bad input names the field', () => {
  const body = JSON.stringify({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], reasoning_effort: 'low' });
  const r = runCli(['render', '--date', '2026-03-04'], body);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.ok(out.text.startsWith('<|start|>system<|message|>You are ChatGPT'));
  assert.ok(out.text.includes('Current date: 2026-03-04\n\nReasoning: low'));
  assert.ok(out.text.includes('<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>'));
  assert.deepEqual(out.ids, harmonyTokenizer().encode(out.text, { allowedSpecial: 'all' }));
  const rr = runCli(['render', '--responses', '--date', '2026-03-04'], JSON.stringify({ input: 'Hi', instructions: 'Be brief.', reasoning: { effort: 'low' } }));
  assert.equal(rr.status, 0, rr.stderr);
  assert.equal(JSON.parse(rr.stdout).text, out.text);
  const bad = runCli(['render'], JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'foo', content: 'y' }] }));
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim(), 'tessera: messages[1].role: unknown role "foo"');
  const notJson = runCli(['render'], '{');
  assert.equal(notJson.status, 1);
  assert.match(notJson.stderr, /^tessera: render: stdin is not valid JSON/);
});
