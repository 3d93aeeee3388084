/** `tessera synth` writes a loadable checkpoint in the released layout; `tessera bench` reports every key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PRESETS } from '../src/weights/synth.js';
import { watchOps } from '../bench/op-profile.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { packBatch } from '../src/engine/batch.js';
import { loadModel } from '../src/models/registry.js';
import { runCli, synthCheckpoint, tmpDir } from './helpers.js';

const small = {
  ...PRESETS['gpt-oss-20b'],
  hidden_size: 64, intermediate_size: 64, head_dim: 16, num_attention_heads: 4, num_key_value_heads: 2,
  num_hidden_layers: 2, num_local_experts: 4, num_experts_per_tok: 2, vocab_size: 300, sliding_window: 8,
};

test('synth --config writes shards + index that load and run', () => {
  const dir = tmpDir();
  const cfgFile = path.join(dir, 'in.json');
  fs.writeFileSync(cfgFile, JSON.stringify(small));
  const out = path.join(dir, 'ckpt');
  const r = runCli(['synth', '--config', cfgFile, '--out', out, '--shard-gb', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(out, 'config.json')));
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
  const g = runCli(['generate', '--model', out, '--ids', '1,2,3', '--max-new-tokens', '4', '--json']);
  assert.equal(g.status, 0, g.stderr);
  const ids = JSON.parse(g.stdout).output_ids;
  assert.equal(ids.length, 4);
  assert.ok(ids.every((i: number) => i >= 0 && i < 300));
  // logits are finite
  const lf = path.join(dir, 'l.f32');
  assert.equal(runCli(['logits', '--model', out, '--ids', '5,6,7,8', '--out', lf]).status, 0);
  const buf = fs.readFileSync(lf);
  for (let i = 0; i < buf.length; i += 4) assert.ok(Number.isFinite(buf.readFloatLE(i)));

  const b = runCli(['bench', '--model', out, '--json', '--prompt-tokens', '16', '--decode-tokens', '4', '--depth', '64', '--batched-steps', '2', '--repetitions', '3', '--profile']);
  assert.equal(b.status, 0, b.stderr);
  const res = JSON.parse(b.stdout);
  for (const k of ['prefill_tokens_per_s', 'decode_tokens_per_s', 'decode_tokens_per_s_depth_4096', 'ttft_ms', 'load_s',
    'peak_rss_bytes', 'bandwidth_gb_per_s', 'weight_bytes_per_token', 'roofline_fraction', 'threads', 'backend']) {
    assert.ok(k in res, `bench --json lacks ${k}`);
  }
  assert.deepEqual(Object.keys(res.batched_decode_tokens_per_s), ['1', '4', '16']);
  // the rooflines divide by the best of the bandwidth probes made through the run
  if (res.backend.startsWith('native')) {
    const p: number[] = res.bandwidth_probes_gb_per_s;
    assert.ok(p.length >= 4 && p.every((x) => x > 0), JSON.stringify(p));
    assert.equal(res.bandwidth_gb_per_s, Math.max(...p));
    assert.ok(Math.abs(res.roofline_fraction - (res.decode_tokens_per_s * res.weight_bytes_per_token) / (res.bandwidth_gb_per_s * 1e9)) < 1e-9);
    assert.ok(Math.abs(res.batched_roofline_fraction['16'] - (res.batched_decode_tokens_per_s['16'] * res.batched_weight_bytes_per_step['16']) / (16 * res.bandwidth_gb_per_s * 1e9)) < 1e-9);
  }
  // the batched roofline counts the experts a step touches: one sequence reads what one token
  // reads (k = 2 of the 4 experts per layer); more sequences touch more of them. An expert here
  // is 2I×H + H×I = 12288 MXFP4 weights (17/32 byte each) = 6528 bytes, and the 3 forwards of a
  // run (2 steps after a warm-up) × 2 layers touch at most 2 more each: so 3·extra/6528 is a
  // whole number in (0, 12]; 16 sequences' 32 picks per layer leave an expert untouched rarely
  // (synth spreads the routing), so more than half of those 12 must be there
  const step = res.batched_weight_bytes_per_step;
  assert.deepEqual(Object.keys(step), ['1', '4', '16']);
  assert.equal(step['1'], res.weight_bytes_per_token);
  for (const b of ['4', '16']) {
    const n = (3 * (step[b] - step['1'])) / 6528;
    assert.ok(Math.abs(n - Math.round(n)) < 1e-6 && n <= 12 + 1e-6, `${b} sequences: ${n} extra expert reads`);
  }
  assert.ok((3 * (step['16'] - step['1'])) / 6528 > 6, JSON.stringify(step));
  for (const b of ['1', '4', '16']) {
    assert.ok(res.batched_roofline_tokens_per_s[b] > 0);
    assert.ok(Math.abs(res.batched_roofline_fraction[b] - res.batched_decode_tokens_per_s[b] / res.batched_roofline_tokens_per_s[b]) < 1e-9);
  }
  assert.ok(res.decode_tokens_per_s > 0);
  // --repetitions 3: three prefill and decode runs, their mean and sample standard deviation
  for (const k of ['prefill_tokens_per_s', 'decode_tokens_per_s']) {
    const runs: number[] = res[`${k}_runs`];
    assert.equal(runs.length, 3, k);
    const m = runs.reduce((a, x) => a + x, 0) / 3;
    assert.ok(Math.abs(res[k] - m) <= 1e-9 * m, `${k} is the mean of its runs`);
    const s = Math.sqrt(runs.reduce((a, x) => a + (x - m) ** 2, 0) / 2);
    assert.ok(Math.abs(res[`${k}_sd`] - s) <= 1e-9 * m && s > 0, `${k}_sd`);
  }
  assert.equal(res.kv_cache_dtype, 'f32');

  // --profile: each op of one 16-token prefill, and of 8 decode steps at 1 sequence and at the
  // largest batch (16). An expert pair (token, expert) is 128×64 + 64×64 multiply-adds.
  const pre = res.prefill_profile;
  assert.equal(pre.tokens_per_step, 16);
  assert.equal(pre.steps, 1);
  const preOp = (name: string) => pre.ops.find((o: { op: string }) => o.op === name);
  assert.equal(preOp('linear bf16 (64+32+32)x64').macs_per_step, 16 * 2 * 128 * 64);
  assert.equal(preOp('moe mxfp4 4x(128+64)x64').macs_per_step, 16 * 2 * 2 * (128 * 64 + 64 * 64));
  assert.equal(preOp('linear bf16 300x64').macs_per_step, 300 * 64, 'the head runs for the last position only');
  assert.deepEqual(Object.keys(res.decode_profile), ['1', '16']);
  for (const n of ['1', '16']) {
    const p = res.decode_profile[n];
    assert.equal(p.sequences, Number(n));
    assert.equal(p.tokens_per_step, Number(n));
    assert.equal(p.steps, 8);
    const op = (name: string) => {
      const r = p.ops.find((o: { op: string }) => o.op === name);
      assert.ok(r, `${n} sequences: no "${name}" in ${p.ops.map((o: { op: string }) => o.op).join(', ')}`);
      return r;
    };
    // once per layer per step, however many sequences the step carries
    assert.equal(op('attention').calls_per_step, 2);
    assert.equal(op('linear bf16 (64+32+32)x64').weight_bytes_per_step, 2 * (128 * 64 * 2));
    const head = op('linear bf16 300x64');
    assert.equal(head.calls_per_step, 1);
    assert.equal(head.weight_bytes_per_step, 300 * 64 * 2);
    assert.ok(Math.abs(head.gb_per_s - head.weight_bytes_per_step / (head.ms_per_step * 1e6)) < 1e-9 * head.gb_per_s);
    // the experts a step's tokens touch (6528 bytes each, above), each once: k = 2 per layer for
    // one token, more for 16
    const moe = op('moe mxfp4 4x(128+64)x64');
    assert.equal(moe.macs_per_step, Number(n) * 2 * 2 * (128 * 64 + 64 * 64));
    assert.ok(Math.abs(moe.gmac_per_s - moe.macs_per_step / (moe.ms_per_step * 1e6)) < 1e-9 * moe.gmac_per_s);
    const experts = moe.weight_bytes_per_step / 6528;
    assert.ok(Math.abs(experts - Math.round(experts)) < 1e-9, `${experts}`);
    if (n === '1') assert.equal(experts, 4);
    else assert.ok(experts > 4 && experts <= 8, `${experts}`);
    const sum = p.ops.reduce((a: number, o: { ms_per_step: number }) => a + o.ms_per_step, 0);
    assert.ok(Math.abs(p.ops_ms - sum) < 1e-9 * sum + 1e-12);
    assert.ok(p.ops_ms > 0 && p.ops_ms <= p.step_ms, `ops ${p.ops_ms} ms within the step's ${p.step_ms} ms`);
  }
});

test('the decode profile counts an op that calls others once (the reference MoE runs its experts through linear)', () => {
  const out = synthCheckpoint(small);
  const be = new ReferenceBackend();
  const model = loadModel(out, be);
  const cache = model.createCache({ numBlocks: 4, blockSize: 16 });
  const seq = cache.newSequence();
  const watch = watchOps(be);
  model.forward(packBatch([{ cache: seq, tokens: [1, 2, 3], logits: 'last' }]), cache);
  const groups = watch.stop();
  assert.equal(groups.get('moe mxfp4 4x(128+64)x64')?.calls, 2);
  assert.deepEqual([...groups.keys()].filter((k) => k.includes('mxfp4')), ['moe mxfp4 4x(128+64)x64']);
  // and the backend's own methods are back
  assert.ok(!Object.prototype.hasOwnProperty.call(be, 'linear') && !Object.prototype.hasOwnProperty.call(be, 'moeExperts'));
});

test('synth rejects an unknown preset and a missing --out', () => {
  const r = runCli(['synth', '--preset', 'nope', '--out', tmpDir()]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown preset "nope"/);
});
