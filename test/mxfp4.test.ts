import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRow } from '../src/backend/reference.js';
import { E2M1_VALUES, e8m0ToF32, bf16ToF32, f32ToBf16, fp8e4m3ToF32 } from '../src/weights/dtypes.js';
import { QMatrix } from '../src/weights/qmatrix.js';

const mx = (blocks: number[], scales: number[], rows = 1): QMatrix => ({
  format: 'mxfp4', rows, cols: (scales.length / rows) * 32, blocks: Uint8Array.from(blocks), scales: Uint8Array.from(scales),
});

test('e2m1 table: all 16 codes', () => {
  assert.deepEqual([...E2M1_VALUES], [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]);
  assert.ok(Object.is(E2M1_VALUES[8], -0));
});

test('mxfp4: every code in both nibbles, low nibble first', () => {
  // byte j = code j in the low nibble and code 15-j in the high nibble
  const blocks = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
  const out = new Float32Array(32);
  decodeRow(mx(blocks, [127]), 0, out);
  for (let j = 0; j < 16; j++) {
    assert.equal(out[2 * j], E2M1_VALUES[j], `element ${2 * j}`);
    assert.equal(out[2 * j + 1], E2M1_VALUES[15 - j], `element ${2 * j + 1}`);
  }
});

test('mxfp4: E8M0 scale extremes and per-block scales', () => {
  // group 0 and 2: low code 2 (=1.0), high code 7 (=6); group 1: low 2 (=1.0), high 1 (=0.5)
  const blocks = [...Array(16).fill(0x72), ...Array(16).fill(0x12), ...Array(16).fill(0x72)];
  const out = new Float32Array(96);
  decodeRow(mx(blocks, [0, 254, 120]), 0, out);
  assert.equal(out[0], 2 ** -127);
  assert.equal(out[1], 6 * 2 ** -127);
  assert.equal(out[32], 2 ** 127);
  assert.equal(out[33], 2 ** 126);
  assert.equal(out[64], 2 ** -7);
  assert.equal(e8m0ToF32(127), 1);
  assert.equal(e8m0ToF32(255), 2 ** 128); // ldexp semantics, as the reference
});

test('mxfp4: rows are independent (row stride = groups·16 bytes)', () => {
  const r0 = Array(16).fill(0x11); // 0.5, 0.5
  const r1 = Array(16).fill(0x99); // -0.5, -0.5
  const m = mx([...r0, ...r1], [128, 126], 2);
  const out = new Float32Array(32);
  decodeRow(m, 1, out);
  assert.ok(out.every((v) => v === -0.25));
  decodeRow(m, 0, out);
  assert.ok(out.every((v) => v === 1));
});

test('bf16 and fp8 scalar decoding', () => {
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0xc040), -3);
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(bf16ToF32(f32ToBf16(3.14159)), 3.140625);
  assert.equal(fp8e4m3ToF32(0x7e), 448);
  assert.equal(fp8e4m3ToF32(0x01), 2 ** -9);
  assert.ok(Number.isNaN(fp8e4m3ToF32(0x7f)));
});
