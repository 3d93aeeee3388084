/**
 * Harmony rendering at the text level (no vocabulary needed): every render fixture's expected
 * text, the JSON-schema → TypeScript rules, and the tolerant header reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FIXTURES } from './helpers.js';
import { completionPieces, conversationPieces, messagePieces, type Piece } from '../src/harmony/renderer.js';
import { messageFromJson } from '../src/harmony/message-json.js';
import { FORMATTING_TOKENS } from '../src/harmony/special-tokens.js';
import { schemaToTypeScript } from '../src/harmony/schema-ts.js';
import { parseTolerantHeader } from '../src/harmony/tolerant-header.js';
import { parseHeader } from '../src/harmony/header.js';
import { toolsSection } from '../src/harmony/content-text.js';

const CASES = path.join(FIXTURES, 'harmony', 'cases');

function text(pieces: Piece[]): string {
  return pieces.map((p) => ('special' in p ? FORMATTING_TOKENS[p.special] : p.text)).join('');
}

test('render fixtures: expected text (and the error cases are rejected)', () => {
  let n = 0;
  for (const f of fs.readdirSync(CASES).filter((x) => x.endsWith('.json')).sort()) {
    const c = JSON.parse(fs.readFileSync(path.join(CASES, f), 'utf8'));
    if (!String(c.kind).startsWith('render')) continue;
    const cfg = { autoDropAnalysis: c.input.config?.auto_drop_analysis !== false };
    const run = () => {
      if (c.kind === 'render_message') {
        return text(messagePieces(messageFromJson(c.input.message), { conversationHasFunctionTools: c.input.render_options.conversation_has_function_tools }));
      }
      const msgs = c.input.messages.map((m: unknown) => messageFromJson(m));
      if (c.kind === 'render_completion') return text(completionPieces(msgs, c.input.next_role, cfg));
      const p = conversationPieces(msgs, cfg);
      const last = msgs[msgs.length - 1];
      if (c.kind === 'render_training' && last.role === 'assistant' && last.channel === 'final') p[p.length - 1] = { special: 'return' };
      return text(p);
    };
    if (c.expected.error) assert.throws(run, Error, f);
    else assert.equal(run(), c.expected.text, f);
    n++;
  }
  assert.ok(n >= 40, `only ${n} render cases found`);
});

test('schema → TypeScript: enum default bare, nullable, arrays of enums, nested objects', () => {
  const s = {
    type: 'object',
    properties: {
      unit: { type: 'string', enum: ['c', 'f'], default: 'c' },
      n: { type: 'integer', default: 3, nullable: true },
      tags: { type: 'array', items: { type: 'string', enum: ['a', 'b'] } },
      any: {},
      when: { type: 'object', description: 'Start', properties: { t: { type: ['number', 'null'] } }, required: ['t'] },
    },
    required: ['unit'],
  };
  assert.equal(schemaToTypeScript(s), [
    '{',
    'unit: "c" | "f", // default: c',
    'n?: number | null, // default: 3',
    'tags?: "a" | "b"[],',
    'any?: any,',
    '// Start',
    'when?:     // Start',
    '{',
    '    t: number | null,',
    '    },',
    '}',
  ].join('\n'));
});

test('tools section: namespaces sorted and replaced by name, python-style plain description', () => {
  const out = toolsSection([
    { name: 'python', description: 'line one\n\nline two\n', tools: [] },
    { name: 'functions', description: null, tools: [{ name: 'old', description: '', parameters: null }] },
    { name: 'functions', description: null, tools: [{ name: 'f', description: 'Does f.', parameters: null }] },
  ]);
  assert.equal(out, '# Tools\n\n## functions\n\nnamespace functions {\n\n// Does f.\ntype f = () => any;\n\n} // namespace functions\n\n## python\n\nline one\n\nline two');
});

test('reference header parsing: channel/recipient orders, constrain adjacency, errors', () => {
  const h = parseHeader('assistant<|channel|>commentary to=functions.get_weather<|constrain|>json', null);
  assert.deepEqual(h, { role: 'assistant', name: null, recipient: 'functions.get_weather', channel: 'commentary', contentType: '<|constrain|>json' });
  assert.deepEqual(parseHeader('browser.search to=assistant<|channel|>commentary', null),
    { role: 'tool', name: 'browser.search', recipient: 'assistant', channel: 'commentary', contentType: null });
  assert.throws(() => parseHeader('robot', null), /Unknown role/);
  assert.throws(() => parseHeader('assistant<|channel|>', null), /no channel value/);
  assert.throws(() => parseHeader('assistant<|channel|>final one two three', null), /unexpected tokens remaining/);
});

test('tolerant header: never fails, keeps every non-structural byte as leftover', () => {
  const a = parseTolerantHeader('assistant<|channel|>finalHello  world', null, false);
  assert.equal(a.channel, 'final');
  assert.equal(a.leftover, 'Hello  world');
  assert.equal(a.malformed, true);
  const b = parseTolerantHeader('<|channel|>commentary to=functions.get_weather <|constrain|>json', 'assistant', true);
  assert.deepEqual([b.role, b.channel, b.recipient, b.contentType, b.leftover, b.malformed], ['assistant', 'commentary', 'functions.get_weather', '<|constrain|>json', '', false]);
  const c = parseTolerantHeader('I must refuse', 'assistant', false);
  assert.deepEqual([c.channel, c.leftover], [null, 'I must refuse']);
  const d = parseTolerantHeader('<|channel|>weird stuff', 'assistant', true);
  assert.deepEqual([d.channel, d.leftover, d.malformed], [null, 'weird stuff', true]);
  const e = parseTolerantHeader('assistant to=functions.f{"a":1}', null, false);
  assert.deepEqual([e.recipient, e.leftover], ['functions.f', '{"a":1}']);
});
