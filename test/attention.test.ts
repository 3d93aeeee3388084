import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference.js';
import { BlockAllocator } from '../src/cache/block-allocator.js';
import { SequenceCache } from '../src/cache/sequence-cache.js';
import { packBatch } from '../src/engine/batch.js';

const be = new ReferenceBackend();

/** One head, d = positions: v_j is the one-hot vector of position j, so output = attention weights. */
function weightsFor(n: number, window: number, sinks: Float32Array | null, qk: (q: number, k: number) => number) {
  const d = n;
  const alloc = new BlockAllocator(8);
  const seq = new SequenceCache(alloc, 4);
  const cache = be.allocKv(8, 4, 1, d);
  const batch = packBatch([{ cache: seq, tokens: Array(n).fill(0), logits: 'all' }]);
  // scores q_i·k_j = qk(i, j) using q_i = e_i-weighted rows: build k = identity, q_i[j] = qk(i, j)
  const q = new Float32Array(n * d);
  const k = new Float32Array(n * d);
  const v = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    k[i * d + i] = 1;
    v[i * d + i] = 1;
    for (let j = 0; j < n; j++) q[i * d + j] = qk(i, j);
  }
  return be.attention(q, k, v, n, cache, batch, { nHeads: 1, nKv: 1, headDim: d, scale: 1, window, sinks });
}

test('sliding window: W keys including the query itself', () => {
  const n = 10;
  const W = 3;
  const out = weightsFor(n, W, null, () => 0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const seen = j <= i && j > i - W;
      const w = out[i * n + j];
      if (seen) assert.ok(Math.abs(w - 1 / Math.min(W, i + 1)) < 1e-6, `q${i} k${j}: ${w}`);
      else assert.equal(w, 0, `q${i} must not see k${j}`);
    }
  }
});

test('full attention is causal', () => {
  const out = weightsFor(6, 0, null, () => 0);
  for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.equal(out[i * 6 + j] > 0, j <= i);
});

test('sinks: an extra softmax column with value 0, not scaled', () => {
  const S = 1.5;
  const out = weightsFor(3, 0, Float32Array.from([S]), (i, j) => (i === j ? 0.7 : 0.2));
  // row 0: one key of score 0.7 → weight e^.7/(e^.7+e^S)
  assert.ok(Math.abs(out[0] - Math.exp(0.7) / (Math.exp(0.7) + Math.exp(S))) < 1e-6);
  // row 2: scores [0.2, 0.2, 0.7]
  const z = 2 * Math.exp(0.2) + Math.exp(0.7) + Math.exp(S);
  assert.ok(Math.abs(out[2 * 3 + 0] - Math.exp(0.2) / z) < 1e-6);
  assert.ok(Math.abs(out[2 * 3 + 2] - Math.exp(0.7) / z) < 1e-6);
  const rowSum = out[6] + out[7] + out[8];
  assert.ok(rowSum < 1 - 0.1, 'the sink absorbs probability');
});

test('GQA: consecutive q heads share a kv head', () => {
  const alloc = new BlockAllocator(2);
  const seq = new SequenceCache(alloc, 4);
  const cache = be.allocKv(2, 4, 2, 1);
  const batch = packBatch([{ cache: seq, tokens: [0], logits: 'all' }]);
  const q = Float32Array.from([1, 1, 1, 1]);
  const k = Float32Array.from([0, 0]);
  const v = Float32Array.from([10, 20]); // kv head 0 → 10, kv head 1 → 20
  const out = be.attention(q, k, v, 1, cache, batch, { nHeads: 4, nKv: 2, headDim: 1, scale: 1, window: 0, sinks: null });
  assert.deepEqual([...out], [10, 10, 20, 20]);
});
