/**
 * Nemotron-H / Nemotron 3 config.json → typed sizes and flags (NOTES.md §2). Every value comes
 * from the file; fields of a block type are only required when the pattern uses that type.
 */
import { ConfigReader } from '../weights/config.js';

/** One residual block: `M` Mamba-2, `*` attention, `-` dense relu² MLP, `E` MoE. */
export type BlockKind = 'mamba' | 'attention' | 'mlp' | 'moe';

const LETTERS: Record<string, BlockKind> = { M: 'mamba', '*': 'attention', '-': 'mlp', E: 'moe' };
const NAMES: Record<string, BlockKind> = {
  mamba: 'mamba', linear_attention: 'mamba', attention: 'attention', full_attention: 'attention', mlp: 'mlp', moe: 'moe',
};

export interface MambaConfig {
  nHeads: number;
  headDim: number;
  /** d_inner = nHeads·headDim (not expand·hidden) */
  dInner: number;
  nGroups: number;
  stateSize: number;
  convKernel: number;
  chunkSize: number;
  convBias: boolean;
  projBias: boolean;
  /** Δ limits (config `time_step_limit`; default (0, ∞): no clamp, as the production kernels) */
  dtMin: number;
  dtMax: number;
}

export interface MoeConfig {
  nExperts: number;
  topK: number;
  intermediate: number;
  sharedIntermediate: number;
  nShared: number;
  /** moe_latent_size (LatentMoE), 0 = experts work at hidden width */
  latent: number;
  /** router expert groups (n_group; not Mamba's n_groups) and how many of them are kept */
  nGroup: number;
  topkGroup: number;
  scaling: number;
  normTopk: boolean;
}

export interface NemotronHConfig {
  vocabSize: number;
  hidden: number;
  layers: BlockKind[];
  eps: number;
  tieEmbeddings: boolean;
  attn: { nHeads: number; nKv: number; headDim: number; bias: boolean } | null;
  mamba: MambaConfig | null;
  mlp: { intermediate: number; bias: boolean } | null;
  moe: MoeConfig | null;
  /** MTP: block kinds of one depth and the number of depths (num_nextn_predict_layers) */
  mtp: { layers: BlockKind[]; depth: number } | null;
  maxPositions: number;
  eosTokenIds: number[];
}

function parsePattern(c: ConfigReader, field: string, listField: string): BlockKind[] | undefined {
  const list = c.strList(listField);
  if (list) {
    return list.map((name, i) => {
      const k = NAMES[name];
      c.check(k !== undefined, `${listField}[${i}] is "${name}"; expected one of ${Object.keys(NAMES).join(', ')}`);
      return k;
    });
  }
  if (!c.has(field)) return undefined;
  const s = c.str(field);
  return [...s].map((ch, i) => {
    const k = LETTERS[ch];
    c.check(k !== undefined, `${field} has unknown letter "${ch}" at position ${i} (expected M, *, - or E)`);
    return k;
  });
}

