/**
 * OpenAI gpt-oss (20b, 120b) as the official torch reference computes it
 * (../shared/fixtures/gpt-oss/NOTES.md):
 *   x = E[ids]
 *   per layer:  x += o_proj(Attn(RMSNorm(x)))        GQA, learned sinks, RoPE+YaRN,
 *                                                    sliding window on "sliding_attention" layers
 *               x += Σ_topk softmax(g_sel)·Expert(RMSNorm(x))   clamped SwiGLU, MXFP4 weights
 *   logits = W_lm · RMSNorm(x)
 */
import { type Backend, type ExpertBank, type KvDtype, type KvLayerCache, type RopeSpec, bytesPerExpert, expertWeightsBytes, kvDtypeBytes } from '../backend/backend.js';
import { BlockAllocator } from '../cache/block-allocator.js';
import { SequenceCache } from '../cache/sequence-cache.js';
import { yarnRope, plainRope } from '../layers/rope.js';
import { topkSoftmaxRouting } from '../layers/routing.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { populateMapped } from '../weights/safetensors.js';
import { ConfigReader } from '../weights/config.js';
import { decodeToF32 } from '../weights/dtypes.js';
import { QMatrix, denseMatrix, mxfp4Matrix, qmatrixBytes } from '../weights/qmatrix.js';
import { type CacheShape, type CausalLM, type ForwardBatch, type LoadOptions, type ModelCache, denseWeightsTransform, expertPreparation } from './model.js';

export interface GptOssConfig {
  vocabSize: number;
  hidden: number;
  intermediate: number;
  headDim: number;
  nHeads: number;
  nKv: number;
  nLayers: number;
  nExperts: number;
  topK: number;
  slidingWindow: number;
  /** true where the layer uses the sliding window */
  sliding: boolean[];
  ropeTheta: number;
  yarn: { factor: number; betaFast: number; betaSlow: number; originalMaxPositions: number; truncate: boolean } | null;
  rmsEps: number;
  swigluLimit: number;
  swigluAlpha: number;
  maxPositions: number;
  eosTokenIds: number[];
}

export function parseGptOssConfig(c: ConfigReader): GptOssConfig {
  const nLayers = c.int('num_hidden_layers');
  const nHeads = c.int('num_attention_heads');
  const nKv = c.int('num_key_value_heads');
  c.check(nHeads % nKv === 0, `num_attention_heads (${nHeads}) must be a multiple of num_key_value_heads (${nKv})`);
  const hidden = c.int('hidden_size');
  const intermediate = c.int('intermediate_size');
  c.check(hidden % 32 === 0, `hidden_size (${hidden}) must be a multiple of 32 (MXFP4 blocks)`);
  c.check(intermediate % 32 === 0, `intermediate_size (${intermediate}) must be a multiple of 32 (MXFP4 blocks)`);
  const headDim = c.int('head_dim');
  c.check(headDim % 2 === 0, `head_dim (${headDim}) must be even for RoPE`);
  const nExperts = c.int('num_local_experts');
  const topK = c.has('num_experts_per_tok') ? c.int('num_experts_per_tok') : c.int('experts_per_token');
  c.check(topK <= nExperts, `num_experts_per_tok (${topK}) exceeds num_local_experts (${nExperts})`);
  const slidingWindow = c.int('sliding_window', { min: 0, default: 0 });
  const types = c.strList('layer_types');
  let sliding: boolean[];
  if (types) {
    c.check(types.length === nLayers, `layer_types has ${types.length} entries but num_hidden_layers is ${nLayers}`);
    sliding = types.map((t, i) => {
      if (t !== 'sliding_attention' && t !== 'full_attention') {
        c.check(false, `layer_types[${i}] is "${t}"; expected "sliding_attention" or "full_attention"`);
      }
      return t === 'sliding_attention';
    });
  } else {
    sliding = Array.from({ length: nLayers }, (_, i) => i % 2 === 0);
  }
  if (sliding.some((s) => s)) c.check(slidingWindow > 0, `sliding_window must be ≥ 1 when layer_types has sliding layers`);
  const rs = c.object('rope_scaling');
  let yarn: GptOssConfig['yarn'] = null;
  if (rs) {
    const type = rs.str('rope_type', { default: rs.has('type') ? rs.str('type') : 'yarn' });
    rs.check(type === 'yarn', `rope_type "${type}" is not supported for gpt-oss (expected "yarn")`);
    yarn = {
      factor: rs.num('factor', { positive: true }),
      betaFast: rs.num('beta_fast', { default: 32 }),
      betaSlow: rs.num('beta_slow', { default: 1 }),
      originalMaxPositions: rs.has('original_max_position_embeddings')
        ? rs.int('original_max_position_embeddings')
        : c.int('initial_context_length'),
      truncate: rs.bool('truncate', false),
    };
  }
  const eos = c.json.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [];
  return {
    vocabSize: c.int('vocab_size'),
    hidden, intermediate, headDim, nHeads, nKv, nLayers, nExperts, topK, slidingWindow, sliding,
    ropeTheta: c.num('rope_theta', { positive: true, default: 150000 }),
    yarn,
    rmsEps: c.num('rms_norm_eps', { positive: true, default: 1e-5 }),
    swigluLimit: c.num('swiglu_limit', { positive: true, default: 7 }),
    swigluAlpha: 1.702,
    maxPositions: c.int('max_position_embeddings', { default: 131072 }),
    eosTokenIds,
  };
}

