/**
 * FP8 (e4m3 + scales) and NVFP4 (e2m1 + e4m3 per 16 + f32 global) weights: small tensors with
 * known decoded values; linear on both backends; expert stacking; and a whole Nemotron-H
 * fixture re-stored as FP8 / NVFP4 gives the same logits as a BF16 copy of the decoded values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createBackend } from '../src/backend/index.js';
import { ReferenceBackend, decodeRow } from '../src/backend/reference.js';
import { promptLogits } from '../src/engine/runner.js';
import { readF32File } from '../src/conformance/model-fixtures.js';
import { loadModel } from '../src/models/registry.js';
import { Checkpoint } from '../src/weights/checkpoint.js';
import { f32ToBf16, fp8e4m3ToF32, E2M1_VALUES } from '../src/weights/dtypes.js';
import { expertList, loadLinear } from '../src/weights/linear-weight.js';
import type { ExpertBank } from '../src/backend/backend.js';
import { type QMatrix, weightMemory } from '../src/weights/qmatrix.js';
import { SafetensorsFile, writeSafetensors } from '../src/weights/safetensors.js';
import { maxAbs, modelFixtureDirs, tmpDir } from './helpers.js';

type T = { name: string; dtype: any; shape: number[]; data: Uint8Array };
const f32 = (vals: number[]) => new Uint8Array(new Float32Array(vals).buffer);

function ckptWith(tensors: T[]): Checkpoint {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return new Checkpoint(dir);
}

function rowsOf(m: QMatrix): number[][] {
  return Array.from({ length: m.rows }, (_, r) => {
    const out = new Float32Array(m.cols);
    decodeRow(m, r, out);
    return [...out];
  });
}

// e4m3 codes: 0x38 = 1, 0x40 = 2, 0xB8 = −1, 0x3C = 1.5, 0x01 = 2⁻⁹, 0x7E = 448, 0x00 = 0, 0x30 = 0.5
const FP8 = [0x38, 0x40, 0xb8, 0x3c, 0x01, 0x7e, 0x00, 0x30];
const FP8V = [1, 2, -1, 1.5, 2 ** -9, 448, 0, 0.5];

test('FP8 e4m3 decodes to known values with per-tensor, per-row and block scales', () => {
  const w = { name: 'w.weight', dtype: 'F8_E4M3', shape: [2, 4], data: Uint8Array.from(FP8) };
  let m = loadLinear(ckptWith([w, { name: 'w.weight_scale', dtype: 'F32', shape: [], data: f32([0.25]) }]), 'w', 2, 4);
  assert.equal(m.format, 'fp8');
  assert.deepEqual(rowsOf(m), [FP8V.slice(0, 4).map((v) => v * 0.25), FP8V.slice(4).map((v) => v * 0.25)]);
  m = loadLinear(ckptWith([w, { name: 'w.weight_scale', dtype: 'F32', shape: [2], data: f32([2, 0.5]) }]), 'w', 2, 4);
  assert.deepEqual(rowsOf(m), [FP8V.slice(0, 4).map((v) => v * 2), FP8V.slice(4).map((v) => v * 0.5)]);
  // a [1, 2] grid: blocks of 2 rows × 2 columns
  m = loadLinear(ckptWith([w, { name: 'w.weight_scale_inv', dtype: 'F32', shape: [1, 2], data: f32([4, 8]) }]), 'w', 2, 4);
  assert.deepEqual(rowsOf(m), [[4, 8, -8, 12], [2 ** -7, 448 * 4, 0, 4]]);
  assert.throws(() => loadLinear(ckptWith([w, { name: 'w.weight_scale', dtype: 'F32', shape: [3], data: f32([1, 2, 3]) }]), 'w', 2, 4),
    /w\.weight_scale has shape \[3\]/);
});

test('NVFP4 decodes e2m1 codes (low nibble first) × e4m3 block scale × global scale', () => {
  const codes = Array.from({ length: 32 }, (_, i) => (i * 7 + 3) % 16);
  const packed = new Uint8Array(16);
  for (let j = 0; j < 16; j++) packed[j] = codes[2 * j] | (codes[2 * j + 1] << 4);
  const m = loadLinear(ckptWith([
    { name: 'p.weight', dtype: 'U8', shape: [1, 16], data: packed },
    { name: 'p.weight_scale', dtype: 'F8_E4M3', shape: [1, 2], data: Uint8Array.from([0x38, 0x44]) }, // 1 and 3
    { name: 'p.weight_scale_2', dtype: 'F32', shape: [], data: f32([0.5]) },
  ]), 'p', 1, 32);
  assert.equal(m.format, 'nvfp4');
  const want = codes.map((c, i) => E2M1_VALUES[c] * (i < 16 ? 1 : 3) * 0.5);
  assert.deepEqual(rowsOf(m)[0], want);
  assert.equal(fp8e4m3ToF32(0x44), 3);
});

/** nearest e4m3 code (finite) by binary search over the sorted positive values */
const POS = Array.from({ length: 127 }, (_, b) => fp8e4m3ToF32(b));
function toE4m3(v: number): number {
  const a = Math.abs(v);
  let lo = 0, hi = 126;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POS[mid] <= a) lo = mid; else hi = mid;
  }
  const b = a - POS[lo] <= POS[hi] - a ? lo : hi;
  return b === 0 ? 0 : (v < 0 ? 0x80 : 0) | b;
}
function toE2m1(v: number): number {
  let best = 0;
  for (let c = 0; c < 8; c++) if (Math.abs(Math.abs(v) - E2M1_VALUES[c]) < Math.abs(Math.abs(v) - E2M1_VALUES[best])) best = c;
  return best === 0 ? 0 : (v < 0 ? 8 : 0) | best;
}
const bf16Values = (t: T) => Array.from(new Uint16Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)),
  (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0]);

