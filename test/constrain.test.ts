/** JSON-schema constrained decoding: random walks through the allowed tokens always end in valid JSON. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ajv } from 'ajv';
import { compileSchema, initialState, ANY_OBJECT } from '../src/constrain/json-schema-grammar.js';
import { JsonConstraint, Vocabulary, advance, computeMask } from '../src/constrain/token-mask.js';
import { ToolCallConstraint } from '../src/constrain/tool-call.js';
import { Rng } from '../src/engine/sampling.js';

const enc = new TextEncoder();
const pieces = [
  ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)),
  '\n', '\t', '{"', '":', '", "', '"}', 'true', 'false', 'null', 'name', 'age', 'tags', '12', '3.5', 'e+7', '-0',
  'hello', ' world', '\\"', '\\u00e9', 'é', '日本', '},', '],', '[]', '{}', '"a"', '"b"', 'ok', ' "', '": "',
];
const vocab = new Vocabulary(pieces.length + 1, (id) => (id < pieces.length ? enc.encode(pieces[id]) : null));

function walk(schema: unknown, seed: number, root = compileSchema(schema)): string {
  const c = new JsonConstraint(vocab, root);
  const rng = new Rng(seed);
  let out = '';
  for (let steps = 0; steps < 400; steps++) {
    if (c.isComplete() && (steps > 60 || rng.next() < 0.5)) return out;
    const allowed: number[] = [];
    for (let id = 0; id < pieces.length; id++) if (c.allowed(id)) allowed.push(id);
    if (allowed.length === 0) return out;
    // prefer closing tokens later on so walks terminate
    const pick = allowed[Math.floor(rng.next() * allowed.length)];
    c.accept(pick);
    out += pieces[pick];
  }
  return out;
}

const ajv = new Ajv({ strict: false });
const schemas: Record<string, unknown> = {
  person: {
    type: 'object',
    properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' }, maxItems: 3 } },
    required: ['name', 'age'], additionalProperties: false,
  },
  enums: { type: 'object', properties: { a: { enum: ['x', 'y', 1, null] }, b: { const: true } }, required: ['a', 'b'], additionalProperties: false },
  nested: {
    type: 'object', $defs: { pt: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'], additionalProperties: false } },
    properties: { p: { $ref: '#/$defs/pt' }, q: { anyOf: [{ type: 'string' }, { type: 'null' }] }, r: { type: ['boolean', 'number'] } },
    required: ['p', 'q', 'r'], additionalProperties: false,
  },
  array: { type: 'array', items: { type: 'integer' }, minItems: 1 },
  lengths: {
    type: 'object',
    properties: { code: { type: 'string', minLength: 2, maxLength: 3 }, note: { type: 'string', maxLength: 5 }, any: {} },
    required: ['code', 'note'], additionalProperties: false,
  },
};

for (const [name, schema] of Object.entries(schemas)) {
  test(`every completed random walk is valid JSON for the "${name}" schema`, () => {
    const validate = ajv.compile(schema as object);
    let completed = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const text = walk(schema, seed);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue; // a walk cut at 400 tokens is an unfinished prefix
      }
      completed++;
      assert.ok(validate(value), `${text}: ${ajv.errorsText(validate.errors)}`);
    }
    assert.ok(completed > 40, `only ${completed} walks completed`);
  });
}

test('json_object: any object', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const text = walk(null, seed, ANY_OBJECT);
    try {
      const v = JSON.parse(text);
      assert.equal(typeof v, 'object');
      assert.ok(v !== null && !Array.isArray(v));
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
  }
});

test('the mask rejects what breaks the grammar and completion is detected', () => {
  const id = (s: string) => pieces.indexOf(s);
  const c = new JsonConstraint(vocab, compileSchema(schemas.person));
  assert.ok(c.allowed(id('{"')));
  assert.ok(!c.allowed(id('[]')));
  assert.ok(!c.allowed(id('true')));
  c.accept(id('{"'));
  assert.ok(c.allowed(id('name')) && c.allowed(id('age')) && c.allowed(id('tags')));
  assert.ok(!c.allowed(id('hello')), 'not a property name');
  for (const p of ['name', '": "', 'ok', '"', ',', ' "', 'age', '":', '12']) {
    assert.ok(c.allowed(id(p)), p);
    c.accept(id(p));
  }
  assert.ok(!c.allowed(id('.')), 'integer: no fraction');
  assert.ok(!c.isComplete());
  c.accept(id('}'));
  assert.ok(c.isComplete());
  assert.ok(!c.allowed(id('a')));
});

test('minLength/maxLength count code points, escapes as one, and bound only their own string', () => {
  const id = (p: string) => pieces.indexOf(p);
  const c = new JsonConstraint(vocab, compileSchema({ type: 'array', items: { type: 'string', minLength: 2, maxLength: 3 } }));
  for (const p of ['[', '"', 'é']) c.accept(id(p));
  assert.ok(!c.allowed(id('"')), 'one code point is below minLength');
  assert.ok(!c.allowed(id('\\u00e9')), 'no \\u escapes in a bounded string');
  assert.ok(!c.allowed(id('hello')), 'would exceed maxLength');
  assert.ok(c.allowed(id('日本')), 'two 3-byte code points reach maxLength exactly');
  c.accept(id('\\"'));
  assert.ok(c.allowed(id('"')));
  c.accept(id('a'));
  assert.ok(!c.allowed(id('a')) && !c.allowed(id('é')), 'at maxLength');
  for (const p of ['"', ',', '"', 'ok', '"', ']']) { assert.ok(c.allowed(id(p)), p); c.accept(id(p)); }
  assert.ok(c.isComplete());
  assert.throws(() => compileSchema({ type: 'string', minLength: 3, maxLength: 2 }), /schema\.minLength: 3 exceeds maxLength 2/);
  assert.throws(() => compileSchema({ type: 'string', maxLength: -1 }), /schema\.maxLength: expected a non-negative integer/);
});

test('schemas with keywords that cannot be enforced are rejected with the path named', () => {
  assert.throws(() => compileSchema({ type: 'string', pattern: '^a' }), /schema\.pattern/);
  assert.throws(() => compileSchema({ type: 'object', properties: { n: { type: 'number', minimum: 1 } } }), /schema\.properties\.n\.minimum/);
  assert.throws(() => compileSchema({ $ref: 'http://x' }), /only local references/);
  assert.throws(() => compileSchema({ type: 'widget' }), /unknown type/);
});

test('a gated constraint lets everything through until the gate tokens appear', () => {
  const c = new JsonConstraint(vocab, compileSchema(schemas.array), [pieces.indexOf('ok'), pieces.indexOf(':')]);
  assert.ok(c.allowed(pieces.indexOf('hello')));
  c.accept(pieces.indexOf('ok'));
  c.accept(pieces.indexOf(':'));
  assert.ok(!c.allowed(pieces.indexOf('hello')));
  assert.ok(c.allowed(pieces.indexOf('[')));
});

test('the prefix-sharing mask equals checking every token on its own', () => {
  for (const [name, schema] of Object.entries(schemas)) {
    for (let seed = 1; seed <= 20; seed++) {
      const text = walk(schema, seed).slice(0, (seed * 7) % 40);
      let states = [initialState(compileSchema(schema))];
      states = advance(states, enc.encode(text));
      if (states.length === 0) continue;
      const fast = computeMask(vocab, states);
      for (let id = 0; id < pieces.length; id++) {
        const alone = advance(states, enc.encode(pieces[id])).length > 0 ? 1 : 0;
        assert.equal(fast[id], alone, `${name} after ${JSON.stringify(text)}: token ${JSON.stringify(pieces[id])}`);
      }
    }
  }
});

test('a forced tool call inside a template\'s markup: free until the gate, then head, name, arguments and a trailer a token may straddle', () => {
  const id = (p: string) => pieces.indexOf(p);
  const SPECIAL = pieces.length;
  const strict = compileSchema({ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false });
  const shape = { gate: [id('\t'), id('\t')], head: [id('<')], tail: [id('=')], trailer: [id(','), SPECIAL] };
  const c = new ToolCallConstraint(vocab, [{ name: 'ok', root: strict }], shape);
  for (const p of ['hello', '\t', 'x']) { assert.ok(c.allowed(id(p)), `free before the gate: ${p}`); c.accept(id(p)); }
  assert.ok(!c.isComplete());
  c.accept(id('\t'));
  c.accept(id('\t'));
  assert.ok(c.allowed(id('<')) && !c.allowed(id('hello')) && !c.allowed(id('o')), 'the head comes first');
  for (const p of ['<', 'ok', '=', '{"', 'a', '":', '12']) { assert.ok(c.allowed(id(p)), p); c.accept(id(p)); }
  assert.ok(c.allowed(id('},')), 'a token that closes the arguments and opens the trailer');
  const alone = new ToolCallConstraint(vocab, [{ name: 'ok', root: strict }], { ...shape, gate: [] });
  for (const p of ['<', 'ok', '=', '{"', 'a', '":', '12', '}']) alone.accept(id(p));
  assert.ok(!alone.isComplete(), 'the trailer is still due');
  assert.ok(alone.allowed(id(',')) && !alone.allowed(SPECIAL) && !alone.allowed(id('}')) && !alone.allowed(id('x')));
  c.accept(id('},'));
  assert.ok(c.allowed(SPECIAL) && !c.allowed(id(',')));
  c.accept(SPECIAL);
  assert.ok(c.isComplete());
  assert.ok(!c.allowed(id('x')) && !c.allowed(SPECIAL), 'nothing after the call');
});

test('a forced tool call with a choice of tools: one of the names, the header tail, then that tool\'s arguments', () => {
  const id = (p: string) => pieces.indexOf(p);
  const SPECIAL = pieces.length; // no bytes: a special token
  const tail = [id(' '), SPECIAL, id('j'), id('s'), id('o'), id('n'), SPECIAL];
  const strict = compileSchema({ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false });
  const c = new ToolCallConstraint(vocab, [{ name: 'ok', root: strict }, { name: 'name', root: ANY_OBJECT }], { tail });
  for (const p of ['o', 'ok', 'n', 'name']) assert.ok(c.allowed(id(p)), p);
  assert.ok(!c.allowed(id('a')) && !c.allowed(SPECIAL) && !c.allowed(id('{"')));
  c.accept(id('o'));
  assert.ok(c.allowed(id('k')) && !c.allowed(id('ok')) && !c.allowed(id(' ')));
  c.accept(id('k'));
  assert.ok(c.allowed(id(' ')) && !c.allowed(SPECIAL) && !c.allowed(id(' "')), 'the tail follows the name exactly');
  c.accept(id(' '));
  assert.ok(c.allowed(SPECIAL) && !c.allowed(id('j')));
  for (const p of [SPECIAL, id('j'), id('s'), id('o'), id('n'), SPECIAL]) { assert.ok(c.allowed(p)); c.accept(p); }
  assert.ok(!c.isComplete());
  assert.ok(c.allowed(id('{"')) && !c.allowed(id('[]')) && !c.allowed(SPECIAL));
  for (const p of ['{"', 'a', '":', '12']) { assert.ok(c.allowed(id(p)), p); c.accept(id(p)); }
  assert.ok(!c.allowed(id('.')), 'the chosen tool\'s schema: an integer');
  c.accept(id('}'));
  assert.ok(c.isComplete());
  // the other tool takes any object
  const d = new ToolCallConstraint(vocab, [{ name: 'ok', root: strict }, { name: 'name', root: ANY_OBJECT }], { tail });
  for (const p of [id('name'), ...tail, id('{"'), id('b'), id('": "'), id('hello'), id('"}')]) { assert.ok(d.allowed(p)); d.accept(p); }
  assert.ok(d.isComplete());
});
