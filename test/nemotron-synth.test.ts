/** `tessera synth` Nemotron 3 presets: the layouts load and run (shrunk), and bench reports on them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseNemotronHConfig } from '../src/models/nemotron-h-config.js';
import { ConfigReader } from '../src/weights/config.js';
import { Checkpoint } from '../src/weights/checkpoint.js';
import { E2M1_VALUES, fp8e4m3ToF32 } from '../src/weights/dtypes.js';
import { PRESETS } from '../src/weights/synth.js';
import { runCli, synthCheckpoint, tmpDir } from './helpers.js';

test('nemotron-3-nano and nemotron-3-super presets are valid configs at the released sizes', () => {
  const nano = parseNemotronHConfig(new ConfigReader(PRESETS['nemotron-3-nano'] as any, 'nano'));
  assert.equal(nano.layers.length, 52);
  assert.deepEqual([nano.layers.filter((k) => k === 'mamba').length, nano.layers.filter((k) => k === 'moe').length,
    nano.layers.filter((k) => k === 'attention').length], [23, 23, 6]);
  const sup = parseNemotronHConfig(new ConfigReader(PRESETS['nemotron-3-super'] as any, 'super'));
  assert.equal(sup.layers.length, 88);
  assert.equal(sup.moe!.latent, 1024);
  assert.deepEqual(sup.mtp, { layers: ['attention', 'moe'], depth: 1 });
});

// the Super layout (LatentMoE, MTP) at toy sizes
const small = {
  ...PRESETS['nemotron-3-super'],
  hidden_size: 64, hybrid_override_pattern: 'ME*E-M', num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 16, mamba_num_heads: 4, mamba_head_dim: 8, ssm_state_size: 8, n_groups: 2, chunk_size: 4, n_routed_experts: 8,
  num_experts_per_tok: 2, moe_intermediate_size: 32, moe_latent_size: 16, moe_shared_expert_intermediate_size: 32,
  intermediate_size: 48, vocab_size: 300,
};

test('synth a Super-layout checkpoint: it loads, generates (plainly and speculatively) and benches', () => {
  const dir = tmpDir();
  const cfgFile = path.join(dir, 'in.json');
  fs.writeFileSync(cfgFile, JSON.stringify(small));
  const out = path.join(dir, 'ckpt');
  const r = runCli(['synth', '--config', cfgFile, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const g = runCli(['generate', '--model', out, '--ids', '1,2,3', '--max-new-tokens', '6', '--json']);
  assert.equal(g.status, 0, g.stderr);
  const plain = JSON.parse(g.stdout).output_ids;
  assert.equal(plain.length, 6);
  const s = runCli(['generate', '--model', out, '--ids', '1,2,3', '--max-new-tokens', '6', '--json', '--speculative-tokens', '2']);
  assert.equal(s.status, 0, s.stderr);
  assert.deepEqual(JSON.parse(s.stdout).output_ids, plain);
  const lf = path.join(dir, 'l.f32');
  assert.equal(runCli(['logits', '--model', out, '--ids', '5,6,7,8,9,10', '--out', lf]).status, 0);
  const buf = fs.readFileSync(lf);
  for (let i = 0; i < buf.length; i += 4) assert.ok(Number.isFinite(buf.readFloatLE(i)));
  // a 16-bit cache, filled at depth with stand-in values
  const b = runCli(['bench', '--model', out, '--json', '--prompt-tokens', '16', '--decode-tokens', '4', '--depth', '32', '--batched-steps', '2', '--kv-cache-dtype', 'bf16']);
  assert.equal(b.status, 0, b.stderr);
  const res = JSON.parse(b.stdout);
  assert.equal(res.kv_cache_dtype, 'bf16');
  assert.ok(res.decode_tokens_per_s > 0 && res.prefill_tokens_per_s > 0 && res.decode_tokens_per_s_depth_4096 > 0);
  assert.ok(res.weight_bytes_per_token > 0);
});

test('synth --quant nvfp4 writes the experts in ModelOpt\'s NVFP4 layout at the bf16 magnitudes, and it loads and runs', () => {
  const dir = tmpDir();
  const cfgFile = path.join(dir, 'in.json');
  fs.writeFileSync(cfgFile, JSON.stringify(small));
  const q = path.join(dir, 'nvfp4'), b = path.join(dir, 'bf16');
  assert.equal(runCli(['synth', '--config', cfgFile, '--out', q, '--quant', 'nvfp4']).status, 0);
  assert.equal(runCli(['synth', '--config', cfgFile, '--out', b]).status, 0);
  const ck = new Checkpoint(q);
  try {
    // layer 1 is E: expert 0's up_proj is [I = 32, L = 16]; the shared expert sees the full hidden size (64)
    const e = 'backbone.layers.1.mixer.experts.0.up_proj';
    assert.deepEqual([ck.info(`${e}.weight`)!.dtype, ck.info(`${e}.weight`)!.shape], ['U8', [32, 8]]);
    assert.deepEqual([ck.info(`${e}.weight_scale`)!.dtype, ck.info(`${e}.weight_scale`)!.shape], ['F8_E4M3', [32, 1]]);
    assert.deepEqual([ck.info(`${e}.weight_scale_2`)!.dtype, ck.info(`${e}.weight_scale_2`)!.shape], ['F32', []]);
    assert.equal(ck.info('backbone.layers.1.mixer.shared_experts.down_proj.weight_scale')!.dtype, 'F8_E4M3');
    assert.equal(ck.info('backbone.layers.0.mixer.in_proj.weight')!.dtype, 'BF16');
    assert.equal(ck.info('backbone.layers.4.mixer.up_proj.weight')!.dtype, 'BF16');  // the dense MLP stays BF16
    // dequantised RMS ≈ 1/√fan_in, as for the bf16 experts (fan_in = 64 for the shared up_proj)
    const s = 'backbone.layers.1.mixer.shared_experts.up_proj';
    const codes = ck.tensor(`${s}.weight`, 'U8').data, scales = ck.tensor(`${s}.weight_scale`, 'F8_E4M3').data;
    const g = new Float32Array(ck.tensor(`${s}.weight_scale_2`, 'F32').data.slice().buffer)[0];
    let sq = 0;
    for (let i = 0; i < codes.length; i++) {
      const sc = fp8e4m3ToF32(scales[Math.floor((2 * i) / 16)]) * g;
      sq += (E2M1_VALUES[codes[i] & 15] * sc) ** 2 + (E2M1_VALUES[codes[i] >> 4] * sc) ** 2;
    }
    const rms = Math.sqrt(sq / (2 * codes.length));
    assert.ok(Math.abs(rms * Math.sqrt(64) - 1) < 0.25, `dequantised RMS ${rms} vs 1/√64`);
  } finally {
    ck.close();
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(q, 'config.json'), 'utf8'));
  assert.equal(cfg.quantization_config.quant_algo, 'NVFP4');
  const lf = path.join(dir, 'l.f32');
  assert.equal(runCli(['logits', '--model', q, '--ids', '5,6,7,8,9,10', '--out', lf]).status, 0);
  const buf = fs.readFileSync(lf);
  for (let i = 0; i < buf.length; i += 4) assert.ok(Number.isFinite(buf.readFloatLE(i)));
  // the experts are read as NVFP4 (about a quarter of their bf16 bytes per token)
  const bench = (d: string) => JSON.parse(runCli(['bench', '--model', d, '--json', '--prompt-tokens', '8', '--decode-tokens', '2', '--depth', '8', '--batched-steps', '1']).stdout);
  assert.ok(bench(q).weight_bytes_per_token < bench(b).weight_bytes_per_token);
  // --quant is for Nemotron-H only, and names a known format
  const bad = runCli(['synth', '--preset', 'gpt-oss-tiny', '--quant', 'nvfp4', '--out', path.join(dir, 'x')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--quant: gpt-oss/);
  const bad2 = runCli(['synth', '--config', cfgFile, '--quant', 'fp4', '--out', path.join(dir, 'y')]);
  assert.notEqual(bad2.status, 0);
  assert.match(bad2.stderr, /unknown format "fp4"/);
});

test('--dense-weights int8 re-quantises Nemotron-H projections and experts: fewer bytes, the reference\'s logits, close to bf16', () => {
  const ck = synthCheckpoint(small);
  const dir = path.dirname(ck);
  const logits = (...args: string[]) => {
    const f = path.join(dir, `l${args.join('_')}.f32`);
    const r = runCli(['logits', '--model', ck, '--ids', '5,6,7,8,9,10', '--out', f, ...args]);
    assert.equal(r.status, 0, r.stderr);
    const b = fs.readFileSync(f);
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  };
  const bf = logits(), q = logits('--dense-weights', 'int8'), qRef = logits('--dense-weights', 'int8', '--backend', 'reference');
  let dq = 0, dRef = 0, rms = 0;
  for (let i = 0; i < bf.length; i++) {
    dq = Math.max(dq, Math.abs(q[i] - bf[i]));
    dRef = Math.max(dRef, Math.abs(q[i] - qRef[i]));
    rms += bf[i] * bf[i];
  }
  rms = Math.sqrt(rms / bf.length);
  assert.ok(dq > 0, 'int8 weights change the logits');
  assert.ok(dq < 0.25 * rms, `int8 logits ${dq} from bf16 (logit RMS ${rms})`);
  assert.ok(dRef < 1e-4, `native vs reference with int8 weights: ${dRef}`);
  const bench = (...args: string[]) => JSON.parse(runCli(['bench', '--model', ck, '--json', '--prompt-tokens', '8', '--decode-tokens', '2', '--depth', '8', '--batched-steps', '1', ...args]).stdout);
  const b8 = bench('--dense-weights', 'int8'), b16 = bench();
  assert.ok(b8.weight_bytes_per_token < 0.6 * b16.weight_bytes_per_token, `${b8.weight_bytes_per_token} vs ${b16.weight_bytes_per_token}`);
});
