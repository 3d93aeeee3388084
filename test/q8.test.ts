/**
 * q8 activations (`--activations int8`): MXFP4, NVFP4 and int8 weights against int8-quantised
 * activations with integer dot products. Checked per ISA against an oracle written here that
 * does the same arithmetic (quantisation per 32 inputs, exact integer block sums), for batch
 * invariance, and against the exact f32 result within the quantisation error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeBackend, loadAddon } from '../src/backend/native.js';
import { ReferenceBackend, decodeRow } from '../src/backend/reference.js';
import type { ExpertBank } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { int8Rows16Offset, requantizeInt8, weightMemory, type QMatrix } from '../src/weights/qmatrix.js';
import { tmpDir, NATIVE_ISAS, nativeOn, modelFixtureDirs } from './helpers.js';
import { loadModel } from '../src/models/registry.js';
import { packBatch } from '../src/engine/batch.js';
import { InputError } from '../src/util/errors.js';
import { repackExperts, REPACK_HEADROOM_BYTES } from '../src/models/model.js';
import { checkRepackExperts } from '../src/cli/args.js';

const addon = loadAddon();
const ref = new ReferenceBackend();
let seed = 777;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const randF32 = (n: number, s = 1) => Float32Array.from({ length: n }, () => rnd() * s);
const f = Math.fround;

function mxfp4(rows: number, cols: number): QMatrix {
  return {
    format: 'mxfp4', rows, cols,
    blocks: Uint8Array.from({ length: rows * cols / 2 }, () => Math.floor((rnd() + 1) * 128) & 255),
    scales: Uint8Array.from({ length: rows * cols / 32 }, () => 118 + Math.floor((rnd() + 1) * 5)),
  };
}

function nvfp4(rows: number, cols: number, subnormal = false): QMatrix {
  return {
    format: 'nvfp4', rows, cols,
    packed: Uint8Array.from({ length: rows * cols / 2 }, () => Math.floor((rnd() + 1) * 128) & 255),
    // e4m3 block scales from 2^-2 to 2^1 with random mantissas (or subnormal, zero and negative
    // ones), a global scale per row
    scales: Uint8Array.from({ length: rows * cols / 16 }, () => {
      const b = Math.floor((rnd() + 1) * 128);
      return subnormal ? (b & 0x87) : 0x28 + (b & 31);
    }),
    rowScale2: Float32Array.from({ length: rows }, () => f(0.01 + Math.abs(rnd()) * 0.01)),
  };
}

function int8(rows: number, cols: number): QMatrix {
  return {
    format: 'int8', rows, cols,
    data: Int8Array.from({ length: rows * cols }, () => Math.round(rnd() * 127)),
    rowScale: Float32Array.from({ length: rows }, () => f(0.001 + Math.abs(rnd()) * 0.01)),
  };
}

/** round half to even, as nearbyint */
function rne(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * the q8 oracle: per 32-input block, q = rne(x / (amax/127)) in f32, block sums exact; `bound`
 * is the worst-case quantisation error of each output, Σ |w| · d / 2
 */
function q8Linear(x: Float32Array, T: number, w: QMatrix): { y: Float64Array; bound: Float64Array } {
  const { rows, cols } = w;
  const y = new Float64Array(T * rows);
  const bound = new Float64Array(T * rows);
  const wrow = new Float32Array(cols);
  for (let t = 0; t < T; t++) {
    const q = new Int32Array(cols);
    const d = new Float64Array(Math.ceil(cols / 32));
    for (let b = 0; b * 32 < cols; b++) {
      let amax = 0;
      for (let j = b * 32; j < Math.min(cols, b * 32 + 32); j++) amax = Math.max(amax, Math.abs(x[t * cols + j]));
      const db = f(amax / 127);
      const id = db > 0 ? f(1 / db) : 0;
      d[b] = db;
      for (let j = b * 32; j < Math.min(cols, b * 32 + 32); j++) q[j] = Math.max(-127, Math.min(127, rne(f(x[t * cols + j] * id))));
    }
    for (let r = 0; r < rows; r++) {
      decodeRow(w, r, wrow);
      let acc = 0;
      let err = 0;
      for (let b = 0; b * 32 < cols; b++) {
        // the block's weights are exact in f64: e2m1·2^k or int8·rowScale
        let s = 0;
        let sa = 0;
        for (let j = b * 32; j < Math.min(cols, b * 32 + 32); j++) {
          s += wrow[j] * q[j];
          sa += Math.abs(wrow[j]);
        }
        acc += s * d[b];
        err += sa * d[b] / 2;
      }
      y[t * rows + r] = acc;
      bound[t * rows + r] = err;
    }
  }
  return { y, bound };
}

function scaleOf(v: ArrayLike<number>): number {
  let m = 1e-6;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

/** k = 2 picks per token: every token's first is expert `e`, its second cycles through `others` */
function busyExpert(T: number, e: number, others: number[]): Int32Array {
  return Int32Array.from({ length: T * 2 }, (_, i) => (i % 2 === 0 ? e : others[(i >> 1) % others.length]));
}

/**
 * The expert MLP with both matmuls on q8 activations: within the quantisation error of the exact
 * result, and each token of `alone` run by itself gives the bits it got in the batch.
 */
function checkMoe(be: NativeBackend, bank: ExpertBank, label: string, T: number, experts: Int32Array, alone: number[]): void {
  const k = experts.length / T;
  const routing = { k, experts, weights: randF32(T * k) };
  const { dIn, dOut } = bank;
  const x = randF32(T * dIn);
  const got = be.moeExperts(x, T, routing, bank);
  const exact = ref.moeExperts(x, T, routing, bank);
  const sc = scaleOf(exact);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - exact[i]) <= 0.03 * sc, `${label} moe [${i}]: ${got[i]} vs ${exact[i]}`);
  for (const j of alone) {
    const one = be.moeExperts(x.slice(j * dIn, (j + 1) * dIn), 1, { k, experts: experts.slice(j * k, (j + 1) * k), weights: routing.weights.slice(j * k, (j + 1) * k) }, bank);
    assert.deepEqual(one, got.slice(j * dOut, (j + 1) * dOut), `${label} moe: token ${j} alone is bit-identical to it beside ${T - 1} others`);
  }
}

