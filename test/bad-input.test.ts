/** Bad checkpoints and arguments end with one clear line naming the problem and exit 1. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../src/weights/safetensors.js';
import { modelFixtureDirs, runCli, tmpDir } from './helpers.js';

const SRC = modelFixtureDirs('gpt-oss')[0];

type Tensor = { name: string; dtype: any; shape: number[]; data: Uint8Array };

function loadTensors(): Tensor[] {
  const f = new SafetensorsFile(path.join(SRC, 'model.safetensors'));
  const out = [...f.tensors.keys()].map((n) => f.read(n));
  f.close();
  return out;
}

/** A copy of the fixture checkpoint, with the tensors and config edited by `edit`. */
function variant(edit: { tensors?: (t: Tensor[]) => Tensor[]; config?: (c: any) => any; raw?: (file: string) => void }): string {
  const dir = tmpDir();
  const cfg = JSON.parse(fs.readFileSync(path.join(SRC, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(edit.config ? edit.config(cfg) : cfg));
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, edit.tensors ? edit.tensors(loadTensors()) : loadTensors());
  edit.raw?.(file);
  return dir;
}

function rewriteHeader(file: string, fn: (h: any) => any): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const h = fn(JSON.parse(buf.subarray(8, 8 + n).toString()));
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  fs.writeFileSync(file, Buffer.concat([len, hb, buf.subarray(8 + n)]));
}

function expectFailure(args: string[], ...mustContain: string[]) {
  const r = runCli(args);
  assert.equal(r.status, 1, `exit status for ${args.join(' ')}: stdout=${r.stdout} stderr=${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^tessera: /);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  for (const s of mustContain) assert.ok(lines[0].includes(s), `"${lines[0]}" should name ${s}`);
}

const gen = (dir: string, ids = '1,2,3') => ['generate', '--model', dir, '--ids', ids, '--max-new-tokens', '2'];

test('missing checkpoint folder', () => expectFailure(gen('/nonexistent/ckpt'), '/nonexistent/ckpt'));

test('missing model.safetensors', () => {
  const dir = variant({});
  fs.rmSync(path.join(dir, 'model.safetensors'));
  expectFailure(gen(dir), 'model.safetensors');
});

test('truncated safetensors file', () => {
  const dir = variant({ raw: (f) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)) });
  expectFailure(gen(dir), 'model.safetensors', 'truncated');
});

test('corrupt header length', () => {
  const dir = variant({ raw: (f) => { const b = fs.readFileSync(f); b.writeBigUInt64LE(1n << 40n, 0); fs.writeFileSync(f, b); } });
  expectFailure(gen(dir), 'header length');
});

test('header that is not JSON', () => {
  const dir = variant({ raw: (f) => { const b = fs.readFileSync(f); b[8] = 0x5b; b[9] = 0x7b; fs.writeFileSync(f, b); } });
  expectFailure(gen(dir), 'not valid JSON');
});

test('offsets out of range', () => {
  const dir = variant({
    raw: (f) => rewriteHeader(f, (h) => {
      const name = 'model.norm.weight';
      const [b, e] = h[name].data_offsets;
      h[name].data_offsets = [b + 1e9, e + 1e9];
      return h;
    }),
  });
  expectFailure(gen(dir), 'model.norm.weight', 'beyond the end');
});

test('overlapping tensors', () => {
  const dir = variant({
    raw: (f) => rewriteHeader(f, (h) => {
      h['model.norm.weight'].data_offsets = [...h['model.layers.0.input_layernorm.weight'].data_offsets];
      return h;
    }),
  });
  expectFailure(gen(dir), 'overlap');
});

test('tensor of the wrong shape', () => {
  const dir = variant({
    tensors: (ts) => ts.map((t) => (t.name === 'model.layers.0.self_attn.q_proj.weight' ? { ...t, shape: [t.shape[0] / 2, t.shape[1] * 2] } : t)),
  });
  expectFailure(gen(dir), 'model.layers.0.self_attn.q_proj.weight', 'shape');
});

test('tensor of the wrong dtype', () => {
  const dir = variant({
    tensors: (ts) => ts.map((t) => (t.name === 'model.layers.1.mlp.router.weight' ? { ...t, dtype: 'U8', shape: [t.shape[0], t.shape[1] * 2] } : t)),
  });
  expectFailure(gen(dir), 'model.layers.1.mlp.router.weight', 'dtype U8');
});

test('missing tensor', () => {
  const dir = variant({ tensors: (ts) => ts.filter((t) => t.name !== 'model.layers.1.self_attn.sinks') });
  expectFailure(gen(dir), 'model.layers.1.self_attn.sinks');
});

test('unknown model_type', () => {
  const dir = variant({ config: (c) => ({ ...c, model_type: 'llama9' }) });
  expectFailure(gen(dir), 'model_type', 'llama9');
});

test('config.json that is not JSON, and inconsistent fields', () => {
  const dir = variant({});
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "gpt_oss",');
  expectFailure(gen(dir), 'config.json', 'not valid JSON');
  const dir2 = variant({ config: (c) => ({ ...c, layer_types: ['sliding_attention'] }) });
  expectFailure(gen(dir2), 'layer_types');
  const dir3 = variant({ config: (c) => ({ ...c, num_key_value_heads: c.num_attention_heads + 1 }) });
  expectFailure(gen(dir3), 'num_key_value_heads');
});

test('ids outside the vocabulary', () => expectFailure(gen(SRC, '1,2,99999'), '--ids', '99999'));

test('non-numeric ids', () => {
  expectFailure(gen(SRC, '1,abc,3'), '--ids', 'abc');
  expectFailure(['logits', '--model', SRC, '--ids', '-1', '--out', '/tmp/x.f32'], '--ids');
});

test('logits writes [T, V] float32 little-endian', () => {
  const out = path.join(tmpDir(), 'l.f32');
  const r = runCli(['logits', '--model', SRC, '--ids', '1,2,3', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const cfg = JSON.parse(fs.readFileSync(path.join(SRC, 'config.json'), 'utf8'));
  assert.equal(fs.statSync(out).size, 3 * cfg.vocab_size * 4);
});

test('generate --json prints output_ids', () => {
  const r = runCli([...gen(SRC), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.output_ids.length, 2);
});

test('conformance exits 1 when nothing ran', () => {
  const r = runCli(['conformance', tmpDir()]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /^0 passed, 0 failed$/m);
});
