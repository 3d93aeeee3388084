/**
 * Synthetic Nemotron-H / Nemotron 3 checkpoints at the released shapes and tensor names (bf16,
 * or with the experts in ModelOpt's NVFP4 layout), for benchmarks. Shapes of the presets come
 * from the public configs (NOTES.md §2, §9).
 */
import type { SynthSpec, SynthTensor } from './synth.js';

const NANO = {
  architectures: ['NemotronHForCausalLM'], model_type: 'nemotron_h', attention_bias: false, attention_dropout: 0,
  bos_token_id: 1, chunk_size: 128, conv_kernel: 4, eos_token_id: 2, expand: 2, head_dim: 128, hidden_dropout: 0,
  hidden_size: 2688, hybrid_override_pattern: 'MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME',
  initializer_range: 0.02, intermediate_size: 1856, layer_norm_epsilon: 1e-5, mamba_head_dim: 64, mamba_hidden_act: 'silu',
  mamba_num_heads: 64, mamba_proj_bias: false, mamba_ssm_cache_dtype: 'float32', max_position_embeddings: 262144,
  mlp_bias: false, mlp_hidden_act: 'relu2', moe_intermediate_size: 1856, moe_shared_expert_intermediate_size: 3712,
  n_group: 1, n_groups: 8, n_routed_experts: 128, n_shared_experts: 1, norm_eps: 1e-5, norm_topk_prob: true,
  num_attention_heads: 32, num_experts_per_tok: 6, num_hidden_layers: 52, num_key_value_heads: 2, pad_token_id: 0,
  partial_rotary_factor: 1, residual_in_fp32: false, rope_theta: 10000, routed_scaling_factor: 2.5, sliding_window: null,
  ssm_state_size: 128, tie_word_embeddings: false, time_step_floor: 1e-4, time_step_max: 0.1, time_step_min: 0.001,
  topk_group: 1, torch_dtype: 'bfloat16', use_bias: false, use_conv_bias: true, vocab_size: 131072,
};

const SUPER_PATTERN = 'MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME';

export const NEMOTRON_PRESETS: Record<string, Record<string, unknown>> = {
  'nemotron-3-nano': NANO,
  'nemotron-3-super': {
    ...NANO, hidden_size: 4096, hybrid_override_pattern: SUPER_PATTERN, num_hidden_layers: SUPER_PATTERN.length,
    mamba_num_heads: 128, mamba_head_dim: 64, n_routed_experts: 512, num_experts_per_tok: 22, moe_intermediate_size: 2688,
    moe_latent_size: 1024, moe_shared_expert_intermediate_size: 5376, intermediate_size: 2688, routed_scaling_factor: 5.0,
    num_nextn_predict_layers: 1, mtp_hybrid_override_pattern: '*E', eos_token_id: [2, 11],
  },
};

/** Which linears a synthetic checkpoint stores quantised: none (all BF16), or the experts in NVFP4. */
export type NemotronQuant = 'bf16' | 'nvfp4';

/** e2m1 codes drawn uniformly have RMS ≈ 2.93; block scales drawn from e4m3 exponents 12–13 ≈ 65 */
const E2M1_RMS = 2.93, NVFP4_SCALE_RMS = 65, NVFP4_SCALE_EXP = 13;

