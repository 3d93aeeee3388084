/** o200k_base / o200k_harmony: the golden vectors, special-token rules, streaming decode, CLI. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { O200kTokenizer, IncrementalDetokenizer, loadTokenizer } from '../src/tokenizer/index.js';
import { tinyTokenizerJson } from './hf-fixture.js';
import { checkVector } from '../src/conformance/tokenizer-vectors.js';
import { FIXTURES, runCli, tmpDir } from './helpers.js';

const H = O200kTokenizer.harmony();

test('every vector in the tokenizer fixtures encodes and decodes exactly', () => {
  const dir = path.join(FIXTURES, 'tokenizer');
  let n = 0;
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const v = JSON.parse(line);
      const r = checkVector(v);
      assert.ok(r.ok, `${f}: ${JSON.stringify(v.text).slice(0, 80)}: ${r.detail}`);
      n++;
    }
  }
  assert.ok(n > 0);
});

test('harmony special tokens: ids, allowed vs ordinary text, disallowed is an error', () => {
  assert.equal(H.vocabSize, 201089);
  assert.equal(H.specialTokenId('<|start|>'), 200006);
  assert.equal(H.specialTokenId('<|reserved_201088|>'), 201088);
  assert.ok(H.isSpecial(200012) && !H.isSpecial(1000));
  const text = '<|start|>user<|message|>hi<|end|>';
  assert.deepEqual(H.encode(text, { allowedSpecial: 'all' }).filter((i) => H.isSpecial(i)), [200006, 200008, 200007]);
  assert.ok(H.encode(text).every((i) => !H.isSpecial(i)), 'plain encode never makes control tokens');
  assert.throws(() => H.encode(text, { allowedSpecial: [] }), /<\|start\|>/);
  assert.equal(H.decode(H.encode(text, { allowedSpecial: 'all' })), text);
  assert.throws(() => H.decodeBytes([1, 999999]), /999999 at index 1/);
});

test('long pieces merge exactly like short ones (heap path vs scan path)', () => {
  // a run longer than the scan threshold goes through the heap merge
  const bpe = H as unknown as { bpeSmall(k: string): number[]; bpeLarge(k: string): number[] };
  const latin1 = (t: string) => Buffer.from(t, 'utf8').toString('latin1');
  const samples = ['a'.repeat(500), 'ab'.repeat(300), '日本語'.repeat(100), 'supercalifragilistic'.repeat(20), '0123456789'.repeat(50)];
  let seed = 7;
  for (let k = 0; k < 20; k++) {
    let t = '';
    for (let i = 0; i < 150; i++) t += 'etaoinshrdlu日本🙂é'[(seed = (seed * 1103515245 + 12345) >>> 0) % 16];
    samples.push(t);
  }
  for (const t of samples) {
    const key = latin1(t);
    assert.deepEqual(bpe.bpeLarge(key), bpe.bpeSmall(key), t.slice(0, 30));
    assert.equal(H.decode(H.encode(t)), t);
  }
});

test('streaming decode never emits broken UTF-8 and loses nothing', () => {
  const text = 'héllo 日本語 🙂 naïve';
  const ids = H.encode(text);
  // decode byte by byte: split every multi-byte character across pushes
  const bytes = H.decodeBytes(ids);
  const fake = { tokenBytes: (i: number) => Uint8Array.of(bytes[i]) } as unknown as O200kTokenizer;
  const d = new IncrementalDetokenizer(fake);
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const piece = d.push(i);
    assert.ok(!piece.includes('\ufffd'), `broken character at byte ${i}`);
    out += piece;
  }
  out += d.flush();
  assert.equal(out, text);
  // a truncated character is flushed as U+FFFD, not dropped
  const d2 = new IncrementalDetokenizer(fake);
  const cut = bytes.indexOf(0xf0); // first byte of the emoji
  let s = '';
  for (let i = 0; i <= cut; i++) s += d2.push(i);
  assert.equal(s + d2.flush(), text.slice(0, text.indexOf('🙂')) + '\ufffd');
});

test('checkpoint folders: gpt-oss uses o200k_harmony; a tokenizer.json must agree; bad folders are named', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt_oss' }));
  assert.equal((await loadTokenizer(dir)).name, 'o200k_harmony');
  // a real (small) tokenizer.json whose <|start|> sits at another id than o200k_harmony's
  const j = tinyTokenizerJson() as { added_tokens: { content: string }[]; model: { vocab: Record<string, number> } };
  j.added_tokens[2].content = '<|start|>';
  delete j.model.vocab['<|im_start|>'];
  j.model.vocab['<|start|>'] = 2;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(j));
  await assert.rejects(loadTokenizer(dir), /<\|start\|> has id 2, but o200k_harmony has 200006/);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '[1, 2');
  await assert.rejects(loadTokenizer(dir), /tokenizer\.json.*not valid JSON/);
  await assert.rejects(loadTokenizer(path.join(dir, 'missing')), /config\.json/);
});

test('tessera tokenize: stdin text → ids, --decode, --allow-special, errors', () => {
  const r = runCli(['tokenize', '--encoding', 'o200k_harmony'], 'hello world');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [24912, 2375]);
  const d = runCli(['tokenize', '--encoding', 'o200k_harmony', '--decode'], '[24912,2375]');
  assert.equal(d.stdout, 'hello world');
  const s = runCli(['tokenize', '--encoding', 'o200k_harmony', '--allow-special'], '<|start|>');
  assert.deepEqual(JSON.parse(s.stdout), [200006]);
  const bad = runCli(['tokenize', '--encoding', 'nope'], 'x');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--encoding: unknown encoding "nope"/);
});