for (const isa of NATIVE_ISAS) {
  test(`q8 activations on ${isa}: integer arithmetic as the oracle, batch invariant, near f32`, (t) => {
    const be = nativeOn(t, isa, 'int8');
    if (!be) return;
    // odd shapes: group tails (MXFP4 groups of 4 blocks, int8 groups of 64 inputs), one block
    const shapes: [string, number, number][] = [
      ['mxfp4', 37, 32], ['mxfp4', 9, 96], ['mxfp4', 70, 160], ['mxfp4', 5, 2880],
      // tasks of 160 rows (10 sets of 16 for VNNI), passes of 8 tokens over each
      ['mxfp4', 1040, 64],
      ['int8', 37, 45], ['int8', 33, 64], ['int8', 7, 200], ['int8', 3, 2880],
      // NVFP4: two scales per 32-block; 1856 inputs (Nemotron 3 Nano's experts) end on half a group
      ['nvfp4', 37, 32], ['nvfp4', 9, 96], ['nvfp4', 70, 160], ['nvfp4', 11, 1856], ['nvfp4-subnormal', 24, 256],
    ];
    for (const [fmt, rows, cols] of shapes) {
      const w = fmt === 'mxfp4' ? mxfp4(rows, cols) : fmt.startsWith('nvfp4') ? nvfp4(rows, cols, fmt === 'nvfp4-subnormal') : int8(rows, cols);
      // T ≥ 8 takes the token-lane kernels where the ISA has them (MXFP4): the same bits
      for (const T of [1, 2, 3, 5, 6, 9, 37, 70]) {
        const x = randF32(T * cols, 2);
        const bias = randF32(rows);
        const got = be.linear(x, T, w, bias);
        const { y: want, bound } = q8Linear(x, T, w);
        const exact = ref.linear(x, T, w, bias);
        const sc = scaleOf(want);
        for (let i = 0; i < got.length; i++) {
          const r = i % rows;
          assert.ok(Math.abs(got[i] - bias[r] - want[i]) <= 2e-5 * sc, `${fmt} ${rows}x${cols} T=${T} [${i}]: ${got[i] - bias[r]} vs oracle ${want[i]}`);
          // and the f32 result lies within the worst-case quantisation error
          assert.ok(Math.abs(got[i] - exact[i]) <= bound[i] + 1e-4 * sc, `${fmt} ${rows}x${cols} near f32 [${i}]: ${got[i]} vs ${exact[i]} (bound ${bound[i]})`);
        }
      }
      // every tile shape (4, 3, 2 and 1 tokens a pass; rows in 4s, 2s and one by one) gives a
      // token the bits it gets alone
      for (const [T, ks] of [[19, [0, 5, 8, 16, 18]], [6, [1, 4, 5]], [3, [0, 2]], [2, [1]]] as const) {
        const x = randF32(T * cols);
        const all = be.linear(x, T, w, null);
        for (const k of ks) {
          assert.deepEqual(be.linear(x.slice(k * cols, (k + 1) * cols), 1, w, null), all.slice(k * rows, (k + 1) * rows), `${fmt} ${rows}x${cols} token ${k} of ${T} bit-identical`);
        }
      }
    }
    // NVFP4 with an odd number of 16-input blocks keeps exact f32 activations
    {
      const w = nvfp4(13, 48), x = randF32(3 * 48);
      assert.deepEqual(be.linear(x, 3, w, null), createBackend('native').linear(x, 3, w, null), 'nvfp4 48 inputs: the f32 kernels');
    }
    // Nemotron's relu² experts in NVFP4, then gpt-oss's gated MXFP4 ones: spread over the experts,
    // and one busy expert (the token-lane kernels where the ISA has them: from 16 tokens for NVFP4)
    {
      const E = 4, dIn = 96, I = 64;
      const bank: ExpertBank = { numExperts: E, dIn, w1Rows: I, dOut: dIn, w1: nvfp4(E * I, dIn), b1: null, w2: nvfp4(E * dIn, I), b2: null, activation: { kind: 'relu2' } };
      checkMoe(be, bank, 'nvfp4', 6, Int32Array.from([0, 3, 3, 1, 2, 0, 1, 3, 2, 0, 1, 2]), [4]);
      checkMoe(be, bank, 'nvfp4 busy', 17, busyExpert(17, 1, [0, 2, 3]), [0, 6, 16]);
    }
    const E = 4, dIn = 96, I = 64, dOut = 96;
    const bank: ExpertBank = {
      numExperts: E, dIn, w1Rows: 2 * I, dOut,
      w1: mxfp4(E * 2 * I, dIn), b1: randF32(E * 2 * I, 0.1),
      w2: mxfp4(E * dOut, I), b2: randF32(E * dOut, 0.1),
      activation: { kind: 'swiglu_oai', alpha: 1.702, limit: 7 },
    };
    checkMoe(be, bank, 'mxfp4', 5, Int32Array.from([0, 3, 3, 1, 2, 0, 1, 3, 2, 0]), [2]);
    checkMoe(be, bank, 'mxfp4 busy', 13, busyExpert(13, 2, [0, 1, 3]), [0, 7, 12]);
  });
}