function quantFp8(t: T): T[] {
  const v = bf16Values(t);
  const amax = Math.max(...v.map(Math.abs), 1e-30);
  const scale = 2 ** Math.ceil(Math.log2(amax / 448));
  return [
    { name: t.name, dtype: 'F8_E4M3', shape: t.shape, data: Uint8Array.from(v, (x) => toE4m3(x / scale)) },
    { name: t.name + '_scale', dtype: 'F32', shape: [], data: f32([scale]) },
  ];
}

function quantNvfp4(t: T): T[] {
  const v = bf16Values(t);
  const [rows, cols] = t.shape;
  const g = 2 ** -8;
  const packed = new Uint8Array((rows * cols) / 2);
  const scales = new Uint8Array((rows * cols) / 16);
  for (let b = 0; b < scales.length; b++) {
    const blk = v.slice(b * 16, b * 16 + 16);
    const amax = Math.max(...blk.map(Math.abs));
    scales[b] = toE4m3(amax / 6 / g) || 0x08;
    const s = fp8e4m3ToF32(scales[b]) * g;
    for (let j = 0; j < 16; j += 2) packed[(b * 16 + j) / 2] = toE2m1(blk[j] / s) | (toE2m1(blk[j + 1] / s) << 4);
  }
  return [
    { name: t.name, dtype: 'U8', shape: [rows, cols / 2], data: packed },
    { name: t.name + '_scale', dtype: 'F8_E4M3', shape: [rows, cols / 16], data: scales },
    { name: t.name + '_scale_2', dtype: 'F32', shape: [], data: f32([g]) },
    { name: t.name.replace(/weight$/, 'input_scale'), dtype: 'F32', shape: [], data: f32([1]) },
  ];
}

test('linear over FP8 and NVFP4 equals linear over the decoded matrix (reference and native), and so do experts kept one matrix each', () => {
  const rows = 6, cols = 32;
  const src: T = { name: 'x.weight', dtype: 'BF16', shape: [rows, cols],
    data: new Uint8Array(Uint16Array.from({ length: rows * cols }, (_, i) => f32ToBf16(Math.sin(i * 1.7) * (1 + (i % 5)))).buffer) };
  const x = Float32Array.from({ length: 3 * cols }, (_, i) => Math.cos(i));
  for (const q of [quantFp8, quantNvfp4]) {
    const ck = ckptWith(q(src));
    const m = loadLinear(ck, 'x', rows, cols);
    const dense: QMatrix = { format: 'f32', rows, cols, data: Float32Array.from(rowsOf(m).flat()) };
    const want = new ReferenceBackend().linear(x, 3, dense);
    for (const be of [new ReferenceBackend(), createBackend('auto')]) {
      assert.ok(maxAbs(be.linear(x, 3, m), want) < 1e-5, `${m.format} on ${be.name}`);
    }
    // two "experts" with different scales, as a per-expert list: the MoE equals the one over a
    // stacked f32 bank of the decoded weights (w1 [6, 32]; w2 [32, 6] from the transposed values)
    const big = Uint16Array.from(bf16Values(src), (v) => f32ToBf16(v * 64));
    const m2 = loadLinear(ckptWith(q({ ...src, data: new Uint8Array(big.buffer) })), 'x', rows, cols);
    const w1 = expertList([m, m2], 'experts');
    const stacked: QMatrix = { format: 'f32', rows: 2 * rows, cols, data: Float32Array.from([...rowsOf(m), ...rowsOf(m2)].flat()) };
    const w2: QMatrix = { format: 'f32', rows: 2 * cols, cols: rows, data: Float32Array.from({ length: 2 * cols * rows }, (_, i) => Math.sin(i)) };
    const bank = (w: ExpertBank['w1']): ExpertBank => ({ numExperts: 2, dIn: cols, w1Rows: rows, dOut: cols, w1: w, b1: null, w2, b2: null, activation: { kind: 'relu2' } });
    const routing = { k: 2, experts: Int32Array.from([0, 1, 1, 0, 1, 1]), weights: Float32Array.from([0.3, 0.7, 0.5, 0.5, 1, 0]) };
    const wantMoe = new ReferenceBackend().moeExperts(x, 3, routing, bank(stacked));
    for (const be of [new ReferenceBackend(), createBackend('auto')]) {
      assert.ok(maxAbs(be.moeExperts(x, 3, routing, bank(w1)), wantMoe) < 1e-4 * Math.max(...wantMoe.map(Math.abs)), `${m.format} experts on ${be.name}`);
    }
  }
});