interface Layer {
  attnNorm: Float32Array;
  wq: QMatrix; bq: Float32Array;
  wk: QMatrix; bk: Float32Array;
  wv: QMatrix; bv: Float32Array;
  wo: QMatrix; bo: Float32Array;
  sinks: Float32Array;
  mlpNorm: Float32Array;
  router: QMatrix; routerBias: Float32Array;
  experts: ExpertBank;
}

const DENSE = ['BF16', 'F32', 'F16'] as const;

/**
 * Full-attention layers keep every block of a sequence; sliding-window layers draw from their own,
 * smaller pool and give blocks back once they fall behind the window (WindowBlocks).
 */
class GptOssCache implements ModelCache {
  readonly allocator: BlockAllocator;
  readonly windowPool?: BlockAllocator;
  readonly layers: KvLayerCache[];
  constructor(backend: Backend, private readonly cfg: GptOssConfig, readonly numBlocks: number, readonly blockSize: number,
    numWindowBlocks: number, dtype: KvDtype) {
    this.allocator = new BlockAllocator(numBlocks);
    const windowed = cfg.sliding.some((s) => s);
    if (windowed) this.windowPool = new BlockAllocator(numWindowBlocks);
    this.layers = cfg.sliding.map((s) => backend.allocKv(s ? numWindowBlocks : numBlocks, blockSize, cfg.nKv, cfg.headDim, dtype));
  }
  newSequence(): SequenceCache {
    const window = this.windowPool ? { pool: this.windowPool, size: this.cfg.slidingWindow } : undefined;
    return new SequenceCache(this.allocator, this.blockSize, undefined, window);
  }
  freeBlocks(): number {
    return this.allocator.numFree;
  }
  kvLayers(): KvLayerCache[] {
    return this.layers;
  }
}

export class GptOssModel implements CausalLM {
  readonly family = 'gpt-oss';
  readonly vocabSize: number;
  readonly maxContext: number;
  readonly eosTokenIds: number[];
  private readonly rope: RopeSpec;
  private ws: Workspace | null = null;

  private constructor(
    readonly backend: Backend,
    readonly config: GptOssConfig,
    private readonly embedding: QMatrix,
    private readonly layers: Layer[],
    private readonly finalNorm: Float32Array,
    private readonly lmHead: QMatrix,
    readonly kvCacheDtype: KvDtype,
  ) {
    this.vocabSize = config.vocabSize;
    this.maxContext = config.maxPositions;
    this.eosTokenIds = config.eosTokenIds;
    this.rope = config.yarn ? yarnRope(config.headDim, config.ropeTheta, config.yarn) : plainRope(config.headDim, config.ropeTheta);
  }