for (const isa of NATIVE_ISAS) {
  test(`oct-ordered MXFP4 scales on ${isa} (prepareExperts) change no bit: linear at any token count, and the MoE`, (t) => {
    const be = nativeOn(t, isa, 'int8');
    if (!be) return;
    // 1 to 7 blocks (the one-token kernel's pairs, a last pair, a last single block) and 2880
    // inputs; rows in whole sets of 8 (a copy is made only then) and not (none is made)
    for (const [rows, cols] of [[8, 32], [16, 64], [24, 96], [40, 160], [8, 192], [16, 224], [24, 2880], [12, 96]]) {
      const w = mxfp4(rows, cols);
      const bank: ExpertBank = { numExperts: 1, dIn: cols, w1Rows: rows, dOut: rows, w1: w, b1: null, w2: w, b2: null, activation: { kind: 'relu2' } };
      const oct = be.prepareExperts(bank).w1 as QMatrix;
      // a copy for the kernels that read it (AVX2's), where rows are sets of 8; none for the others
      const reads = addon!.usesOctScales!();
      assert.equal(reads, isa === 'avx2' || isa === 'avx512', `${isa}: the kernels that read the copy`);
      assert.equal(oct.format === 'mxfp4' && oct.scalesOct !== undefined, reads && rows % 8 === 0, `${rows}x${cols}: a copy where the kernels read it and rows are sets of 8`);
      if (oct.format === 'mxfp4' && oct.scalesOct && w.format === 'mxfp4') {
        assert.equal(oct.scalesOct.length, rows * cols / 32);
        // row r's block b at (r/8)·8·G + 8b + r%8
        const G = cols / 32, r = rows - 3, b = G - 1;
        assert.equal(oct.scalesOct[Math.floor(r / 8) * 8 * G + 8 * b + (r % 8)], w.scales[r * G + b]);
      }
      for (const T of [1, 2, 3, 5, 9, 37]) {
        const x = randF32(T * cols, 2), bias = randF32(rows);
        assert.deepEqual(be.linear(x, T, oct, bias), be.linear(x, T, w, bias), `${rows}x${cols} T=${T}: the same bits with the oct copy`);
      }
    }
    // gpt-oss's gated experts, one token and a busy expert, sliced per expert from the stacked bank
    const E = 4, dIn = 96, I = 64;
    const bank: ExpertBank = {
      numExperts: E, dIn, w1Rows: 2 * I, dOut: dIn,
      w1: mxfp4(E * 2 * I, dIn), b1: randF32(E * 2 * I, 0.1), w2: mxfp4(E * dIn, I), b2: randF32(E * dIn, 0.1),
      activation: { kind: 'swiglu_oai', alpha: 1.702, limit: 7 },
    };
    // no tokens at all: an empty result (an integer division by the pair count once crashed here)
    assert.equal(be.moeExperts(new Float32Array(0), 0, { k: 2, experts: new Int32Array(0), weights: new Float32Array(0) }, bank).length, 0);
    const prepared = be.prepareExperts(bank);
    for (const [T, experts] of [[1, Int32Array.of(3, 1)], [13, busyExpert(13, 2, [0, 1, 3])]] as const) {
      const routing = { k: 2, experts, weights: randF32(T * 2) };
      const x = randF32(T * dIn);
      assert.deepEqual(be.moeExperts(x, T, routing, prepared), be.moeExperts(x, T, routing, bank), `moe T=${T}: the same bits with the oct copy`);
    }
  });
}

