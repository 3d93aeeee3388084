/**
 * Synthetic checkpoints at the real shapes, in the released layout (config.json, safetensors
 * shards, model.safetensors.index.json), for benchmarks: no weights can be downloaded here.
 * Values are random but scaled so activations stay finite and the router spreads tokens over
 * the experts: dense bf16 weights ≈ ±1/√fan_in, MXFP4 codes uniform with E8M0 scales chosen for
 * the same magnitude, norms 1, biases and sinks 0. Tensors stream to disk in bounded chunks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../util/errors.js';
import type { DType } from './dtypes.js';
import { DTYPE_BYTES } from './dtypes.js';
import { NEMOTRON_PRESETS, nemotronHSpec, type NemotronQuant } from './synth-nemotron.js';

export interface SynthTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** how to fill it */
  fill: { kind: 'bf16-uniform'; scale: number } | { kind: 'bf16-const'; value: number } | { kind: 'u8-random' } | { kind: 'u8-scale'; byte: number }
    | { kind: 'e4m3-scale'; exp: number } | { kind: 'f32-const'; value: number };
}

export interface SynthSpec {
  config: Record<string, unknown>;
  tensors: SynthTensor[];
}

const GPT_OSS_BASE = {
  architectures: ['GptOssForCausalLM'], model_type: 'gpt_oss', attention_bias: true, attention_dropout: 0,
  head_dim: 64, hidden_act: 'silu', hidden_size: 2880, initial_context_length: 4096, initializer_range: 0.02,
  intermediate_size: 2880, max_position_embeddings: 131072, num_attention_heads: 64, num_key_value_heads: 8,
  num_experts_per_tok: 4, experts_per_token: 4, rms_norm_eps: 1e-5, rope_theta: 150000,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 32, original_max_position_embeddings: 4096, rope_type: 'yarn', truncate: false },
  sliding_window: 128, swiglu_limit: 7, tie_word_embeddings: false, vocab_size: 201088,
  eos_token_id: 200002, pad_token_id: 199999, use_cache: true, output_router_logits: false, router_aux_loss_coef: 0.9,
  quantization_config: { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] },
};

export const PRESETS: Record<string, Record<string, unknown>> = {
  'gpt-oss-20b': { ...GPT_OSS_BASE, num_hidden_layers: 24, num_local_experts: 32 },
  'gpt-oss-120b': { ...GPT_OSS_BASE, num_hidden_layers: 36, num_local_experts: 128 },
  /** the real vocabulary and config keys at toy sizes (≈ 60 MB): for trying the server and for tests */
  'gpt-oss-tiny': {
    ...GPT_OSS_BASE, num_hidden_layers: 2, num_local_experts: 4, num_experts_per_tok: 2, experts_per_token: 2,
    hidden_size: 64, intermediate_size: 64, head_dim: 16, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: 16,
  },
  ...NEMOTRON_PRESETS,
};

/** E8M0 byte whose MXFP4 values have RMS ≈ 1/√fanIn (e2m1 codes have RMS ≈ 2.93). */
function mxfp4ScaleByte(fanIn: number): number {
  return 127 + Math.round(Math.log2(1 / Math.sqrt(fanIn) / 2.93));
}