  static load(ckpt: Checkpoint, backend: Backend, opts: LoadOptions = {}): GptOssModel {
    const cfg = parseGptOssConfig(new ConfigReader(ckpt.config, ckpt.configPath));
    const { hidden: H, intermediate: I, headDim: d, nHeads, nKv, nExperts: E, vocabSize: V } = cfg;
    const raw = (name: string, shape: number[]) => denseMatrix(ckpt.tensor(name, [...DENSE], shape));
    // projections and the unembedding may be re-quantised; the embedding is only gathered
    const requant = denseWeightsTransform(opts, backend);
    const dense = requant ? (name: string, shape: number[]) => requant(raw(name, shape)) : raw;
    const vec = (name: string, n: number) => {
      const t = ckpt.tensor(name, [...DENSE], [n]);
      return decodeToF32(t.dtype, t.data, name);
    };
    // the backend's second layout of the experts, where it has one (native q8: oct-ordered scales,
    // or the MXFP4 blocks repacked: from the prepared store, else in memory where it allows;
    // LoadOptions.repackExperts)
    const how = expertPreparation(opts, ckpt.bytes, cfg.nLayers * E * ((2 * I * H + H * I) / 32) * 17);
    // with a prepared store the experts' mapped pages are faulted in only if the backend keeps them
    const lazy = !!how.store && !!backend.prepareExperts;
    const prepare = (bank: ExpertBank): ExpertBank => {
      const got = backend.prepareExperts?.(bank, how) ?? bank;
      if (lazy) {
        for (const m of [got.w1, got.w2].flat()) if (m.format === 'mxfp4' && !m.rows16) for (const v of [m.blocks, m.scales]) populateMapped(v);
      }
      return got;
    };
    const layers: Layer[] = [];
    for (let l = 0; l < cfg.nLayers; l++) {
      const p = `model.layers.${l}`;
      const mx = (base: string, rows: number, cols: number) =>
        mxfp4Matrix(
          ckpt.tensor(`${base}_blocks`, 'U8', [E, rows, cols / 32, 16], { lazy }),
          ckpt.tensor(`${base}_scales`, 'U8', [E, rows, cols / 32], { lazy }),
        );
      const gub = ckpt.tensor(`${p}.mlp.experts.gate_up_proj_bias`, [...DENSE], [E, 2 * I]);
      const db = ckpt.tensor(`${p}.mlp.experts.down_proj_bias`, [...DENSE], [E, H]);
      layers.push({
        attnNorm: vec(`${p}.input_layernorm.weight`, H),
        wq: dense(`${p}.self_attn.q_proj.weight`, [nHeads * d, H]), bq: vec(`${p}.self_attn.q_proj.bias`, nHeads * d),
        wk: dense(`${p}.self_attn.k_proj.weight`, [nKv * d, H]), bk: vec(`${p}.self_attn.k_proj.bias`, nKv * d),
        wv: dense(`${p}.self_attn.v_proj.weight`, [nKv * d, H]), bv: vec(`${p}.self_attn.v_proj.bias`, nKv * d),
        wo: dense(`${p}.self_attn.o_proj.weight`, [H, nHeads * d]), bo: vec(`${p}.self_attn.o_proj.bias`, H),
        sinks: vec(`${p}.self_attn.sinks`, nHeads),
        mlpNorm: vec(`${p}.post_attention_layernorm.weight`, H),
        router: dense(`${p}.mlp.router.weight`, [E, H]), routerBias: vec(`${p}.mlp.router.bias`, E),
        experts: prepare({
          numExperts: E, dIn: H, w1Rows: 2 * I, dOut: H,
          w1: mx(`${p}.mlp.experts.gate_up_proj`, 2 * I, H),
          b1: decodeToF32(gub.dtype, gub.data, gub.name),
          w2: mx(`${p}.mlp.experts.down_proj`, H, I),
          b2: decodeToF32(db.dtype, db.data, db.name),
          activation: { kind: 'swiglu_oai', alpha: cfg.swigluAlpha, limit: cfg.swigluLimit },
        }),
      });
    }
    return new GptOssModel(
      backend, cfg,
      raw('model.embed_tokens.weight', [V, H]),
      layers,
      vec('model.norm.weight', H),
      dense('lm_head.weight', [V, H]),
      opts.kvCacheDtype ?? 'f32',
    );
  }

  createCache(opts: CacheShape): ModelCache {
    return new GptOssCache(this.backend, this.config, opts.numBlocks, opts.blockSize, opts.numWindowBlocks ?? opts.numBlocks, this.kvCacheDtype);
  }

  weightBytes(): number {
    let n = qmatrixBytes(this.embedding) + qmatrixBytes(this.lmHead);
    for (const L of this.layers) {
      n += qmatrixBytes(L.wq) + qmatrixBytes(L.wk) + qmatrixBytes(L.wv) + qmatrixBytes(L.wo) + qmatrixBytes(L.router);
      n += expertWeightsBytes(L.experts.w1) + expertWeightsBytes(L.experts.w2);
    }
    return n;
  }

  /** Bytes of full-attention KV cache per token: those layers keep k and v of every token. */
  kvBytesPerToken(): number {
    const c = this.config;
    return c.sliding.filter((s) => !s).length * 2 * c.nKv * c.headDim * kvDtypeBytes(this.kvCacheDtype);
  }

