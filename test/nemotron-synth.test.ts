/** `tessera synth` Nemotron 3 presets: the layouts load and run (shrunk), and bench reports on them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseNemotronHConfig } from '../src/models/nemotron-h-config.js';
import { ConfigReader } from '../src/weights/config.js';
import { PRESETS } from '../src/weights/synth.js';
import { runCli, tmpDir } from './helpers.js';

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