for (const isa of NATIVE_ISAS) {
  test(`16-row MXFP4 layout on ${isa} (prepareExperts): made where the kernels read it, the same bits at any token count`, (t) => {
    const be = nativeOn(t, isa, 'int8');
    if (!be) return;
    const reads = addon!.usesRows16!();
    assert.equal(reads, isa === 'avx512vnni' || isa === 'amx', `${isa}: the kernels that read the 16-row layout`);
    // 1 to 9 blocks and 2880 inputs; rows in whole sets of 16 (a copy is made only then) and not
    for (const [rows, cols] of [[16, 32], [32, 64], [48, 288], [16, 2880], [24, 96], [40, 160], [1040, 64]]) {
      const w = mxfp4(rows, cols);
      const bank: ExpertBank = { numExperts: 1, dIn: cols, w1Rows: rows, dOut: rows, w1: w, b1: null, w2: w, b2: null, activation: { kind: 'relu2' } };
      const p = be.prepareExperts(bank, { repack: true }).w1 as QMatrix;
      assert.equal(p.format === 'mxfp4' && p.rows16 !== undefined, reads && rows % 16 === 0, `${rows}x${cols}: a 16-row copy where the kernels read it and rows are sets of 16`);
      // only where a whole second copy is allowed (--repack-experts)
      assert.ok(!(be.prepareExperts(bank).w1 as { rows16?: Uint8Array }).rows16, 'no copy unless asked for');
      if (p.format === 'mxfp4' && p.rows16 && p.scales16 && w.format === 'mxfp4') {
        // every byte where kernels.h puts it: row 16s+i's block b, bytes 4c..4c+3 at (s·G + b)·256 + 64c + 4i
        const G = cols / 32;
        for (let r = 0; r < rows; r++)
          for (let b = 0; b < G; b++) {
            const s16 = Math.floor(r / 16), i = r % 16;
            for (let j = 0; j < 16; j++) {
              const at = (s16 * G + b) * 256 + 64 * Math.floor(j / 4) + 4 * i + (j % 4);
              if (p.rows16[at] !== w.blocks[(r * G + b) * 16 + j]) assert.fail(`${rows}x${cols}: row ${r} block ${b} byte ${j}`);
            }
            assert.equal(p.scales16[(s16 * G + b) * 16 + i], w.scales[r * G + b]);
          }
      }
      for (const T of [1, 2, 3, 7, 8, 9, 17, 40]) {
        const x = randF32(T * cols, 2), bias = randF32(rows);
        assert.deepEqual(be.linear(x, T, p, bias), be.linear(x, T, w, bias), `${rows}x${cols} T=${T}: the same bits with the 16-row copy`);
      }
    }
    // gpt-oss's gated experts sliced per expert from the stacked bank: one token, a busy expert
    const E = 4, dIn = 96, I = 64;
    const bank: ExpertBank = {
      numExperts: E, dIn, w1Rows: 2 * I, dOut: dIn,
      w1: mxfp4(E * 2 * I, dIn), b1: randF32(E * 2 * I, 0.1), w2: mxfp4(E * dIn, I), b2: randF32(E * dIn, 0.1),
      activation: { kind: 'swiglu_oai', alpha: 1.702, limit: 7 },
    };
    const prepared = be.prepareExperts(bank, { repack: true });
    for (const [T, experts] of [[1, Int32Array.of(3, 1)], [13, busyExpert(13, 2, [0, 1, 3])]] as const) {
      const routing = { k: 2, experts, weights: randF32(T * 2) };
      const x = randF32(T * dIn);
      assert.deepEqual(be.moeExperts(x, T, routing, prepared), be.moeExperts(x, T, routing, bank), `moe T=${T}: the same bits with the 16-row copy`);
    }
  });
}