export function nemotronHSpec(config: Record<string, unknown>, quant: NemotronQuant = 'bf16'): SynthSpec {
  const c = config as Record<string, number> & Record<string, unknown>;
  const H = c.hidden_size, V = c.vocab_size;
  const t: SynthTensor[] = [];
  const dense = (name: string, shape: number[], fanIn: number) =>
    t.push({ name, dtype: 'BF16', shape, fill: { kind: 'bf16-uniform', scale: 1 / Math.sqrt(fanIn) } });
  // ModelOpt NVFP4 (NOTES.md §9.4): codes [out, in/2], e4m3 scales [out, in/16], f32 global scale;
  // dequantised values then have RMS ≈ 1/√fan_in, as the bf16 ones
  const nvfp4 = (name: string, shape: number[], fanIn: number) => {
    const base = name.replace(/\.weight$/, '');
    t.push({ name, dtype: 'U8', shape: [shape[0], shape[1] / 2], fill: { kind: 'u8-random' } });
    t.push({ name: `${base}.weight_scale`, dtype: 'F8_E4M3', shape: [shape[0], shape[1] / 16], fill: { kind: 'e4m3-scale', exp: NVFP4_SCALE_EXP } });
    t.push({ name: `${base}.weight_scale_2`, dtype: 'F32', shape: [], fill: { kind: 'f32-const', value: 1 / (Math.sqrt(fanIn) * E2M1_RMS * NVFP4_SCALE_RMS) } });
    t.push({ name: `${base}.input_scale`, dtype: 'F32', shape: [], fill: { kind: 'f32-const', value: 1 } });
  };
  const expert = quant === 'nvfp4' ? nvfp4 : dense;
  const konst = (name: string, shape: number[], value: number) => t.push({ name, dtype: 'BF16', shape, fill: { kind: 'bf16-const', value } });
  const block = (p: string, letter: string) => {
    konst(`${p}.norm.weight`, [H], 1);
    const m = `${p}.mixer`;
    if (letter === 'M') {
      const nh = c.mamba_num_heads, di = nh * c.mamba_head_dim, GN = (c.n_groups ?? 1) * c.ssm_state_size, K = c.conv_kernel;
      dense(`${m}.in_proj.weight`, [2 * di + 2 * GN + nh, H], H);
      dense(`${m}.conv1d.weight`, [di + 2 * GN, 1, K], K);
      konst(`${m}.conv1d.bias`, [di + 2 * GN], 0);
      konst(`${m}.dt_bias`, [nh], -2);
      konst(`${m}.A_log`, [nh], 0);
      konst(`${m}.D`, [nh], 1);
      konst(`${m}.norm.weight`, [di], 1);
      dense(`${m}.out_proj.weight`, [H, di], di);
    } else if (letter === '*') {
      const q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
      dense(`${m}.q_proj.weight`, [q, H], H);
      dense(`${m}.k_proj.weight`, [kv, H], H);
      dense(`${m}.v_proj.weight`, [kv, H], H);
      dense(`${m}.o_proj.weight`, [H, q], q);
    } else if (letter === '-') {
      dense(`${m}.up_proj.weight`, [c.intermediate_size, H], H);
      dense(`${m}.down_proj.weight`, [H, c.intermediate_size], c.intermediate_size);
    } else if (letter === 'E') {
      const E = c.n_routed_experts, I = c.moe_intermediate_size, L = c.moe_latent_size || H, S = c.moe_shared_expert_intermediate_size;
      dense(`${m}.gate.weight`, [E, H], H);
      konst(`${m}.gate.e_score_correction_bias`, [E], 0);
      for (let e = 0; e < E; e++) {
        expert(`${m}.experts.${e}.up_proj.weight`, [I, L], L);
        expert(`${m}.experts.${e}.down_proj.weight`, [L, I], I);
      }
      if (c.moe_latent_size) {
        dense(`${m}.fc1_latent_proj.weight`, [L, H], H);
        dense(`${m}.fc2_latent_proj.weight`, [H, L], L);
      }
      expert(`${m}.shared_experts.up_proj.weight`, [S, H], H);
      expert(`${m}.shared_experts.down_proj.weight`, [H, S], S);
    }
  };
  dense('backbone.embeddings.weight', [V, H], 1);
  const letters: Record<string, string> = { mamba: 'M', linear_attention: 'M', attention: '*', full_attention: '*', mlp: '-', moe: 'E' };
  const pattern = c.hybrid_override_pattern !== undefined ? String(c.hybrid_override_pattern)
    : (c.layers_block_type as unknown as string[]).map((k) => letters[k] ?? '?').join('');
  [...pattern].forEach((ch, i) => block(`backbone.layers.${i}`, ch));
  konst('backbone.norm_f.weight', [H], 1);
  dense('lm_head.weight', [V, H], H);
  if (c.num_nextn_predict_layers && c.mtp_hybrid_override_pattern) {
    const mtp = String(c.mtp_hybrid_override_pattern);
    konst('mtp.layers.0.enorm.weight', [H], 1);
    konst('mtp.layers.0.hnorm.weight', [H], 1);
    dense('mtp.layers.0.eh_proj.weight', [H, 2 * H], 2 * H);
    [...mtp].forEach((ch, i) => block(`mtp.layers.${i}`, ch));
    konst(`mtp.layers.${mtp.length - 1}.final_layernorm.weight`, [H], 1);
  }
  const cfg: Record<string, unknown> = { ...config };
  if (quant === 'nvfp4') {
    // as ModelOpt's unified export writes it; everything but the experts stays BF16
    cfg.quantization_config = {
      quant_method: 'modelopt', quant_algo: 'NVFP4', group_size: 16, kv_cache_quant_algo: null,
      exclude_modules: ['lm_head', 'backbone.embeddings', '*.mixer.in_proj', '*.mixer.out_proj', '*.mixer.q_proj', '*.mixer.k_proj',
        '*.mixer.v_proj', '*.mixer.o_proj', '*.mixer.gate', '*.mixer.fc1_latent_proj', '*.mixer.fc2_latent_proj', '*.mixer.up_proj',
        '*.mixer.down_proj', 'mtp.layers.0.eh_proj'],
    };
  }
  return { config: cfg, tensors: t };
}
