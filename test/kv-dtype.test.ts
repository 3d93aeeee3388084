/**
 * 16-bit KV caches (`--kv-cache-dtype f16|bf16`): the rounding on write, the same stored bits
 * and reads from both backends, and whole models running on them close to the f32 cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference.js';
import { NativeBackend, loadAddon } from '../src/backend/native.js';
import type { Backend, KvDtype } from '../src/backend/backend.js';
import { BlockAllocator } from '../src/cache/block-allocator.js';
import { SequenceCache } from '../src/cache/sequence-cache.js';
import { packBatch } from '../src/engine/batch.js';
import { promptLogits } from '../src/engine/runner.js';
import { resolveEngineOptions } from '../src/engine/config.js';
import { loadModel } from '../src/models/registry.js';
import { f16DecodeTable, f16ToF32, f32ToBf16, f32ToF16 } from '../src/weights/dtypes.js';
import { modelFixtureDirs, runCli, NATIVE_ISAS, nativeOn } from './helpers.js';

const addon = loadAddon();
const ref = new ReferenceBackend();

test('f32 → f16 rounds to nearest even, keeps half subnormals, overflows to inf', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [0, 0], [-0, 0x8000], [65504, 0x7bff],
    [65519.99, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00], [Infinity, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // a tie: to the even mantissa (down)
    [1 + 3 * 2 ** -11, 0x3c02], // a tie: to the even mantissa (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // past the tie
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0], [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], [5 * 2 ** -25, 0x0002], [2 ** -14 - 2 ** -25, 0x0400], // the subnormal top carries into the exponent
    [1e-30, 0], [-1e-30, 0x8000], [1.1754942e-38, 0],
  ];
  for (const [x, h] of cases) assert.equal(f32ToF16(x), h, `${x} → 0x${f32ToF16(x).toString(16)}, want 0x${h.toString(16)}`);
  assert.equal(f32ToF16(NaN) & 0x7e00, 0x7e00, 'NaN stays a quiet NaN');
  // every half round-trips through f32 (NaN aside)
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) continue;
    assert.equal(f32ToF16(f16ToF32(h)), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(f16DecodeTable()[0x0001], 2 ** -24);
});

/** values that exercise the writers: ties, subnormal halves, overflow, NaN, ±0, random ranges */
function writerValues(n: number): Float32Array {
  let s = 7;
  const r = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const special = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, 2 ** -14 - 2 ** -25, 65519.99, 65520, 1e9, -1e9,
    NaN, Infinity, -Infinity, 0, -0, 1e-40, 2 ** -24, 3.0000001, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8)];
  return Float32Array.from({ length: n }, (_, i) => (i < special.length ? special[i] : (r() * 2 - 1) * 10 ** (r() * 12 - 8)));
}

function oneToken(be: Backend, dtype: KvDtype, k: Float32Array, v: Float32Array, d: number) {
  const cache = be.allocKv(1, 4, 1, d, dtype);
  const seq = new SequenceCache(new BlockAllocator(1), 4);
  const batch = packBatch([{ cache: seq, tokens: [0], logits: 'all' }]);
  const out = be.attention(new Float32Array(d), k, v, 1, cache, batch, { nHeads: 1, nKv: 1, headDim: d, scale: 1, window: 0, sinks: null });
  return { cache, out };
}

for (const isa of NATIVE_ISAS) {
  test(`native ${isa}: the 16-bit KV writers store the reference's bits, and the reads widen exactly`, (t) => {
    const be = nativeOn(t, isa);
    if (!be) return;
    const d = 200;
    const vals = writerValues(d);
    for (const dtype of ['f16', 'bf16'] as const) {
      const a = oneToken(be, dtype, vals, vals, d);
      const b = oneToken(ref, dtype, vals, vals, d);
      assert.deepEqual(Array.from(a.cache.k.subarray(0, d)), Array.from(b.cache.k.subarray(0, d)), `${dtype} k bits`);
      assert.deepEqual(Array.from(a.cache.v.subarray(0, d)), Array.from(b.cache.v.subarray(0, d)), `${dtype} v bits`);
      const want = Array.from(vals, (x) => (dtype === 'f16' ? f32ToF16(x) : f32ToBf16(x)));
      assert.deepEqual(Array.from(b.cache.k.subarray(0, d)), want, `${dtype}: the reference stores the rounded bits`);
    }
    // one key, no sinks: the output is that token's value row as read back, subnormal halves
    // included (the kernels run with denormals flushed; the widening must not be)
    const tiny = Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? -1 : 1) * (i + 1) * 2 ** -24);
    const a = oneToken(be, 'f16', tiny, tiny, 64);
    assert.deepEqual(Array.from(a.out), Array.from(tiny), 'f16 subnormal values read back exactly');
  });
}