export function parseNemotronHConfig(c: ConfigReader): NemotronHConfig {
  const nLayers = c.int('num_hidden_layers');
  const layers = parsePattern(c, 'hybrid_override_pattern', 'layers_block_type');
  c.check(layers !== undefined, 'field "hybrid_override_pattern" is missing (or give "layers_block_type")');
  c.check(layers!.length === nLayers,
    `hybrid_override_pattern has ${layers!.length} layers but num_hidden_layers is ${nLayers}`);
  const hidden = c.int('hidden_size');
  const eps = c.has('layer_norm_epsilon') ? c.num('layer_norm_epsilon', { positive: true })
    : c.has('norm_eps') ? c.num('norm_eps', { positive: true }) : c.num('rms_norm_eps', { positive: true, default: 1e-5 });

  let mtp: NemotronHConfig['mtp'] = null;
  const depth = c.int('num_nextn_predict_layers', { min: 0, default: 0 });
  if (depth > 0) {
    const ml = parsePattern(c, 'mtp_hybrid_override_pattern', 'mtp_layers_block_type');
    c.check(ml !== undefined && ml.length > 0, 'num_nextn_predict_layers > 0 needs "mtp_hybrid_override_pattern"');
    mtp = { layers: ml!, depth };
  }
  const used = new Set([...layers!, ...(mtp ? mtp.layers : [])]);

  let attn: NemotronHConfig['attn'] = null;
  if (used.has('attention')) {
    const nHeads = c.int('num_attention_heads');
    const nKv = c.int('num_key_value_heads', { default: nHeads });
    c.check(nHeads % nKv === 0, `num_attention_heads (${nHeads}) must be a multiple of num_key_value_heads (${nKv})`);
    const headDim = c.has('head_dim') ? c.int('head_dim')
      : c.has('attention_head_dim') ? c.int('attention_head_dim') : hidden / nHeads;
    c.check(Number.isInteger(headDim), `head_dim is missing and hidden_size (${hidden}) is not a multiple of num_attention_heads (${nHeads})`);
    attn = { nHeads, nKv, headDim, bias: c.bool('attention_bias', false) };
  }

  let mamba: MambaConfig | null = null;
  if (used.has('mamba')) {
    const nHeads = c.int('mamba_num_heads');
    const headDim = c.int('mamba_head_dim');
    const nGroups = c.int('n_groups', { default: 1 });
    c.check(nHeads % nGroups === 0, `mamba_num_heads (${nHeads}) must be a multiple of n_groups (${nGroups})`);
    const act = c.str('mamba_hidden_act', { default: 'silu' });
    c.check(act === 'silu' || act === 'swish', `mamba_hidden_act "${act}" is not supported (expected "silu")`);
    let dtMin = 0;
    let dtMax = Infinity;
    const lim = c.json.time_step_limit;
    if (lim !== undefined && lim !== null) {
      const ok = Array.isArray(lim) && lim.length === 2 && lim.every((v) => typeof v === 'number' || v === null || v === 'inf');
      c.check(ok, `field "time_step_limit" is ${JSON.stringify(lim)}; expected [min, max]`);
      const [lo, hi] = lim as unknown[];
      dtMin = typeof lo === 'number' ? lo : 0;
      dtMax = typeof hi === 'number' ? hi : Infinity;
    }
    mamba = {
      nHeads, headDim, dInner: nHeads * headDim, nGroups,
      stateSize: c.int('ssm_state_size'),
      convKernel: c.int('conv_kernel'),
      chunkSize: c.int('chunk_size', { default: 128 }),
      convBias: c.bool('use_conv_bias', true),
      projBias: c.bool('mamba_proj_bias', c.bool('use_bias', false)),
      dtMin, dtMax,
    };
  }

  const mlpAct = c.str('mlp_hidden_act', { default: 'relu2' });
  if (used.has('mlp') || used.has('moe')) {
    c.check(mlpAct === 'relu2', `mlp_hidden_act "${mlpAct}" is not supported (expected "relu2")`);
  }
  const mlp = used.has('mlp') ? { intermediate: c.int('intermediate_size'), bias: c.bool('mlp_bias', false) } : null;

  let moe: MoeConfig | null = null;
  if (used.has('moe')) {
    const nExperts = c.int('n_routed_experts');
    const topK = c.int('num_experts_per_tok');
    const nGroup = c.int('n_group', { default: 1 });
    const topkGroup = c.int('topk_group', { default: 1 });
    c.check(nExperts % nGroup === 0, `n_routed_experts (${nExperts}) must be a multiple of n_group (${nGroup})`);
    c.check(topkGroup <= nGroup, `topk_group (${topkGroup}) exceeds n_group (${nGroup})`);
    c.check(topK <= (nExperts / nGroup) * topkGroup,
      `num_experts_per_tok (${topK}) exceeds the experts in topk_group groups (${(nExperts / nGroup) * topkGroup})`);
    const nShared = c.int('n_shared_experts', { min: 0, default: 1 });
    moe = {
      nExperts, topK, nGroup, topkGroup, nShared,
      intermediate: c.int('moe_intermediate_size'),
      sharedIntermediate: nShared > 0 ? c.int('moe_shared_expert_intermediate_size') : 0,
      latent: c.int('moe_latent_size', { min: 0, default: 0 }),
      scaling: c.num('routed_scaling_factor', { default: 1 }),
      normTopk: c.bool('norm_topk_prob', true),
    };
  }

  const eos = c.json.eos_token_id;
  return {
    vocabSize: c.int('vocab_size'),
    hidden, layers: layers!, eps,
    tieEmbeddings: c.bool('tie_word_embeddings', false),
    attn, mamba, mlp, moe, mtp,
    maxPositions: c.int('max_position_embeddings', { default: 1 << 20 }),
    eosTokenIds: Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [],
  };
}
