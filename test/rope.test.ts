import { test } from 'node:test';
import assert from 'node:assert/strict';
import { yarnRope, plainRope } from '../src/layers/rope.js';
import { ReferenceBackend } from '../src/backend/reference.js';

test('YaRN inverse frequencies match the NOTES debug values (d=16, L0=256, f=32)', () => {
  const r = yarnRope(16, 150000, { factor: 32, betaFast: 32, betaSlow: 1, originalMaxPositions: 256, truncate: false });
  const want = [1.0, 0.146768, 0.0119238, 0.000357945, 8.06872e-05, 1.81883e-05, 4.09998e-06, 9.24209e-07];
  want.forEach((w, i) => assert.ok(Math.abs(r.invFreq[i] - w) / w < 1e-5, `inv_freq[${i}] = ${r.invFreq[i]}, want ${w}`));
  assert.ok(Math.abs(r.concentration - (0.1 * Math.log(32) + 1)) < 1e-12);
});

test('YaRN release values: concentration 1.3465736, interpolation only above high', () => {
  const r = yarnRope(64, 150000, { factor: 32, betaFast: 32, betaSlow: 1, originalMaxPositions: 4096, truncate: false });
  assert.ok(Math.abs(r.concentration - 1.3465736) < 1e-6);
  const plain = plainRope(64, 150000);
  // i ≤ 8 < low (8.09): original frequency; i ≥ 18 > high (17.40): divided by the factor
  for (let i = 0; i <= 8; i++) assert.equal(r.invFreq[i], plain.invFreq[i]);
  for (let i = 18; i < 32; i++) assert.ok(Math.abs(r.invFreq[i] - plain.invFreq[i] / 32) / r.invFreq[i] < 1e-6);
  // truncation changes the ramp (the fixtures catch truncate=true)
  const t = yarnRope(64, 150000, { factor: 32, betaFast: 32, betaSlow: 1, originalMaxPositions: 4096, truncate: true });
  assert.notEqual(t.invFreq[9], r.invFreq[9]);
});

test('rope rotates half-split (NeoX) pairs and scales by the concentration', () => {
  const be = new ReferenceBackend();
  const spec = { invFreq: Float32Array.from([1, 0.5]), concentration: 2, rotaryDim: 4 };
  const x = Float32Array.from([1, 0, 0, 0]); // x1 = [1, 0], x2 = [0, 0]
  be.rope(x, 1, 1, 4, Int32Array.from([3]), spec);
  assert.ok(Math.abs(x[0] - 2 * Math.cos(3)) < 1e-6);
  assert.ok(Math.abs(x[2] - 2 * Math.sin(3)) < 1e-6); // pair (0, 2), not (0, 1)
  assert.equal(x[1], 0);
});