test('experts stored one tensor each stay the mapped tensors (no copy), and must share format and shape', () => {
  const native = createBackend('auto').name.startsWith('native'); // the addon (when built) maps checkpoints
  const rows = 64, cols = 128;
  const parts: T[] = [0, 1].map((e) => ({
    name: `e${e}.weight`, dtype: 'F8_E4M3', shape: [rows, cols],
    data: Uint8Array.from({ length: rows * cols }, (_, i) => ((i * 37 + e * 11) % 0x7e) | (i % 3 ? 0 : 0x80)),
  }));
  const ck = ckptWith([...parts.flatMap((p, e) => [p, { name: `e${e}.weight_scale`, dtype: 'F32', shape: [], data: f32([e + 1]) }]),
    { name: 'b.weight', dtype: 'BF16', shape: [rows, cols], data: new Uint8Array(rows * cols * 2) }]);
  const ms = [0, 1].map((e) => loadLinear(ck, `e${e}`, rows, cols));
  const list = expertList(ms, 'experts');
  assert.equal(list[1], ms[1]);
  for (const [e, m] of list.entries()) {
    assert.ok(m.format === 'fp8');
    if (m.format !== 'fp8') continue;
    assert.deepEqual(m.data, parts[e].data);
    if (native) assert.ok(weightMemory.isMapped(m.data.buffer), 'the expert reads the mapped checkpoint');
  }
  assert.throws(() => expertList([ms[0], loadLinear(ck, 'b', rows, cols)], 'layer 3 experts'), /layer 3 experts: experts are stored in different formats or shapes/);
  ck.close();
});

/** bounds on the relative (Frobenius) quantisation error of a weight (a wrong scale or nibble order is ≈ 1) */
const QUANT_NOISE = { FP8: 0.05, NVFP4: 0.2 };
const MOE = modelFixtureDirs('nemotron-h').find((d) => /E/.test(JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')).hybrid_override_pattern));

for (const [label, q] of [['FP8', quantFp8], ['NVFP4', quantNvfp4]] as const) {
  test(`a Nemotron-H checkpoint stored as ${label} gives the logits of a BF16 copy of its decoded weights`, (t) => {
    assert.ok(MOE);
    const f = new SafetensorsFile(path.join(MOE!, 'model.safetensors'));
    const ts: T[] = [...f.tensors.keys()].map((n) => f.read(n));
    f.close();
    const isLinear = (t: T) => t.dtype === 'BF16' && t.shape.length === 2 && t.name.endsWith('_proj.weight') && t.shape[1] % 16 === 0;
    const quant = ts.flatMap((t) => (isLinear(t) ? q(t) : [t]));
    assert.ok(quant.length > ts.length, 'some linears were quantised');
    const qdir = tmpDir();
    fs.copyFileSync(path.join(MOE!, 'config.json'), path.join(qdir, 'config.json'));
    writeSafetensors(path.join(qdir, 'model.safetensors'), quant);
    // the twin: every quantised linear decoded and stored as bf16 (exact for these scales)
    const ck = new Checkpoint(qdir);
    const twin = ts.map((t) => {
      if (!isLinear(t)) return t;
      const m = loadLinear(ck, t.name.replace(/\.weight$/, ''), t.shape[0], t.shape[1]);
      const vals = rowsOf(m).flat();
      // the decoded weights are the originals up to quantisation noise
      const orig = bf16Values(t);
      let num = 0, den = 0;
      vals.forEach((v, i) => { num += (v - orig[i]) ** 2; den += orig[i] ** 2; });
      assert.ok(Math.sqrt(num / den) < QUANT_NOISE[label], `${t.name}: relative error ${Math.sqrt(num / den)}`);
      const h = Uint16Array.from(vals, f32ToBf16);
      vals.forEach((v, i) => assert.equal(new Float32Array(new Uint32Array([h[i] << 16]).buffer)[0], v));
      return { ...t, data: new Uint8Array(h.buffer) };
    });
    ck.close();
    const tdir = tmpDir();
    fs.copyFileSync(path.join(MOE!, 'config.json'), path.join(tdir, 'config.json'));
    writeSafetensors(path.join(tdir, 'model.safetensors'), twin);
    const c = JSON.parse(fs.readFileSync(path.join(MOE!, 'expected.json'), 'utf8')).cases[1];
    const ids = c.input_ids;
    for (const be of ['reference', 'native']) {
      const a = promptLogits(loadModel(qdir, createBackend(be)), ids);
      const b = promptLogits(loadModel(tdir, createBackend(be)), ids);
      assert.ok(maxAbs(a, b) < 1e-5, `${be}: ${maxAbs(a, b)}`);
      t.diagnostic(`${label} ${be}: max |quantised − bf16 fixture logits| = ${maxAbs(a, readF32File(path.join(MOE!, c.logits.file))).toFixed(3)} (quantisation noise, informative)`);
    }
  });
}