export function gptOssSpec(config: Record<string, unknown>): SynthSpec {
  const c = config as Record<string, number> & { layer_types?: string[] };
  const H = c.hidden_size, I = c.intermediate_size, d = c.head_dim, nq = c.num_attention_heads;
  const nkv = c.num_key_value_heads, E = c.num_local_experts, V = c.vocab_size, L = c.num_hidden_layers;
  const cfg = { ...config, layer_types: Array.from({ length: L }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')) };
  const t: SynthTensor[] = [];
  const dense = (name: string, shape: number[], fanIn: number) =>
    t.push({ name, dtype: 'BF16', shape, fill: { kind: 'bf16-uniform', scale: 1 / Math.sqrt(fanIn) } });
  const konst = (name: string, shape: number[], value: number) => t.push({ name, dtype: 'BF16', shape, fill: { kind: 'bf16-const', value } });
  dense('model.embed_tokens.weight', [V, H], 1);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    konst(`${p}.input_layernorm.weight`, [H], 1);
    dense(`${p}.self_attn.q_proj.weight`, [nq * d, H], H); konst(`${p}.self_attn.q_proj.bias`, [nq * d], 0);
    dense(`${p}.self_attn.k_proj.weight`, [nkv * d, H], H); konst(`${p}.self_attn.k_proj.bias`, [nkv * d], 0);
    dense(`${p}.self_attn.v_proj.weight`, [nkv * d, H], H); konst(`${p}.self_attn.v_proj.bias`, [nkv * d], 0);
    dense(`${p}.self_attn.o_proj.weight`, [H, nq * d], nq * d); konst(`${p}.self_attn.o_proj.bias`, [H], 0);
    konst(`${p}.self_attn.sinks`, [nq], 0);
    konst(`${p}.post_attention_layernorm.weight`, [H], 1);
    dense(`${p}.mlp.router.weight`, [E, H], H); konst(`${p}.mlp.router.bias`, [E], 0);
    t.push({ name: `${p}.mlp.experts.gate_up_proj_blocks`, dtype: 'U8', shape: [E, 2 * I, H / 32, 16], fill: { kind: 'u8-random' } });
    t.push({ name: `${p}.mlp.experts.gate_up_proj_scales`, dtype: 'U8', shape: [E, 2 * I, H / 32], fill: { kind: 'u8-scale', byte: mxfp4ScaleByte(H) } });
    konst(`${p}.mlp.experts.gate_up_proj_bias`, [E, 2 * I], 0);
    t.push({ name: `${p}.mlp.experts.down_proj_blocks`, dtype: 'U8', shape: [E, H, I / 32, 16], fill: { kind: 'u8-random' } });
    t.push({ name: `${p}.mlp.experts.down_proj_scales`, dtype: 'U8', shape: [E, H, I / 32], fill: { kind: 'u8-scale', byte: mxfp4ScaleByte(I) } });
    konst(`${p}.mlp.experts.down_proj_bias`, [E, H], 0);
  }
  konst('model.norm.weight', [H], 1);
  dense('lm_head.weight', [V, H], H);
  return { config: cfg, tensors: t };
}

/** xorshift128+ over 32-bit halves: fast, seeded, good enough for weights. */
class Rng {
  private s0: number;
  private s1: number;
  constructor(seed: number) {
    this.s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.s1 = (seed * 2654435761) >>> 0 || 2;
  }
  fill(out: Uint32Array): void {
    let a = this.s0, b = this.s1;
    for (let i = 0; i < out.length; i++) {
      let x = a;
      const y = b;
      a = y;
      x ^= x << 11;
      x ^= x >>> 8;
      b = (x ^ y ^ (y >>> 19)) >>> 0;
      out[i] = (b + y) >>> 0;
    }
    this.s0 = a;
    this.s1 = b;
  }
}

function fillChunk(t: SynthTensor, buf: Uint8Array, rng: Rng): void {
  const f = t.fill;
  if (f.kind === 'u8-random') {
    const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
    rng.fill(u);
    return;
  }
  if (f.kind === 'u8-scale') {
    // ±1 around the target scale so the exponent varies from block to block
    const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
    rng.fill(u);
    for (let i = 0; i < buf.length; i++) buf[i] = f.byte - 1 + (buf[i] % 3);
    return;
  }
  if (f.kind === 'e4m3-scale') {
    // positive e4m3 with exponent field exp or exp − 1 and a random mantissa
    const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
    rng.fill(u);
    for (let i = 0; i < buf.length; i++) buf[i] = ((f.exp - (buf[i] & 1)) << 3) | ((buf[i] >> 1) & 7);
    return;
  }
  if (f.kind === 'f32-const') {
    new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2).fill(f.value);
    return;
  }
  const h = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength >> 1);
  if (f.kind === 'bf16-const') {
    const bits = new Uint16Array(new Float32Array([f.value]).buffer)[1];
    h.fill(bits);
    return;
  }
  // magnitudes in [scale/2, 2·scale): exponent = e or e−1, random mantissa and sign
  const e = Math.floor(Math.log2(f.scale)) + 127;
  const u = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
  rng.fill(u);
  for (let i = 0; i < u.length; i++) {
    const r = u[i];
    const lo = (r & 0x807f) | ((e - ((r >>> 7) & 1)) << 7);
    const hi = ((r >>> 16) & 0x807f) | ((e - ((r >>> 23) & 1)) << 7);
    u[i] = (lo | (hi << 16)) >>> 0;
  }
}