  /** The sliding-window layers' pool: bytes per token there, and the window that bounds its use. */
  slidingWindowKv(): { window: number; bytesPerToken: number } | null {
    const c = this.config;
    const n = c.sliding.filter((s) => s).length;
    return n === 0 ? null : { window: c.slidingWindow, bytesPerToken: n * 2 * c.nKv * c.headDim * kvDtypeBytes(this.kvCacheDtype) };
  }

  /** Weight bytes one decoded token reads: attention, router, top-k experts, the unembedding. */
  decodeBytesPerToken(): number {
    const c = this.config;
    let n = qmatrixBytes(this.lmHead) + qmatrixBytes(this.embedding) / c.vocabSize;
    for (const L of this.layers) {
      n += qmatrixBytes(L.wq) + qmatrixBytes(L.wk) + qmatrixBytes(L.wv) + qmatrixBytes(L.wo) + qmatrixBytes(L.router);
      n += bytesPerExpert(L.experts) * c.topK;
    }
    return n;
  }

  /**
   * The buffers of one forward's per-layer temporaries, made once for batches of up to
   * WORKSPACE_TOKENS tokens (decode) and kept while that size lasts; longer batches (prefill)
   * allocate per op, so that the workspace never holds more than a few MB. A decode step of
   * gpt-oss-20b otherwise made about 14 arrays a layer.
   */
  private workspace(T: number): Workspace | null {
    if (T > WORKSPACE_TOKENS) return null;
    if (this.ws?.T === T) return this.ws;
    const c = this.config;
    const f = (n: number) => new Float32Array(T * n);
    this.ws = {
      T, h: f(c.hidden), q: f(c.nHeads * c.headDim), k: f(c.nKv * c.headDim), v: f(c.nKv * c.headDim),
      attn: f(c.nHeads * c.headDim), proj: f(c.hidden), router: f(c.nExperts),
    };
    return this.ws;
  }

  forward(batch: ForwardBatch, cache: ModelCache, logitsOut?: Float32Array): Float32Array {
    const be = this.backend;
    const cfg = this.config;
    const c = cache as GptOssCache;
    const T = batch.tokens.length;
    const H = cfg.hidden;
    const d = cfg.headDim;
    const w = this.workspace(T);
    let x = be.embed(batch.tokens, this.embedding);
    for (let l = 0; l < cfg.nLayers; l++) {
      const L = this.layers[l];
      // attention block
      let h = be.rmsNorm(x, T, L.attnNorm, cfg.rmsEps, w?.h);
      const [q, k, v] = be.linearMany(h, T, [{ w: L.wq, bias: L.bq }, { w: L.wk, bias: L.bk }, { w: L.wv, bias: L.bv }],
        w ? [w.q, w.k, w.v] : undefined);
      be.rope(q, T, cfg.nHeads, d, batch.positions, this.rope);
      be.rope(k, T, cfg.nKv, d, batch.positions, this.rope);
      const a = be.attention(q, k, v, T, c.layers[l], cfg.sliding[l] ? batch.window! : batch, {
        nHeads: cfg.nHeads, nKv: cfg.nKv, headDim: d, scale: 1 / Math.sqrt(d),
        window: cfg.sliding[l] ? cfg.slidingWindow : 0, sinks: L.sinks,
      }, w?.attn);
      be.addInPlace(x, be.linear(a, T, L.wo, L.bo, w?.proj));
      // MoE block: router and experts read the same normalised vector
      h = be.rmsNorm(x, T, L.mlpNorm, cfg.rmsEps, w?.h);
      const g = be.linear(h, T, L.router, L.routerBias, w?.router);
      const routing = topkSoftmaxRouting(g, T, cfg.nExperts, cfg.topK);
      be.addInPlace(x, be.moeExperts(h, T, routing, L.experts, w?.proj));
    }
    const R = batch.logitRows.length;
    const xs = new Float32Array(R * H);
    for (let i = 0; i < R; i++) xs.set(x.subarray(batch.logitRows[i] * H, (batch.logitRows[i] + 1) * H), i * H);
    return be.linear(be.rmsNorm(xs, R, this.finalNorm, cfg.rmsEps), R, this.lmHead, null, logitsOut);
  }
}

/** batches of up to this many tokens run in the model's workspace (GptOssModel.workspace) */
const WORKSPACE_TOKENS = 64;

/** a forward's per-layer temporaries, [T, width] each */
interface Workspace {
  T: number;
  h: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  attn: Float32Array;
  proj: Float32Array;
  router: Float32Array;
}

