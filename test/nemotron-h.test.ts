/**
 * Nemotron-H: every fixture on both backends; the same logits however the prompt is split or
 * batched; the chunked SSD scan equals the recurrent step; recurrent-state slots and snapshots.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReferenceBackend } from '../src/backend/reference.js';
import { createBackend } from '../src/backend/index.js';
import { chunkedScan, recurrentScan, ScanSegment } from '../src/backend/reference-mamba.js';
import { modelFixtureSuite, readF32File } from '../src/conformance/model-fixtures.js';
import { packBatch } from '../src/engine/batch.js';
import { cacheFor, greedyGenerate, promptLogits, argmax } from '../src/engine/runner.js';
import { loadModel } from '../src/models/registry.js';
import { NemotronHModel } from '../src/models/nemotron-h.js';
import { maxAbs, modelFixtureDirs } from './helpers.js';

const dirs = modelFixtureDirs('nemotron-h');

test('nemotron-h fixtures are present', () => assert.ok(dirs.length >= 3));

for (const dir of dirs) {
  const label = path.basename(dir);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const tol: number = expected.tolerance.logits_max_abs;
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));

  for (const backend of ['reference', 'native']) {
    test(`fixture ${label} (${backend}): logits and greedy continuations`, async () => {
      let n = 0;
      for await (const r of modelFixtureSuite.run(dir, { backend, label })) {
        assert.ok(r.ok, `${r.name}: ${r.detail}`);
        n++;
      }
      assert.equal(n, 2 * expected.cases.length);
    });
  }

  test(`fixture ${label}: one pass = token by token = chunks not aligned to chunk_size`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    const cs: number = cfg.chunk_size;
    for (const c of expected.cases) {
      const ref = readF32File(path.join(dir, c.logits.file));
      const one = promptLogits(model, c.input_ids, 0);
      for (const chunk of [1, 3, cs - 1, cs + 3, 2 * cs + 5]) {
        if (chunk >= c.input_ids.length) continue;
        const got = promptLogits(model, c.input_ids, chunk);
        assert.ok(maxAbs(got, one) <= tol, `${c.name} chunk=${chunk}: ${maxAbs(got, one)} vs one pass`);
        assert.ok(maxAbs(got, ref) <= tol, `${c.name} chunk=${chunk} vs reference`);
      }
    }
  });

  test(`fixture ${label}: a packed batch of different lengths equals each prompt alone`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    const prompts: number[][] = expected.cases.map((c: { input_ids: number[] }) => c.input_ids);
    const total = prompts.reduce((a, p) => a + p.length, 0);
    const cache = cacheFor(model, total, prompts.length);
    const seqs = prompts.map(() => cache.newSequence());
    assert.equal(new Set(seqs.map((s) => s.stateSlot)).size, prompts.length, 'one state slot each');
    // a prefix of each prompt (prefill chunks), then the rest (mixed lengths, some single tokens)
    const cut = prompts.map((p, i) => Math.max(1, p.length - 1 - i * 7));
    const V = model.vocabSize;
    const first = model.forward(packBatch(prompts.map((p, i) => ({ cache: seqs[i], tokens: p.slice(0, cut[i]), logits: 'all' as const }))), cache);
    const second = model.forward(packBatch(prompts.map((p, i) => ({ cache: seqs[i], tokens: p.slice(cut[i]), logits: 'all' as const }))), cache);
    let o1 = 0;
    let o2 = 0;
    prompts.forEach((p, i) => {
      const alone = promptLogits(model, p);
      const packed = new Float32Array(p.length * V);
      packed.set(first.subarray(o1 * V, (o1 + cut[i]) * V), 0);
      packed.set(second.subarray(o2 * V, (o2 + p.length - cut[i]) * V), cut[i] * V);
      o1 += cut[i];
      o2 += p.length - cut[i];
      assert.ok(maxAbs(packed, alone) <= tol, `prompt ${i}: ${maxAbs(packed, alone)}`);
    });
  });
}

test('state slots: a new sequence gets a free slot, free returns it, too many sequences fail', () => {
  const model = loadModel(dirs[0], new ReferenceBackend());
  const cache = model.createCache({ numBlocks: 8, blockSize: 16, maxSeqs: 2 });
  const a = cache.newSequence();
  const b = cache.newSequence();
  assert.notEqual(a.stateSlot, b.stateSlot);
  assert.equal(cache.freeStateSlots!(), 0);
  assert.throws(() => cache.newSequence(), /state cache is full/);
  const slot = a.stateSlot;
  a.free();
  assert.equal(a.stateSlot, -1);
  assert.equal(cache.freeStateSlots!(), 1);
  assert.equal(cache.newSequence().stateSlot, slot);
});

test('snapshot and restore: rolling back to a snapshot and continuing equals never having diverged', () => {
  const dir = dirs[0];
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')).cases[1];
  const model = loadModel(dir, new ReferenceBackend()) as NemotronHModel;
  const ids: number[] = c.input_ids;
  const cut = Math.floor(ids.length / 2) + 1;
  const cache = cacheFor(model, ids.length + 20, 2);
  const seq = cache.newSequence();
  model.forward(packBatch([{ cache: seq, tokens: ids.slice(0, cut), logits: 'none' }]), cache);
  const snap = cache.snapshotState!(seq);
  assert.equal(snap.length, cut);
  // wander off: feed other tokens, then roll back and feed the real rest
  model.forward(packBatch([{ cache: seq, tokens: [5, 6, 7, 8, 9, 10, 11], logits: 'none' }]), cache);
  cache.restoreState!(seq, snap);
  assert.equal(seq.length, cut);
  const rest = model.forward(packBatch([{ cache: seq, tokens: ids.slice(cut), logits: 'all' }]), cache);
  const full = promptLogits(model, ids);
  const V = model.vocabSize;
  assert.ok(maxAbs(rest, full.subarray(cut * V)) <= 1e-4);
  // a fork starts from a copy of the same state
  const fork = cache.newSequence();
  cache.copyState!(seq, fork);
  assert.notEqual(fork.stateSlot, seq.stateSlot);
  const a = cache.snapshotState!(seq);
  const b = cache.snapshotState!(fork);
  a.ssm.forEach((s, i) => assert.ok(s.some((v) => v !== 0) && maxAbs(s, b.ssm[i]) === 0));
  a.conv.forEach((s, i) => assert.equal(maxAbs(s, b.conv[i]), 0));
  seq.free();
  fork.free();
});

test('greedy generation equals repeated full forwards (cache consistency)', () => {
  const dir = dirs[dirs.length - 1];
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')).cases[0];
  const model = loadModel(dir, new ReferenceBackend());
  const got = greedyGenerate(model, c.input_ids, 6);
  const ids = [...c.input_ids];
  const V = model.vocabSize;
  for (let i = 0; i < 6; i++) {
    const l = promptLogits(model, ids);
    ids.push(argmax(l, (ids.length - 1) * V, V));
  }
  assert.deepEqual(got, ids.slice(c.input_ids.length));
});

/** Seeded uniform values in [-s, s). */
function rand(n: number, seed: number, s = 1): Float32Array {
  let x = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return ((x / 2 ** 32) * 2 - 1) * s;
  });
}