export interface SynthProgress {
  (doneBytes: number, totalBytes: number): void;
}

/** Write the checkpoint: shards of at most `shardBytes`, each tensor streamed in 64 MiB chunks. */
export function writeSynthetic(spec: SynthSpec, outDir: string, opts: { shardBytes?: number; seed?: number; progress?: SynthProgress } = {}): void {
  fs.mkdirSync(outDir, { recursive: true });
  const shardBytes = opts.shardBytes ?? 4 * 1024 ** 3;
  const sizes = spec.tensors.map((t) => t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
  const shards: number[][] = [[]];
  let cur = 0;
  spec.tensors.forEach((_, i) => {
    if (cur > 0 && cur + sizes[i] > shardBytes) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1].push(i);
    cur += sizes[i];
  });
  const total = sizes.reduce((a, b) => a + b, 0);
  const rng = new Rng(opts.seed ?? 1234);
  const weightMap: Record<string, string> = {};
  const CHUNK = 64 * 1024 * 1024;
  const buf = new Uint8Array(CHUNK + 4);
  let done = 0;
  shards.forEach((idx, s) => {
    const file = shards.length === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const header: Record<string, unknown> = { __metadata__: { format: 'pt', generator: 'tessera synth' } };
    let off = 0;
    for (const i of idx) {
      const t = spec.tensors[i];
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + sizes[i]] };
      off += sizes[i];
      weightMap[t.name] = file;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
    const fd = fs.openSync(path.join(outDir, file), 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      fs.writeSync(fd, len);
      fs.writeSync(fd, Buffer.from(json));
      for (const i of idx) {
        let left = sizes[i];
        while (left > 0) {
          const n = Math.min(left, CHUNK);
          // fill whole 32-bit words, write exactly n bytes
          fillChunk(spec.tensors[i], buf.subarray(0, (n + 3) & ~3), rng);
          fs.writeSync(fd, buf.subarray(0, n));
          left -= n;
          done += n;
          opts.progress?.(done, total);
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  });
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(spec.config, null, 2));
  if (shards.length > 1) {
    fs.writeFileSync(path.join(outDir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
}

/** Weight formats `synth --quant` offers (gpt-oss is always released with MXFP4 experts). */
export const SYNTH_QUANTS = ['bf16', 'nvfp4'] as const;

export function synthSpecFor(presetOrConfig: string | Record<string, unknown>, quant?: string): SynthSpec {
  const config = typeof presetOrConfig === 'string' ? PRESETS[presetOrConfig] : presetOrConfig;
  if (!config) throw new InputError(`--preset: unknown preset "${presetOrConfig}" (known: ${Object.keys(PRESETS).join(', ')})`);
  if (quant !== undefined && !(SYNTH_QUANTS as readonly string[]).includes(quant)) {
    throw new InputError(`--quant: unknown format "${quant}" (known: ${SYNTH_QUANTS.join(', ')})`);
  }
  const mt = config.model_type;
  if (mt === 'gpt_oss') {
    if (quant !== undefined) throw new InputError('--quant: gpt-oss checkpoints are written as released (MXFP4 experts, BF16 elsewhere); drop --quant');
    return gptOssSpec(config);
  }
  if (mt === 'nemotron_h') return nemotronHSpec(config, quant as NemotronQuant | undefined);
  throw new InputError(`synth: model_type "${String(mt)}" has no synthetic layout yet (supported: gpt_oss, nemotron_h)`);
}