for (const isa of NATIVE_ISAS) {
  test(`int8 rows16 layout on ${isa} (prepareMatrix): rearranged in place where the kernels read it, the oracle's sums, batch invariant`, (t) => {
    const be = nativeOn(t, isa, 'int8');
    if (!be) return;
    const reads = addon!.usesRows16!();
    // (48 and 272 rows: an odd last set beside the pairs the kernels take from 6 tokens; 272: blocks
    // of 256 rows and a part one beyond 16 tokens; 2048 inputs: a token's q8 record padded by a group)
    for (const [rows, cols] of [[16, 32], [48, 96], [32, 2880], [37, 64], [16, 45], [272, 64], [32, 2048]]) {
      const w = int8(rows, cols);
      const orig = w.format === 'int8' ? w.data.slice() : new Int8Array(0);
      const p = be.prepareMatrix(w);
      const made = reads && rows % 16 === 0 && cols % 32 === 0;
      assert.equal(p.format === 'int8' && p.layout === 'rows16', made, `${rows}x${cols}: rearranged only where the kernels read it, in whole sets`);
      if (!(p.format === 'int8' && p.layout === 'rows16')) {
        // a matrix in the layout is refused by kernels that do not read it
        if (!reads && rows % 16 === 0 && cols % 32 === 0 && w.format === 'int8') {
          assert.throws(() => be.linear(randF32(cols), 1, { ...w, layout: 'rows16' }), /rows16 layout need q8 activations on the AVX-512 VNNI kernels/);
        }
        continue;
      }
      assert.equal(p.data, (w as { data: Int8Array }).data, 'in place: the same memory');
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) if (p.data[int8Rows16Offset(r, c, cols)] !== orig[r * cols + c]) assert.fail(`${rows}x${cols}: row ${r} input ${c}`);
      // the reference backend reads the layout too
      const x1 = randF32(2 * cols);
      assert.deepEqual(ref.linear(x1, 2, p), ref.linear(x1, 2, { format: 'int8', rows, cols, data: orig, rowScale: p.rowScale }));
      // (AMX: tiles for each whole 16 tokens, VNNI for the rest)
      for (const T of [1, 2, 3, 5, 7, 8, 9, 16, 17, 33]) {
        const x = randF32(T * cols, 2), bias = randF32(rows);
        const got = be.linear(x, T, p, bias);
        const { y: want } = q8Linear(x, T, p);
        const sc = scaleOf(want);
        for (let i = 0; i < got.length; i++) {
          assert.ok(Math.abs(got[i] - bias[i % rows] - want[i]) <= 2e-5 * sc, `${rows}x${cols} T=${T} [${i}]: ${got[i] - bias[i % rows]} vs oracle ${want[i]}`);
        }
        for (const k of [0, T - 1]) {
          assert.deepEqual(be.linear(x.slice(k * cols, (k + 1) * cols), 1, p, bias), got.slice(k * rows, (k + 1) * rows), `${rows}x${cols} token ${k} of ${T} bit-identical`);
        }
      }
      // kernels that do not read the layout refuse it
      const f32 = nativeOn(t, isa, 'f32')!;
      assert.throws(() => f32.linear(randF32(cols), 1, p), /rows16 layout need q8 activations/);
      nativeOn(t, isa, 'int8');
    }
  });
}