test('SSD chunked scan = recurrent step on random inputs (several chunk sizes, carried state)', () => {
  const nh = 6, P = 5, G = 3, N = 7, n = 29;
  const x = rand(n * nh * P, 1);
  const B = rand(n * G * N, 2);
  const C = rand(n * G * N, 3);
  const delta = Float32Array.from(rand(n * nh, 4), (v) => 0.05 + Math.abs(v) * 0.5);
  const A = Float32Array.from(rand(nh, 5), (v) => -Math.exp(v));
  const D = rand(nh, 6);
  const S0 = rand(nh * P * N, 7, 0.5);
  const seg = (y: Float32Array): ScanSegment => ({ x, delta, B, C, y, nh, P, G, N, t0: 0, n });
  const yRec = new Float32Array(n * nh * P);
  const sRec = S0.slice();
  recurrentScan(seg(yRec), A, D, sRec);
  for (const chunk of [1, 4, 8, 13, 64]) {
    const y = new Float32Array(n * nh * P);
    const s = S0.slice();
    chunkedScan(seg(y), A, D, s, chunk);
    assert.ok(maxAbs(y, yRec) < 1e-5, `chunk ${chunk}: y differs by ${maxAbs(y, yRec)}`);
    assert.ok(maxAbs(s, sRec) < 1e-5, `chunk ${chunk}: final state differs by ${maxAbs(s, sRec)}`);
  }
  // and the head → group mapping is contiguous: moving group 0's B changes heads 0..1 only
  const B2 = B.slice();
  for (let t = 0; t < n; t++) B2[t * G * N] += 1;
  const y2 = new Float32Array(n * nh * P);
  recurrentScan({ ...seg(y2), B: B2 }, A, D, S0.slice());
  for (let h = 0; h < nh; h++) {
    let d = 0;
    for (let t = 0; t < n; t++) for (let p = 0; p < P; p++) d = Math.max(d, Math.abs(y2[(t * nh + h) * P + p] - yRec[(t * nh + h) * P + p]));
    if (h < nh / G) assert.ok(d > 1e-3, `head ${h} uses group 0`);
    else assert.equal(d, 0, `head ${h} does not use group 0`);
  }
});