test('a model on a 16-bit KV cache: half the cache bytes, the same logits from both backends, near the f32 cache\'s', () => {
  const dir = modelFixtureDirs('gpt-oss')[0];
  const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % 200);
  const backends: Backend[] = [ref, ...(addon ? [new NativeBackend(addon, 2)] : [])];
  const base = promptLogits(loadModel(dir, ref), ids);
  let peak = 0;
  for (const v of base) peak = Math.max(peak, Math.abs(v));
  for (const kvCacheDtype of ['f16', 'bf16'] as const) {
    const runs = backends.map((be) => {
      const m = loadModel(dir, be, { kvCacheDtype });
      assert.equal((m as any).kvBytesPerToken(), (loadModel(dir, be) as any).kvBytesPerToken() / 2);
      return promptLogits(m, ids);
    });
    // the backends store and read the same values: they agree as closely as on an f32 cache
    for (let i = 0; i < base.length; i++) assert.ok(Math.abs(runs[0][i] - runs.at(-1)![i]) <= 2e-4 * peak, `${kvCacheDtype}: backends differ at ${i}`);
    let max = 0, sum = 0;
    for (let i = 0; i < base.length; i++) {
      const dv = Math.abs(runs[0][i] - base[i]);
      max = Math.max(max, dv);
      sum += dv;
    }
    assert.ok(max > 0, `${kvCacheDtype}: the cache must round`);
    // f16 keeps 11 mantissa bits, bf16 8: a rounded key can flip a token's expert choice in a
    // tiny random model, so bf16 is held to the mean, f16 to the largest change
    if (kvCacheDtype === 'f16') assert.ok(max < 5e-3 * peak, `f16: max |Δlogit| ${max} of peak ${peak}`);
    else assert.ok(sum / base.length < 5e-3 * peak, `bf16: mean |Δlogit| ${sum / base.length} of peak ${peak}`);
  }
});

test('nemotron-h attention blocks take the KV dtype too, and report their bytes per token', () => {
  const dir = modelFixtureDirs('nemotron-h')[0];
  const m = loadModel(dir, ref, { kvCacheDtype: 'bf16' }) as any;
  const cache = m.createCache({ numBlocks: 4, blockSize: 16, maxSeqs: 1 });
  const kv = cache.kvLayers();
  assert.ok(kv.length > 0 && kv.every((c: any) => c.dtype === 'bf16' && c.k instanceof Uint16Array));
  // --kv-cache-size sizes the pool from the bytes per token: the bytes the layers really hold
  const held = kv.reduce((n: number, c: any) => n + c.k.byteLength + c.v.byteLength, 0);
  assert.equal(m.kvBytesPerToken() * 4 * 16, held);
  const o = resolveEngineOptions(m, { kvCacheBytes: 2 ** 20, blockSize: 16 });
  assert.equal(o.numBlocks, Math.floor(2 ** 20 / (m.kvBytesPerToken() * 16)));
});

test('--kv-cache-dtype: a bad value is named', () => {
  const dir = modelFixtureDirs('gpt-oss')[0];
  const r = runCli(['generate', '--model', dir, '--ids', '1,2', '--max-new-tokens', '1', '--kv-cache-dtype', 'fp8']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--kv-cache-dtype: expected f32, f16 or bf16, got "fp8"/);
  const ok = runCli(['generate', '--model', dir, '--ids', '1,2', '--max-new-tokens', '2', '--kv-cache-dtype', 'f16', '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).output_ids.length, 2);
});

test('the bench writes stand-in keys and values at depth (never-written pages would read from one zero page)', async () => {
  const { fillKv } = await import('../bench/model-bench.js');
  const dir = modelFixtureDirs('gpt-oss')[0];
  for (const kvCacheDtype of ['f32', 'f16'] as const) {
    const cache = loadModel(dir, ref, { kvCacheDtype }).createCache({ numBlocks: 4, blockSize: 16 });
    fillKv(cache.kvLayers());
    for (const L of cache.kvLayers()) {
      for (const a of [L.k, L.v]) {
        const values = L.dtype === 'f32' ? Array.from(a) : Array.from(a, (h) => f16ToF32(h));
        assert.ok(values.every((x) => Number.isFinite(x) && Math.abs(x) <= 0.5), `${kvCacheDtype}: finite stand-ins`);
        assert.ok(values.filter((x) => x === 0).length < values.length / 100, `${kvCacheDtype}: written`);
      }
    }
  }
});