test('MXFP4 with q8 activations: every ISA gives the same bits (one block-by-block arithmetic)', (t) => {
  const cases = [[37, 96], [48, 2880], [70, 160]].flatMap(([rows, cols]) => {
    const w = mxfp4(rows, cols);
    return [1, 3, 9, 37].map((T) => ({ w, T, x: randF32(T * cols, 2), bias: randF32(rows) }));
  });
  // the kernel table is the process's: each ISA's backend runs its cases before the next is made
  const results = new Map<string, Float32Array[]>();
  for (const isa of NATIVE_ISAS) {
    const be = nativeOn(t, isa, 'int8');
    if (be) results.set(isa, cases.map((c) => be.linear(c.x, c.T, c.w, c.bias)));
  }
  assert.ok(results.size >= 2, 'at least two ISAs here');
  const [first, want] = [...results][0];
  for (const [isa, got] of results)
    cases.forEach((c, i) => assert.deepEqual(got[i], want[i], `${c.w.rows}x${c.w.cols} T=${c.T}: ${isa} as ${first}`));
});

// AVX2's kernels read the oct-ordered scales (every x86-64 machine here has AVX2); AVX-512
// VNNI's the 16-row layout, made from the mapped checkpoint, whose pages then leave the process
for (const [isa, layout] of [['avx2', 'scalesOct'], ['avx512vnni', 'rows16'], ['amx', 'rows16']] as const) {
  test(`a gpt-oss checkpoint loaded with q8 activations on ${isa} gets its experts' ${layout}, and its logits keep their bits`, { skip: !addon?.octScales && 'addon not built' }, (t) => {
    const dir = modelFixtureDirs('gpt-oss')[0];
    assert.ok(dir, 'a gpt-oss fixture');
    const prepared = nativeOn(t, isa, 'int8');
    const plain = nativeOn(t, isa, 'int8');
    if (!prepared || !plain) return;
    plain.prepareExperts = (bank: ExpertBank) => bank;
    // (a copy in memory: no prepared store)
    const a = loadModel(dir, prepared, { repackExperts: 'on', preparedDir: null }), b = loadModel(dir, plain);
    if (layout === 'rows16') assert.equal(prepared.preparedBytesWritten + prepared.preparedBytesMapped, 0);
    const bankOf = (m: object) => (m as unknown as { layers: { experts: ExpertBank }[] }).layers[0].experts;
    const w1 = bankOf(a).w1 as QMatrix;
    assert.ok(w1.format === 'mxfp4' && w1[layout], 'the loader asked the backend to prepare the experts');
    assert.ok(!(bankOf(b).w1 as { scalesOct?: Uint8Array; rows16?: Uint8Array })[layout]);
    // a prefill of 9 tokens (token-lane kernels where experts get 8 or more), then single steps
    const ids = [5, 17, 42, 99, 3, 250, 7, 64, 128];
    const ca = a.createCache({ numBlocks: 8, blockSize: 16 }), cb = b.createCache({ numBlocks: 8, blockSize: 16 });
    const sa = ca.newSequence(), sb = cb.newSequence();
    assert.deepEqual(a.forward(packBatch([{ cache: sa, tokens: ids, logits: 'all' }]), ca), b.forward(packBatch([{ cache: sb, tokens: ids, logits: 'all' }]), cb));
    for (const tok of [11, 300, 2]) {
      assert.deepEqual(a.forward(packBatch([{ cache: sa, tokens: [tok], logits: 'last' }]), ca), b.forward(packBatch([{ cache: sb, tokens: [tok], logits: 'last' }]), cb), `step ${tok}`);
    }
  });
}

