/**
 * The engine core: continuous batching, chunked prefill, prefix caching, preemption,
 * cancellation and sampling, on a real fixture checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { createBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/registry.js';
import { greedyGenerate } from '../src/engine/runner.js';
import { Engine, type EngineOptions, type RequestOutput } from '../src/engine/engine.js';
import { EngineLoop } from '../src/engine/client.js';
import { resolveEngineOptions } from '../src/engine/config.js';
import { WorkerEngine } from '../src/engine/worker-engine.js';
import { DEFAULT_SAMPLING, Sampler, TokenCounts, samplingFromRequest, type SamplingParams } from '../src/engine/sampling.js';
import { FIXTURES } from './helpers.js';

const DIR = path.join(FIXTURES, 'gpt-oss/tiny-window');
const model = loadModel(DIR, createBackend('auto'));
const greedy = (max: number): SamplingParams => ({ ...DEFAULT_SAMPLING, temperature: 0, maxTokens: max, ignoreEos: true });
const opts = (o: Partial<EngineOptions> = {}): EngineOptions => ({
  numBlocks: 256, blockSize: 4, maxNumSeqs: 16, maxBatchedTokens: 64, maxModelLen: 8192, prefixCaching: true, ...o,
});
function prompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 37 + seed * 101 + 3) % model.vocabSize);
}
async function collect(it: AsyncIterable<RequestOutput>) {
  const ids: number[] = [];
  let last: RequestOutput | undefined;
  for await (const o of it) {
    for (const t of o.tokens) ids.push(t.id);
    last = o;
  }
  return { ids, last: last! };
}

test('concurrent greedy requests equal each request run alone (batch invariance, chunked prefill)', async () => {
  const prompts = [prompt(5, 1), prompt(23, 2), prompt(40, 3), prompt(1, 4), prompt(17, 5)];
  const alone = prompts.map((p) => greedyGenerate(model, p, 12));
  // a small token budget forces prompts to be prefilled in chunks beside other sequences' decodes
  const loop = new EngineLoop(new Engine(model, opts({ maxBatchedTokens: 7, prefixCaching: false })));
  const outs = await Promise.all(prompts.map((p) => collect(loop.generate({ prompt: p, sampling: greedy(12) }))));
  for (let i = 0; i < prompts.length; i++) {
    assert.deepEqual(outs[i].ids, alone[i], `prompt ${i}`);
    assert.equal(outs[i].last.finishReason, 'length');
    assert.deepEqual(outs[i].last.usage, { promptTokens: prompts[i].length, completionTokens: 12, cachedTokens: 0 });
  }
});

test('a shared prefix is served from the prefix cache and the output is unchanged', async () => {
  const engine = new Engine(model, opts());
  const loop = new EngineLoop(engine);
  const shared = prompt(33, 7);
  const a = [...shared, 5, 6, 7];
  const first = await collect(loop.generate({ prompt: a, sampling: greedy(6) }));
  assert.equal(first.last.usage!.cachedTokens, 0);
  const second = await collect(loop.generate({ prompt: a, sampling: greedy(6) }));
  assert.deepEqual(second.ids, first.ids);
  assert.equal(second.last.usage!.cachedTokens, 32, 'every full block of the prompt but the last token\'s');
  const b = [...shared, 9];
  const third = await collect(loop.generate({ prompt: b, sampling: greedy(6) }));
  assert.deepEqual(third.ids, greedyGenerate(model, b, 6));
  assert.equal(third.last.usage!.cachedTokens, 32);
  const s = engine.stats();
  assert.ok(s.prefixCacheHitTokens >= 64 && s.prefixCacheQueriedTokens > s.prefixCacheHitTokens);
  assert.equal(s.running + s.waiting, 0);
});

test('hybrid (Mamba) models: prefix hits restore a recurrent-state snapshot taken at a block boundary, output unchanged', async () => {
  const hm = loadModel(path.join(FIXTURES, 'nemotron-h/tiny-hybrid-dense'), createBackend('auto'));
  const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 53 + seed * 7 + 11) % hm.vocabSize);
  const shared = ids(37, 3);
  const a = [...shared, 1, 2, 3];
  const b = [...shared.slice(0, 34), 9, 8, 7];
  const wantA = greedyGenerate(hm, a, 6);
  const wantB = greedyGenerate(hm, b, 6);
  // a small token budget: a's prefill runs in chunks cut at block boundaries (8, 16, 24, 32), then
  // stops at its last full block (36) before the tail; each boundary leaves a snapshot
  const engine = new Engine(hm, opts({ maxBatchedTokens: 8 }));
  const loop = new EngineLoop(engine);
  const first = await collect(loop.generate({ prompt: a, sampling: greedy(6) }));
  assert.deepEqual(first.ids, wantA);
  assert.equal(first.last.usage!.cachedTokens, 0);
  const again = await collect(loop.generate({ prompt: a, sampling: greedy(6) }));
  assert.deepEqual(again.ids, wantA, 'the same prompt from the snapshot at 36');
  assert.equal(again.last.usage!.cachedTokens, 36);
  const other = await collect(loop.generate({ prompt: b, sampling: greedy(6) }));
  assert.deepEqual(other.ids, wantB, 'a shared prefix from the snapshot at 32');
  assert.equal(other.last.usage!.cachedTokens, 32);
  assert.equal(engine.stats().prefixCacheHitTokens, 68);
  // without snapshots there is no hit: the state could not be restored
  const off = new Engine(hm, opts({ maxBatchedTokens: 8, stateSnapshotBytes: 0 }));
  const offLoop = new EngineLoop(off);
  await collect(offLoop.generate({ prompt: a, sampling: greedy(6) }));
  const miss = await collect(offLoop.generate({ prompt: a, sampling: greedy(6) }));
  assert.deepEqual(miss.ids, wantA);
  assert.equal(miss.last.usage!.cachedTokens, 0);
});

test('a pool too small for every sequence preempts and recomputes, with the same outputs', async () => {
  const prompts = [prompt(20, 11), prompt(20, 12), prompt(20, 13)];
  const alone = prompts.map((p) => greedyGenerate(model, p, 10));
  // 3 × (20 + 10) tokens need 24 blocks of 4; 14 blocks force preemption
  const engine = new Engine(model, opts({ numBlocks: 14, prefixCaching: false }));
  const loop = new EngineLoop(engine);
  const outs = await Promise.all(prompts.map((p) => collect(loop.generate({ prompt: p, sampling: greedy(10) }))));
  for (let i = 0; i < prompts.length; i++) assert.deepEqual(outs[i].ids, alone[i]);
  assert.ok(engine.stats().preemptions > 0, 'expected at least one preemption');
  assert.equal(engine.cache.freeBlocks(), 14, 'every block is returned');
});

test('sliding-window layers give back blocks behind the window: a pool sized for the window serves long sequences exactly', async () => {
  // tiny-window: window 8; blocks of 4. The window pool is sized by resolveEngineOptions' bound
  // (4 seqs × (⌈7/4⌉ + 3) + 16/4 = 24 blocks) while the sequences reach 25 blocks each.
  const o = resolveEngineOptions(model, { kvCacheBytes: 2 ** 20, maxNumSeqs: 4, maxBatchedTokens: 16, blockSize: 4 });
  assert.equal(o.numWindowBlocks, 24);
  assert.ok(o.numBlocks > 100);
  const prompts = [prompt(70, 31), prompt(45, 32), prompt(61, 33), prompt(52, 34)];
  const alone = prompts.map((p) => greedyGenerate(model, p, 30));
  const engine = new Engine(model, { ...o, prefixCaching: false });
  const ids: number[][] = prompts.map(() => []);
  prompts.forEach((p, i) => engine.add({ id: String(i), prompt: p, sampling: greedy(30) }));
  let peak = 0;
  while (engine.hasWork()) {
    for (const out of engine.step()) ids[Number(out.id)].push(...out.tokens.map((t) => t.id));
    peak = Math.max(peak, engine.stats().windowBlocksUsed);
    for (const s of engine['running'] as { cache: { window: { held(): number }; length: number } }[]) {
      assert.ok(s.cache.window.held() <= Math.ceil(7 / 4) + 1 + Math.ceil(16 / 4), `a sequence holds ${s.cache.window.held()} window blocks`);
    }
  }
  for (let i = 0; i < prompts.length; i++) assert.deepEqual(ids[i], alone[i], `prompt ${i}`);
  assert.ok(peak <= 24 && peak > 4, `window pool peak ${peak}`);
  assert.equal(engine.stats().preemptions, 0);
  assert.equal(engine.stats().windowBlocksUsed, 0);
  assert.equal(engine.cache.windowPool!.numFree, 24);
});

test('sliding-window prefix hits need the window\'s blocks: evicted ones shorten the hit, output unchanged', async () => {
  // a window pool of 12 blocks: B's prefill evicts A's cached window blocks, oldest first
  const engine = new Engine(model, opts({ numWindowBlocks: 12, maxNumSeqs: 1, maxBatchedTokens: 16 }));
  const loop = new EngineLoop(engine);
  const a = prompt(41, 41);
  const b = prompt(41, 42);
  const want = greedyGenerate(model, a, 5);
  const first = await collect(loop.generate({ prompt: a, sampling: greedy(5) }));
  assert.deepEqual(first.ids, want);
  const again = await collect(loop.generate({ prompt: a, sampling: greedy(5) }));
  assert.deepEqual(again.ids, want);
  assert.equal(again.last.usage!.cachedTokens, 40, 'a full hit while A\'s window blocks are cached');
  await collect(loop.generate({ prompt: b, sampling: greedy(5) }));
  const after = await collect(loop.generate({ prompt: a, sampling: greedy(5) }));
  assert.deepEqual(after.ids, want);
  // A's full-attention blocks are all still cached, but B's prefill evicted every window block of A's
  assert.equal(after.last.usage!.cachedTokens, 0, 'no hit is usable without the window before it');
  assert.ok(engine.stats().prefixCacheBlocks >= 20);
});

test('an aborted request stops and frees its blocks at the next step', async () => {
  const engine = new Engine(model, opts({ prefixCaching: false }));
  const loop = new EngineLoop(engine);
  const ac = new AbortController();
  let n = 0;
  let reason: string | undefined;
  for await (const o of loop.generate({ prompt: prompt(10, 3), sampling: greedy(1000) }, ac.signal)) {
    n += o.tokens.length;
    if (n === 3) ac.abort();
    reason = o.finishReason;
  }
  assert.equal(reason, 'abort');
  assert.ok(n >= 3 && n < 10);
  assert.equal(engine.cache.freeBlocks(), 256);
});

test('seeded sampling gives the same tokens alone and under concurrent load', async () => {
  const s: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0.9, topP: 0.95, seed: 1234, maxTokens: 10, ignoreEos: true };
  const p = prompt(9, 21);
  const alone = await collect(new EngineLoop(new Engine(model, opts())).generate({ prompt: p, sampling: s }));
  const loop = new EngineLoop(new Engine(model, opts()));
  const others = [1, 2, 3].map((k) => collect(loop.generate({ prompt: prompt(7 + k, k), sampling: { ...s, seed: k } })));
  const mine = await collect(loop.generate({ prompt: p, sampling: s }));
  await Promise.all(others);
  assert.deepEqual(mine.ids, alone.ids);
  const other = await collect(new EngineLoop(new Engine(model, opts())).generate({ prompt: p, sampling: { ...s, seed: 99 } }));
  assert.notDeepEqual(other.ids, alone.ids, 'a different seed should change a 10-token sample');
});

test('stop token ids end generation without being emitted; prompts beyond the context are rejected', async () => {
  const p = prompt(6, 5);
  const ref = greedyGenerate(model, p, 8);
  const loop = new EngineLoop(new Engine(model, opts()));
  const r = await collect(loop.generate({ prompt: p, sampling: { ...greedy(8), stopTokenIds: [ref[3]] } }));
  const cut = ref.indexOf(ref[3]);
  assert.deepEqual(r.ids, ref.slice(0, cut));
  assert.equal(r.last.finishReason, 'stop');
  assert.equal(r.last.stopToken, ref[3]);
  const small = new EngineLoop(new Engine(model, opts({ maxModelLen: 16 })));
  const bad = await collect(small.generate({ prompt: prompt(16, 1), sampling: greedy(4) }));
  assert.equal(bad.last.finishReason, 'error');
  assert.match(bad.last.error!, /16 tokens.*context/);
  const oov = await collect(small.generate({ prompt: [model.vocabSize], sampling: greedy(4) }));
  assert.match(oov.last.error!, /outside the vocabulary/);
});

test('sampler: filters, penalties, logprobs', () => {
  const logits = Float32Array.from([1, 3, 2, 0.5, -1]);
  const counts = new TokenCounts([]);
  const base = { ...DEFAULT_SAMPLING, seed: 1 };
  // top_k = 1 is greedy
  for (let i = 0; i < 20; i++) assert.equal(new Sampler({ ...base, topK: 1, seed: i }).sample(logits, counts).token, 1);
  // min_p keeps only tokens within a factor of the best: p(2)/p(1) = e^-1 ≈ 0.37 < 0.5
  for (let i = 0; i < 20; i++) assert.equal(new Sampler({ ...base, minP: 0.5, seed: i }).sample(logits, counts).token, 1);
  // top_p: the best token alone holds ~0.63 of the mass
  for (let i = 0; i < 20; i++) assert.equal(new Sampler({ ...base, topP: 0.5, seed: i }).sample(logits, counts).token, 1);
  // presence penalty moves the choice off a seen token
  const seen = new TokenCounts([]);
  seen.add(1);
  assert.equal(new Sampler({ ...base, temperature: 0, presencePenalty: 2 }).sample(logits, seen).token, 2);
  // repetition penalty divides a positive logit
  assert.equal(new Sampler({ ...base, temperature: 0, repetitionPenalty: 2 }).sample(logits, new TokenCounts([1])).token, 2);
  // logprobs are normalised and sorted
  const r = new Sampler({ ...base, temperature: 0, logprobs: true, topLogprobs: 3 }).sample(logits, counts);
  assert.deepEqual(r.top!.map((t) => t.id), [1, 2, 0]);
  const total = [1, 3, 2, 0.5, -1].reduce((a, v) => a + Math.exp(v), 0);
  assert.ok(Math.abs(r.logprob! - (3 - Math.log(total))) < 1e-5);
  // sampling frequencies follow the softmax at temperature 1
  let hits = 0;
  const s = new Sampler({ ...base, seed: 42 });
  for (let i = 0; i < 4000; i++) if (s.sample(logits, counts).token === 1) hits++;
  const p1 = Math.exp(3) / total;
  assert.ok(Math.abs(hits / 4000 - p1) < 0.03, `frequency ${hits / 4000} vs ${p1}`);
});

test('sampling parameters are validated with the field named', () => {
  const o = { defaultMaxTokens: 16, maxTokensCap: 100 };
  assert.throws(() => samplingFromRequest({ temperature: 3 }, o), /temperature: 3 is outside/);
  assert.throws(() => samplingFromRequest({ top_p: 'x' }, o), /top_p: expected a number/);
  assert.throws(() => samplingFromRequest({ max_tokens: 0 }, o), /max_tokens: 0 is outside/);
  assert.throws(() => samplingFromRequest({ max_completion_tokens: 101 }, o), /max_completion_tokens/);
  assert.throws(() => samplingFromRequest({ seed: 1.5 }, o), /seed: expected an integer/);
  assert.throws(() => samplingFromRequest({ top_logprobs: 3 }, o), /requires logprobs/);
  const p = samplingFromRequest({ temperature: 0, max_tokens: 5, logprobs: true, top_logprobs: 2, seed: 7 }, o);
  assert.equal(p.maxTokens, 5);
  assert.equal(p.topLogprobs, 2);
  assert.equal(samplingFromRequest({}, o).maxTokens, 16);
});

test('the worker engine computes on its own thread: same tokens, and the event loop stays free', async () => {
  const eng = await WorkerEngine.start({ modelDir: DIR, maxNumSeqs: 4, maxModelLen: 1024 });
  try {
    assert.equal(eng.info.vocabSize, model.vocabSize);
    const p = prompt(30, 9);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = Date.now();
    const r = await collect(eng.generate({ prompt: p, sampling: greedy(40) }));
    const ms = Date.now() - t0;
    clearInterval(timer);
    assert.deepEqual(r.ids, greedyGenerate(model, p, 40));
    // a blocked loop would tick once per step at most; a free one ticks about once per ms
    assert.ok(ticks > ms / 10, `${ticks} ticks in ${ms} ms`);
    const st = await eng.stats();
    assert.equal(st.running, 0);
    const bad = await collect(eng.generate({ prompt: [], sampling: greedy(2) }));
    assert.match(bad.last.error!, /empty/);
  } finally {
    await eng.close();
  }
});

test('the worker engine reports a bad checkpoint as a clear error', async () => {
  await assert.rejects(WorkerEngine.start({ modelDir: '/nonexistent/model' }), /nonexistent/);
});
