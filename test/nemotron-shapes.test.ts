/**
 * Nemotron-H at shapes and flags the public fixtures do not use (synthetic weights): prefill in
 * one pass, token by token and in odd chunks agree, and the native backend agrees with the
 * reference. Guards against sizes read from the wrong field or assumed from the fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { createBackend } from '../src/backend/index.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { promptLogits } from '../src/engine/runner.js';
import { loadModel } from '../src/models/registry.js';
import { PRESETS, synthSpecFor, writeSynthetic } from '../src/weights/synth.js';
import { maxAbs, tmpDir } from './helpers.js';

const base = { ...PRESETS['nemotron-3-nano'], vocab_size: 97, hidden_size: 40, num_attention_heads: 5, num_key_value_heads: 5,
  head_dim: 12, mamba_num_heads: 6, mamba_head_dim: 5, ssm_state_size: 7, n_groups: 3, conv_kernel: 3, chunk_size: 5,
  n_routed_experts: 6, num_experts_per_tok: 3, moe_intermediate_size: 20, moe_shared_expert_intermediate_size: 24,
  intermediate_size: 36 };

const variants: Array<[string, Record<string, unknown>]> = [
  ['MHA, odd sizes, n_groups 3, conv 3, chunk 5', { hybrid_override_pattern: 'M*EM-', num_hidden_layers: 5 }],
  ['one group per head, conv 2, chunk 1, no norm_topk_prob', { hybrid_override_pattern: 'EMM*', num_hidden_layers: 4, n_groups: 6, conv_kernel: 2, chunk_size: 1, norm_topk_prob: false }],
  ['grouped routing without latent, Δ limits, layers_block_type', {
    hybrid_override_pattern: undefined, layers_block_type: ['mamba', 'moe', 'attention', 'mamba', 'mlp', 'moe'], num_hidden_layers: 6,
    n_group: 3, topk_group: 2, n_routed_experts: 9, num_experts_per_tok: 4, time_step_limit: [0.05, 0.5], n_groups: 1,
  }],
];

for (const [name, edit] of variants) {
  test(`shapes: ${name}`, () => {
    const cfg = { ...base, ...edit };
    const dir = path.join(tmpDir(), 'ckpt');
    writeSynthetic(synthSpecFor(cfg), dir, { seed: 7 });
    const ids = Array.from({ length: 23 }, (_, i) => (i * 31 + 5) % 97);
    const ref = loadModel(dir, new ReferenceBackend());
    const one = promptLogits(ref, ids);
    assert.ok(one.every(Number.isFinite));
    for (const chunk of [1, 4, 7]) assert.ok(maxAbs(promptLogits(ref, ids, chunk), one) < 1e-4, `chunk ${chunk}`);
    const nat = promptLogits(loadModel(dir, createBackend('auto')), ids, 6);
    assert.ok(maxAbs(nat, one) < 1e-3, `native ${maxAbs(nat, one)}`);
  });
}