test('a gpt-oss checkpoint with int8 dense weights and q8 activations on avx512vnni: its projections rearranged in place, logits within q8\'s error', (t) => {
  const dir = modelFixtureDirs('gpt-oss')[0];
  const prepared = nativeOn(t, 'avx512vnni', 'int8'), plain = nativeOn(t, 'avx512vnni', 'int8');
  if (!prepared || !plain) return;
  plain.prepareMatrix = (m: QMatrix) => m;
  const f32 = nativeOn(t, 'avx512vnni', 'f32')!;
  const a = loadModel(dir, prepared, { denseWeights: 'int8', preparedDir: null }), b = loadModel(dir, plain, { denseWeights: 'int8', preparedDir: null });
  const e = loadModel(dir, f32, { denseWeights: 'int8' });
  const wq = (m: object) => (m as unknown as { layers: { wq: QMatrix }[] }).layers[0].wq;
  assert.ok(wq(a).format === 'int8' && (wq(a) as { layout?: string }).layout === 'rows16', 'the loader asked the backend to prepare the projections');
  assert.ok(!(wq(b) as { layout?: string }).layout);
  const ids = [5, 17, 42, 99, 3, 250, 7, 64, 128];
  const run = (m: ReturnType<typeof loadModel>) => {
    const c = m.createCache({ numBlocks: 8, blockSize: 16 });
    return m.forward(packBatch([{ cache: c.newSequence(), tokens: ids, logits: 'all' }]), c);
  };
  const la = run(a), lb = run(b), le = run(e);
  const dist = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    let d = 0;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
    return d;
  };
  // the same integer sums added in another order: a quantised activation may round the other way
  // downstream (and a router pick with it), so the yardstick is q8's own distance from f32
  const q8err = dist(lb, le);
  assert.ok(q8err > 0, 'q8 activations are not exact');
  assert.ok(dist(la, lb) <= q8err, `rearranged vs as made: ${dist(la, lb)} (q8 vs f32: ${q8err})`);
  assert.ok(dist(la, le) <= 1.5 * q8err, `rearranged vs f32: ${dist(la, le)} (q8 vs f32: ${q8err})`);
});