test('native Mamba kernels (conv, scan, gated norm) equal the reference on a packed batch (fresh, continuing, single-token, multi-chunk)', () => {
  const native = createBackend('auto');
  const ref = new ReferenceBackend();
  const nh = 8, P = 4, G = 2, N = 6, K = 4, Cd = nh * P + 2 * G * N;
  // four sequences: fresh prefill (3 chunks), continuing chunk, a decode token, a fresh single token
  const lens = [21, 9, 1, 1];
  const fresh = [true, false, false, true];
  let q = 0;
  const seqs = lens.map((n, i) => {
    const s = { queryStart: q, queryLen: n, ctxLen: fresh[i] ? n : n + 5, blockTable: new Int32Array(0) };
    q += n;
    return s;
  });
  const T = q;
  const meta = { seqs, stateSlots: Int32Array.from([3, 0, 2, 1]) };
  const states = [native, ref].map((be) => {
    const st = be.allocMambaState(4, Cd, K, nh, P, N);
    st.conv.set(rand(st.conv.length, 11));
    st.ssm.set(rand(st.ssm.length, 12, 0.3));
    return st;
  });
  const xbc = rand(T * Cd, 13);
  const w = rand(Cd * K, 14, 0.5);
  const bias = rand(Cd, 15, 0.1);
  const convs = [native, ref].map((be, i) => be.causalConv1d(xbc, T, w, bias, states[i], meta));
  assert.ok(maxAbs(convs[0], convs[1]) < 1e-5, `conv ${maxAbs(convs[0], convs[1])}`);
  assert.ok(maxAbs(states[0].conv, states[1].conv) === 0, 'conv windows');
  const x = rand(T * nh * P, 16);
  const dt = rand(T * nh, 17);
  const B = rand(T * G * N, 18);
  const C = rand(T * G * N, 19);
  const A = Float32Array.from(rand(nh, 20), (v) => -Math.exp(v));
  const D = rand(nh, 21);
  const dtBias = rand(nh, 22, 0.5);
  const opts = { nHeads: nh, headDim: P, nGroups: G, stateSize: N, chunkSize: 8, dtMin: 0.01, dtMax: Infinity };
  const ys = [native, ref].map((be, i) => be.ssmScan(x, dt, B, C, T, A, D, dtBias, states[i], meta, opts));
  assert.ok(maxAbs(ys[0], ys[1]) < 1e-4, `ssm y ${maxAbs(ys[0], ys[1])}`);
  assert.ok(maxAbs(states[0].ssm, states[1].ssm) < 1e-4, `ssm state ${maxAbs(states[0].ssm, states[1].ssm)}`);
  // the gated group norm over the scan's output (one token alone and the whole batch)
  const z = rand(T * nh * P, 23, 2);
  const nw = rand(nh * P, 24);
  for (const n of [1, T]) {
    const gs = [native, ref].map((be) => be.gatedRmsNorm(ys[1].subarray(0, n * nh * P), z.subarray(0, n * nh * P), n, nw, (nh * P) / G, 1e-5));
    assert.ok(maxAbs(gs[0], gs[1]) < 1e-5, `gated norm (${n} tokens) ${maxAbs(gs[0], gs[1])}`);
    assert.ok(maxAbs(gs[1], new Float32Array(gs[1].length)) > 0.1);
  }
  // fresh sequences ignore whatever their slot held
  const again = ref.allocMambaState(4, Cd, K, nh, P, N);
  const y0 = ref.ssmScan(x, dt, B, C, T, A, D, dtBias, again, { seqs: [seqs[0]], stateSlots: Int32Array.from([3]) }, opts);
  assert.ok(maxAbs(y0.subarray(0, 21 * nh * P), ys[1].subarray(0, 21 * nh * P)) === 0);
});

test('continuing a sequence whose KV was cut without restoring its recurrent state is a clear error', () => {
  const model = loadModel(dirs[0], new ReferenceBackend());
  const cache = cacheFor(model, 64, 2);
  const seq = cache.newSequence();
  model.forward(packBatch([{ cache: seq, tokens: [3, 4, 5, 6, 7, 8], logits: 'none' }]), cache);
  seq.truncate(4);
  assert.throws(() => model.forward(packBatch([{ cache: seq, tokens: [9], logits: 'last' }]), cache),
    /recurrent state of sequence 0 is after 6 tokens but the batch continues at position 4/);
  // a prefix-cache hit: KV blocks adopted, state restored from the snapshot taken at that length
  const a = cache.newSequence();
  const ids = Array.from({ length: 40 }, (_, i) => 3 + ((i * 13) % 50));
  model.forward(packBatch([{ cache: a, tokens: ids.slice(0, 32), logits: 'none' }]), cache);
  const snap = cache.snapshotState!(a);
  const want = model.forward(packBatch([{ cache: a, tokens: ids.slice(32), logits: 'all' }]), cache);
  seq.free();
  const b = cache.newSequence();
  b.adoptPrefix(a.blocks.slice(0, 2));
  assert.throws(() => model.forward(packBatch([{ cache: b, tokens: ids.slice(32), logits: 'all' }]), cache), /restore a state snapshot/);
  cache.restoreState!(b, snap);
  const got = model.forward(packBatch([{ cache: b, tokens: ids.slice(32), logits: 'all' }]), cache);
  assert.equal(maxAbs(got, want), 0);
});
