/** Every native kernel against the reference backend, on random inputs with odd sizes, per ISA. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference.js';
import { NativeBackend, loadAddon } from '../src/backend/native.js';
import type { ExpertBank } from '../src/backend/backend.js';
import { BlockAllocator } from '../src/cache/block-allocator.js';
import { SequenceCache } from '../src/cache/sequence-cache.js';
import { packBatch } from '../src/engine/batch.js';
import { f32ToBf16 } from '../src/weights/dtypes.js';
import type { QMatrix } from '../src/weights/qmatrix.js';
import { NATIVE_ISAS, nativeOn } from './helpers.js';
import { argmax } from '../src/util/argmax.js';

const addon = loadAddon();
const ref = new ReferenceBackend();

test('the native addon is built (npm ci builds it)', () => {
  assert.ok(addon, 'native/build/tessera.node failed to load');
});

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const randF32 = (n: number, s = 1) => Float32Array.from({ length: n }, () => rnd() * s);

function matrices(rows: number, cols: number): QMatrix[] {
  const f = randF32(rows * cols);
  const out: QMatrix[] = [
    { format: 'f32', rows, cols, data: f },
    { format: 'bf16', rows, cols, data: Uint16Array.from(f, (v) => f32ToBf16(v)) },
  ];
  if (cols % 32 === 0) {
    out.push({
      format: 'mxfp4', rows, cols,
      blocks: Uint8Array.from({ length: rows * cols / 2 }, () => Math.floor((rnd() + 1) * 128) & 255),
      scales: Uint8Array.from({ length: rows * cols / 32 }, () => 118 + Math.floor((rnd() + 1) * 5)),
    });
  }
  // FP8: every finite e4m3 code (subnormals too; the NaN codes are checked apart), per-tensor,
  // per-row and 16 × 16 block scales
  const e4m3 = () => Uint8Array.from({ length: rows * cols }, () => {
    const b = Math.floor((rnd() + 1) * 128) & 255;
    return (b & 0x7f) === 0x7f ? b - 1 : b;
  });
  for (const [br, bc] of [[rows, cols], [1, cols], [16, 16]]) {
    const n = Math.ceil(rows / br) * Math.ceil(cols / bc);
    out.push({ format: 'fp8', rows, cols, data: e4m3(), scales: randF32(n, 0.05), blockRows: br, blockCols: bc });
  }
  if (cols % 16 === 0) {
    out.push({
      format: 'nvfp4', rows, cols,
      packed: Uint8Array.from({ length: rows * cols / 2 }, () => Math.floor((rnd() + 1) * 128) & 255),
      scales: Uint8Array.from({ length: rows * cols / 16 }, () => 0x20 + (Math.floor((rnd() + 1) * 16) & 31)),
      rowScale2: Float32Array.from({ length: rows }, () => 0.01 + Math.abs(rnd()) * 0.1),
    });
  }
  return out;
}

function close(a: Float32Array, b: Float32Array, what: string, rel = 1e-5) {
  assert.equal(a.length, b.length, what);
  let scale = 1e-6;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= rel * scale + 1e-6, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

for (const isa of NATIVE_ISAS) {
  test(`native ${isa}: linear / norms / rope / attention / moe match the reference`, (t) => {
    const be = nativeOn(t, isa);
    if (!be) return;
    for (const [rows, cols] of [[37, 45], [33, 96], [5, 160], [70, 64], [9, 48]]) {
      for (const w of matrices(rows, cols)) {
        // 37 tokens: few rows over many tokens split the tokens between the threads too
        for (const T of [1, 3, 4, 9, 37]) {
          const x = randF32(T * cols);
          const bias = randF32(rows);
          close(be.linear(x, T, w, bias), ref.linear(x, T, w, bias), `${w.format} ${rows}x${cols} T=${T}`);
        }
        // batch invariance: a token's outputs do not depend on the tokens beside it
        const x = randF32(7 * cols);
        const all = be.linear(x, 7, w, null);
        for (const t of [0, 4, 6]) {
          const one = be.linear(x.slice(t * cols, (t + 1) * cols), 1, w, null);
          assert.deepEqual(one, all.slice(t * rows, (t + 1) * rows), `${w.format} token ${t} bit-identical`);
        }
      }
    }
    const H = 48;
    const xn = randF32(3 * H, 3);
    const wn = randF32(H);
    close(be.rmsNorm(xn, 3, wn, 1e-5), ref.rmsNorm(xn, 3, wn, 1e-5), 'rmsNorm');
    const spec = { invFreq: Float32Array.from([1, 0.3, 0.01, 0.001]), concentration: 1.3, rotaryDim: 8 };
    const pos = Int32Array.from([0, 7, 300]);
    const xr1 = randF32(3 * 2 * 8);
    const xr2 = xr1.slice();
    be.rope(xr1, 3, 2, 8, pos, spec);
    ref.rope(xr2, 3, 2, 8, pos, spec);
    close(xr1, xr2, 'rope', 1e-5);

    // attention: two sequences (one continuing from a cache), GQA, window, sinks; a small shape
    // and one whose head dim, group size (11 = 8 + 1 + 1 + 1) and key counts hit the SIMD paths and
    // their tails; groups of 8 and 16 heads (gpt-oss: 8) take the 8-heads-at-once scores, with key
    // counts past a chunk of values (32) and not a multiple of 8
    for (const [nH, nKv, d, window, lens1, lens2] of [
      [6, 2, 20, 0, [7, 3], [1, 9]], [6, 2, 20, 5, [7, 3], [1, 9]],
      [22, 2, 80, 0, [37, 3], [1, 21]], [22, 2, 80, 19, [37, 3], [1, 21]], [8, 2, 64, 0, [40, 17], [2, 1]],
      [16, 2, 64, 0, [45, 3], [1, 30]], [32, 2, 64, 13, [45, 3], [2, 9]], [16, 2, 24, 0, [70, 5], [3, 1]],
    ] as [number, number, number, number, number[], number[]][]) {
      const sinkVals = Float32Array.from({ length: nH }, (_, i) => [0.5, -1, 2, 0, 1, 3][i % 6]);
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const mk = (b: typeof ref | NativeBackend) => {
        const alloc = new BlockAllocator(32);
        const cache = b.allocKv(32, 4, nKv, d, dtype);
        const s1 = new SequenceCache(alloc, 4);
        const s2 = new SequenceCache(alloc, 4);
        let sd = 99;
        const r = () => ((sd = (sd * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
        const run = (lens: number[]) => {
          const batch = packBatch([{ cache: s1, tokens: Array(lens[0]).fill(0), logits: 'all' },
            { cache: s2, tokens: Array(lens[1]).fill(0), logits: 'all' }]);
          const T = lens[0] + lens[1];
          const q = Float32Array.from({ length: T * nH * d }, r);
          const k = Float32Array.from({ length: T * nKv * d }, r);
          const v = Float32Array.from({ length: T * nKv * d }, r);
          return b.attention(q, k, v, T, cache, batch, { nHeads: nH, nKv, headDim: d, scale: 0.2, window, sinks: sinkVals });
        };
        return [run(lens1), run(lens2), cache] as const;
      };
      const [a1, a2, ca] = mk(be);
      const [b1, b2, cb] = mk(ref);
      const what = `attention ${dtype} d=${d} G=${nH / nKv} window=${window}`;
      close(a1, b1, `${what} step 1`);
      close(a2, b2, `${what} step 2`);
      // both backends store the same bits (the 16-bit writers round alike)
      assert.equal(ca.k.constructor, dtype === 'f32' ? Float32Array : Uint16Array, what);
      assert.deepEqual(new Uint8Array(ca.k.buffer), new Uint8Array(cb.k.buffer), `${what}: k cache bits`);
      assert.deepEqual(new Uint8Array(ca.v.buffer), new Uint8Array(cb.v.buffer), `${what}: v cache bits`);
      }
    }
    // a head's bits do not depend on its group: 8 heads a KV head (the 8-at-once scores) against
    // the same 8 beside a ninth (one head at a time), over 45 cached keys and a 3-token step
    for (const dtype of ['f32', 'f16'] as const) {
      const d = 64;
      let sd = 7;
      const r = () => ((sd = (sd * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      const lens = [45, 3];
      const qs = lens.map((T) => Float32Array.from({ length: T * 9 * d }, r));
      const ks = lens.map((T) => Float32Array.from({ length: T * d }, r));
      const vs = lens.map((T) => Float32Array.from({ length: T * d }, r));
      const outs = [8, 9].map((nH) => {
        const alloc = new BlockAllocator(32);
        const cache = be.allocKv(32, 4, 1, d, dtype);
        const s1 = new SequenceCache(alloc, 4);
        return lens.map((T, step) => {
          const q = new Float32Array(T * nH * d);
          for (let t = 0; t < T; t++) q.set(qs[step].subarray(t * 9 * d, t * 9 * d + nH * d), t * nH * d);
          const batch = packBatch([{ cache: s1, tokens: Array(T).fill(0), logits: 'all' }]);
          return be.attention(q, ks[step], vs[step], T, cache, batch, { nHeads: nH, nKv: 1, headDim: d, scale: 0.125, window: 0, sinks: Float32Array.from({ length: nH }, (_, i) => i / 4 - 1) });
        });
      });
      lens.forEach((T, step) => {
        for (let t = 0; t < T; t++) {
          assert.deepEqual(outs[0][step].subarray(t * 8 * d, (t + 1) * 8 * d), outs[1][step].subarray(t * 9 * d, t * 9 * d + 8 * d), `attention ${dtype}: token ${t} of step ${step}, 8 heads alone and beside a ninth`);
        }
      });
    }

    // an e4m3 NaN code poisons its output row only, as in the reference
    const nanW: QMatrix = { format: 'fp8', rows: 2, cols: 32, data: new Uint8Array(64).fill(0x38), scales: Float32Array.of(1), blockRows: 2, blockCols: 32 };
    nanW.data[40] = 0xff;
    const nanY = be.linear(new Float32Array(32).fill(1), 1, nanW, null);
    assert.ok(nanY[0] === 32 && Number.isNaN(nanY[1]), `fp8 NaN code: ${nanY[0]}, ${nanY[1]}`);

    // MoE over an MXFP4 bank, bf16, FP8 and NVFP4 relu² banks (Nemotron's formats)
    // (and SwiGLU over 37 pairs, with inputs that take the gates past both clamps and deep into
    // the sigmoid's tails: the AVX-512 activation's 16-wide body, its scalar tail and its exp)
    for (const [fmt, act, I, xs] of [['mxfp4', { kind: 'swiglu_oai', alpha: 1.702, limit: 7 }, 32, 1], ['bf16', { kind: 'relu2' }, 32, 1],
      ['fp8', { kind: 'relu2' }, 32, 1], ['nvfp4', { kind: 'relu2' }, 32, 1], ['bf16', { kind: 'swiglu_oai', alpha: 1.702, limit: 7 }, 37, 12]] as const) {
      const E = 5, dIn = 64, dOut = 64;
      const w1Rows = act.kind === 'swiglu_oai' ? 2 * I : I;
      // (FP8: the 16 × 16 blocks, which never straddle two experts' rows)
      const pick = (m: QMatrix[]) => m.find((q) => q.format === fmt && (q.format !== 'fp8' || q.blockRows === 16))!;
      const bank: ExpertBank = {
        numExperts: E, dIn, w1Rows, dOut,
        w1: pick(matrices(E * w1Rows, dIn)), b1: randF32(E * w1Rows),
        w2: pick(matrices(E * dOut, I)), b2: randF32(E * dOut),
        activation: act,
      };
      const T = 6, k = 2;
      const routing = { k, experts: Int32Array.from([0, 3, 3, 1, 4, 0, 2, 3, 1, 0, 4, 2]), weights: randF32(T * k) };
      const x = randF32(T * dIn, xs);
      close(be.moeExperts(x, T, routing, bank), ref.moeExperts(x, T, routing, bank), `moe ${fmt} ${act.kind} I=${I}`, 2e-5);
    }
  });
}

test('argmax: the native kernel picks what the JS loop picks (first of equals, NaN never, 0 when all are −∞, subnormals as they are)', () => {
  if (!addon?.argmax) return assert.fail('addon missing, or built without argmax');
  const loop = (x: Float32Array, off: number, n: number) => {
    let best = 0, bv = -Infinity;
    for (let i = 0; i < n; i++) if (x[off + i] > bv) { bv = x[off + i]; best = i; }
    return best;
  };
  const rows: [string, Float32Array][] = [];
  for (const n of [1, 7, 8, 9, 31, 4095, 4096, 5001, 201088]) rows.push([`random ${n}`, randF32(n, 30)]);
  const ties = randF32(9000, 1); ties[17] = 5; ties[8000] = 5; ties[3] = 5 - 1e-6;
  rows.push(['ties', ties]);
  const nan = randF32(6000, 1); nan[0] = Number.NaN; nan[100] = Number.NaN; nan[2000] = 3;
  rows.push(['NaN', nan]);
  rows.push(['all −∞', new Float32Array(5000).fill(-Infinity)]);
  const nans = new Float32Array(4100).fill(Number.NaN); nans[4099] = -Infinity;
  rows.push(['NaN and −∞', nans]);
  const zeros = new Float32Array(4500).fill(-1); zeros[33] = -0; zeros[40] = 0;
  rows.push(['−0 before +0', zeros]);
  const sub = new Float32Array(4200).fill(-1); sub[10] = 1e-45; sub[4000] = 3e-45;
  rows.push(['subnormals', sub]);
  const top = randF32(4103, 1); top[4102] = 9;
  rows.push(['the last', top]);
  for (const [what, x] of rows) {
    for (const [off, n] of [[0, x.length], [1, x.length - 1], [3, Math.max(0, x.length - 5)]]) {
      if (n <= 0) continue;
      assert.equal(addon.argmax(x, off, n), loop(x, off, n), `${what}: offset ${off}, ${n} values`);
      assert.equal(argmax(x, off, n), loop(x, off, n), `${what} through util/argmax`);
    }
  }
  assert.throws(() => addon.argmax!(new Float32Array(4), 2, 3), /argmax: offset and n must be whole and within x/);
});

test('rope: the angles a call keeps for the next follow its positions, frequencies and concentration, arrays changed in place too', () => {
  if (!addon) return assert.fail('addon missing');
  const nat: NativeBackend = new NativeBackend(addon, 2, 'auto', 'int8');
  const spec = { invFreq: Float32Array.from([1, 0.3, 0.01, 0.001]), concentration: 1.3, rotaryDim: 8 };
  const pos = Int32Array.from([0, 7, 300, 12, 5, 9, 1, 2, 3, 100]);
  const x = randF32(10 * 3 * 8);
  const check = (what: string, T = 10) => {
    const a = x.slice(0, T * 24), b = a.slice();
    nat.rope(a, T, 3, 8, pos.subarray(0, T), spec);
    ref.rope(b, T, 3, 8, pos.subarray(0, T), spec);
    close(a, b, `rope ${what}`, 1e-6);
  };
  check('first');
  check('again, the same positions');
  pos[4] = 4000;
  check('a position changed in place');
  spec.invFreq[1] = 0.5;
  check('a frequency changed in place');
  spec.concentration = 1;
  check('another concentration');
  check('fewer tokens', 6);
});

test('addInPlace: the residual add gives the reference\'s bits, short rows and long; lengths that differ are refused', () => {
  if (!addon?.addInPlace) return assert.fail('addon missing, or built without addInPlace');
  const nat: NativeBackend = new NativeBackend(addon, 2, 'auto', 'int8');
  for (const n of [5, 1023, 1024, 46081]) {
    const x = randF32(n, 100), y = randF32(n, 1e-3);
    const a = x.slice(), b = x.slice();
    nat.addInPlace(a, y);
    ref.addInPlace(b, y);
    assert.deepEqual(a, b, `${n} values`);
    assert.notDeepEqual(a, x, `${n} values: x changed`);
  }
  assert.throws(() => nat.addInPlace(new Float32Array(2000), new Float32Array(1999)), /addInPlace: x holds 2000 values and y 1999/);
  assert.throws(() => ref.addInPlace(new Float32Array(3), new Float32Array(4)), /addInPlace: x holds 3 values and y 4/);
});

test('a caller\'s out buffer: each op writes its result there, with the bits of a new one; a buffer of another size is refused', () => {
  if (!addon) return assert.fail('addon missing');
  const nat: NativeBackend = new NativeBackend(addon, 2, 'auto', 'int8');
  const H = 64, E = 3, T = 2;
  for (const be of [nat, ref]) {
    const name = be === ref ? 'reference' : 'native';
    // stale values in the buffers must not leak into the results
    const stale = (n: number) => new Float32Array(n).fill(Number.NaN);
    const x = randF32(T * H);
    const [w1, w2] = [matrices(40, H)[2], matrices(24, H)[1]];
    const check = (got: Float32Array, buf: Float32Array, fresh: Float32Array, what: string) => {
      assert.equal(got, buf, `${name} ${what}: the buffer itself comes back`);
      assert.deepEqual(got, fresh, `${name} ${what}: the bits of a new result`);
    };
    let buf = stale(T * 40);
    check(be.linear(x, T, w1, null, buf), buf, be.linear(x, T, w1, null), 'linear');
    const bufs = [stale(T * 40), stale(T * 24)];
    const many = be.linearMany(x, T, [{ w: w1 }, { w: w2 }], bufs);
    many.forEach((y, i) => check(y, bufs[i], be.linear(x, T, [w1, w2][i], null), `linearMany ${i}`));
    const g = randF32(H);
    buf = stale(T * H);
    check(be.rmsNorm(x, T, g, 1e-5, buf), buf, be.rmsNorm(x, T, g, 1e-5), 'rmsNorm');
    const bank: ExpertBank = {
      numExperts: E, dIn: H, w1Rows: 64, dOut: H, w1: matrices(E * 64, H)[2], b1: randF32(E * 64),
      w2: matrices(E * H, 32)[2], b2: randF32(E * H), activation: { kind: 'swiglu_oai', alpha: 1.702, limit: 7 },
    };
    const routing = { k: 2, experts: Int32Array.from([0, 2, 1, 2]), weights: randF32(4) };
    buf = stale(T * H);
    check(be.moeExperts(x, T, routing, bank, buf), buf, be.moeExperts(x, T, routing, bank), 'moeExperts');
    // attention: the same batch twice into caches alike, once into a stale buffer
    const att = (out?: Float32Array) => {
      const cache = be.allocKv(8, 4, 1, 32);
      const batch = packBatch([{ cache: new SequenceCache(new BlockAllocator(8), 4), tokens: [0, 0, 0], logits: 'all' }]);
      let sd = 5;
      const r = () => ((sd = (sd * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      const q = Float32Array.from({ length: 3 * 2 * 32 }, r), k = Float32Array.from({ length: 3 * 32 }, r), v = Float32Array.from({ length: 3 * 32 }, r);
      return be.attention(q, k, v, 3, cache, batch, { nHeads: 2, nKv: 1, headDim: 32, scale: 0.2, window: 0, sinks: null }, out);
    };
    buf = stale(3 * 2 * 32);
    check(att(buf), buf, att(), 'attention');
    assert.throws(() => be.linear(x, T, w1, null, new Float32Array(T * 40 + 1)), /linear: the output holds 81 values, the result 80/);
    assert.throws(() => be.rmsNorm(x, T, g, 1e-5, new Float32Array(3)), /rmsNorm: the output holds 3 values/);
  }
  // a batch's attention arrays are made once for all its layers, and made again where its
  // sequences changed since: a block table edited in place is read as it is now
  const cache = nat.allocKv(8, 4, 1, 32);
  const seq = new SequenceCache(new BlockAllocator(8), 4);
  const r = randF32(6 * 32);
  const first = packBatch([{ cache: seq, tokens: [0, 0, 0, 0, 0], logits: 'all' }]);
  const opts = { nHeads: 1, nKv: 1, headDim: 32, scale: 0.2, window: 0, sinks: null };
  nat.attention(r.subarray(0, 160), r.subarray(0, 160), r.subarray(32, 192), 5, cache, first, opts);
  const step = packBatch([{ cache: seq, tokens: [0], logits: 'all' }]);
  const q = randF32(32), k = randF32(32), v = randF32(32);
  const a = nat.attention(q, k, v, 1, cache, step, opts);
  assert.deepEqual(nat.attention(q, k, v, 1, cache, step, opts), a, 'the same batch again');
  const [b0, b1] = step.seqs[0].blockTable;
  const moved = cache.k.slice();
  // swap the sequence's two blocks in the cache and in its table: the same keys, another order of blocks
  const bs = 4 * 32;
  cache.k.set(moved.subarray(b1 * bs, (b1 + 1) * bs), b0 * bs);
  cache.k.set(moved.subarray(b0 * bs, (b0 + 1) * bs), b1 * bs);
  const vm = cache.v.slice();
  cache.v.set(vm.subarray(b1 * bs, (b1 + 1) * bs), b0 * bs);
  cache.v.set(vm.subarray(b0 * bs, (b0 + 1) * bs), b1 * bs);
  step.seqs[0].blockTable[0] = b1;
  step.seqs[0].blockTable[1] = b0;
  step.slotMapping[0] = b0 * 4 + (step.slotMapping[0] % 4);
  assert.deepEqual(nat.attention(q, k, v, 1, cache, step, opts), a, 'the edited table is read (the stale one gives other keys)');
});

test('linearMany: one job over several weights gives each linear\'s bits (f32 and q8 activations, mixed formats)', () => {
  if (!addon) return assert.fail('addon missing');
  const rows = [37, 8, 70], cols = 96;
  const int8 = (r: number): QMatrix => ({
    format: 'int8', rows: r, cols,
    data: Int8Array.from({ length: r * cols }, () => Math.round(rnd() * 127)),
    rowScale: Float32Array.from({ length: r }, () => 0.001 + Math.abs(rnd()) * 0.01),
  });
  for (const act of ['f32', 'int8'] as const) {
    const be: NativeBackend = new NativeBackend(addon, 2, 'auto', act);
    // every format of `matrices` at three heights, plus int8 (the q8 kernels' other layout)
    const ws = rows.flatMap((r) => [...matrices(r, cols), int8(r)]);
    for (const T of [1, 3, 9]) {
      const x = randF32(T * cols);
      const specs = ws.map((w, i) => ({ w, bias: i % 2 ? randF32(w.rows) : null }));
      const many: Float32Array[] = be.linearMany(x, T, specs);
      assert.equal(many.length, specs.length);
      specs.forEach(({ w, bias }, i) => assert.deepEqual(many[i], be.linear(x, T, w, bias), `${act} ${w.format} ${w.rows} rows T=${T}`));
    }
  }
  // the addon refuses weights of different input widths with a message that says so
  const x = randF32(96);
  assert.throws(() => addon.linearMany!(x, 1, [matrices(8, 96)[0], matrices(8, 64)[0]], [null, null], [new Float32Array(8), new Float32Array(8)]),
    /differ in input width/);
  assert.throws(() => addon.linearMany!(x, 1, [matrices(8, 96)[0]], [], [new Float32Array(8)]), /differ in length/);
});

test('readBandwidth: a rate from a buffer at any alignment (its vector loads are aligned ones), and 0 from one too small to split', () => {
  if (!addon) return assert.fail('addon missing');
  new NativeBackend(addon, 2, 'auto');
  const buf = new Uint8Array(64 << 20).fill(1);
  for (const view of [buf, buf.subarray(1), buf.subarray(13, buf.length - 7)]) {
    const bw = addon.readBandwidth(view, 1);
    assert.ok(Number.isFinite(bw) && bw > 1e8, `bandwidth ${bw}`);
  }
  assert.equal(addon.readBandwidth(new Uint8Array(1000), 1), 0);
});