test('--repack-experts: on and off as given; auto only where memory holds the checkpoint, the copy and the headroom', () => {
  const GB = 2 ** 30;
  assert.equal(repackExperts('on', 14 * GB, 10 * GB, 8 * GB), true);
  assert.equal(repackExperts('off', 1, 1, 1024 * GB), false);
  // gpt-oss-20b (13.8 GB, 10.1 GB of experts) on a 24 GB machine: no; on 32 GB: yes
  assert.equal(repackExperts('auto', 13.8e9, 10.1e9, 24 * GB), false);
  assert.equal(repackExperts(undefined, 13.8e9, 10.1e9, 32 * GB), true);
  assert.equal(repackExperts('auto', 10 * GB, 6 * GB, 16 * GB + REPACK_HEADROOM_BYTES - 1), false);
  assert.equal(repackExperts('auto', 10 * GB, 6 * GB, 16 * GB + REPACK_HEADROOM_BYTES), true);
  assert.throws(() => checkRepackExperts('yes'), /--repack-experts: expected auto, on or off, got "yes"/);
  assert.equal(checkRepackExperts(undefined), 'auto');
});

test('q8 is opt-in: the default backend stays exact; int8 activations need the native backend', () => {
  if (!addon) return;
  const exact = createBackend('native');
  const q8 = createBackend('native', { activations: 'int8' });
  assert.ok(!exact.name.endsWith('-q8') && q8.name.endsWith('-q8'));
  const w = mxfp4(8, 64);
  const x = randF32(64);
  const a = exact.linear(x, 1, w);
  const b = ref.linear(x, 1, w);
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * scaleOf(b));
  assert.throws(() => createBackend('reference', { activations: 'int8' }), InputError);
  assert.throws(() => createBackend('native', { activations: 'int4' as 'int8' }), /--activations/);
});

test('int8 re-quantisation at load: the native loop gives the JS loop\'s bytes (ties round up) and its pages can be dropped', { skip: !addon?.requantizeInt8 && 'addon not built' }, () => {
  // bf16 rows whose absmax is 127 (scale 1) hold exact ±x.5 ties; others are random
  const rows = 70, cols = 67;
  const bf = new Uint16Array(rows * cols);
  const f32 = new Float32Array(1);
  const u16 = new Uint16Array(f32.buffer);
  for (let i = 0; i < bf.length; i++) {
    const r = Math.floor(i / cols), c = i % cols;
    f32[0] = r % 2 === 0 ? (c === 0 ? 127 : ((c % 9) - 4) + (c % 2 ? 0.5 : 0)) : rnd() * 3;
    bf[i] = u16[1];
  }
  // the JS loop's and the native loop's results for one matrix, which must be the same bytes
  const bothLoops = (m: QMatrix) => {
    const saved = weightMemory.requantizeInt8;
    weightMemory.requantizeInt8 = null;
    const js = requantizeInt8(m, decodeRow);
    weightMemory.requantizeInt8 = saved;
    const native = requantizeInt8(m, decodeRow);
    assert.ok(js.format === 'int8' && native.format === 'int8');
    assert.deepEqual(native.data, js.data);
    assert.deepEqual(native.rowScale, js.rowScale);
    return js;
  };
  const js = bothLoops({ format: 'bf16', rows, cols, data: bf });
  assert.ok(js.format === 'int8');
  assert.equal(js.data[1], -2, 'the -2.5 tie rounds up, as Math.round');
  // f32 sources, and rows long enough for the vector loops with a tail (16 values a step)
  bothLoops({ format: 'f32', rows: 5, cols: 2887, data: Float32Array.from({ length: 5 * 2887 }, (_, i) => (i % 97 === 0 ? 0.5 * ((i % 13) - 6) : rnd() * 0.02)) });
  // a mapped source: dropping its pages keeps the data (it faults back in from the file)
  const dir = tmpDir();
  const file = path.join(dir, 'w.bin');
  fs.writeFileSync(file, new Uint8Array(bf.buffer));
  const mapped = new Uint16Array(addon!.mapFile(file));
  addon!.requantizeInt8!(mapped, rows, cols, new Int8Array(rows * cols), new Float32Array(rows), true);
  assert.deepEqual(mapped, bf);
});
