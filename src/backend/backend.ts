/**
 * The Backend interface: the few coarse, batch-first operations every model is built from.
 * Activations are f32 host arrays laid out row-major [T, features] over the packed batch
 * (all tokens of all sequences in the step, flattened). Weights stay in their stored formats
 * (QMatrix). The pure-TypeScript reference backend implements every op and is the oracle that
 * the native kernels are tested against.
 */
import type { QMatrix } from '../weights/qmatrix.js';

/** RoPE in the half-split (NeoX) form with YaRN-scaled inverse frequencies and concentration. */
export interface RopeSpec {
  /** [headDim/2] inverse frequencies */
  invFreq: Float32Array;
  /** multiplies cos and sin (YaRN attention scaling; 1 for plain RoPE) */
  concentration: number;
  /** how many leading dims of each head rotate (= headDim for gpt-oss) */
  rotaryDim: number;
}

/** One sequence's slice of the packed batch, as the attention op sees it. */
export interface SeqSlice {
  /** index of its first token in the packed batch */
  queryStart: number;
  /** tokens of this sequence in the batch */
  queryLen: number;
  /** tokens in its cache once this step's tokens are written (= position of last token + 1) */
  ctxLen: number;
  /** physical block ids, in logical order */
  blockTable: Int32Array;
}

/** The per-step batch layout shared by every attention layer (the nano-vllm "context"). */
export interface AttentionMeta {
  seqs: SeqSlice[];
  /** absolute position of every token */
  positions: Int32Array;
  /** cache slot (block·blockSize + offset) where every token's k/v is written */
  slotMapping: Int32Array;
}

/** K and V storage of one attention layer: [numBlocks·blockSize, nKv, headDim] each. */
export interface KvLayerCache {
  numBlocks: number;
  blockSize: number;
  nKv: number;
  headDim: number;
  k: Float32Array;
  v: Float32Array;
}

export interface AttentionOptions {
  nHeads: number;
  nKv: number;
  headDim: number;
  /** softmax scale applied to q·k */
  scale: number;
  /** keys seen by a query, itself included; 0 = unlimited (full attention) */
  window: number;
  /** one learned logit per q head appended to the softmax row (value 0), or null */
  sinks: Float32Array | null;
}

export type ExpertActivation =
  /** gpt-oss: interleaved gate/up, gate ≤ limit, |up| ≤ limit, gate·σ(α·gate)·(up+1) */
  | { kind: 'swiglu_oai'; alpha: number; limit: number }
  /** Nemotron-H: relu(x)² over a single up projection */
  | { kind: 'relu2' };

/** A stacked bank of experts: expert e owns rows [e·out, (e+1)·out) of w1 and w2. */
export interface ExpertBank {
  numExperts: number;
  /** input features */
  dIn: number;
  /** rows of w1 per expert (2I for gated activations, I otherwise) */
  w1Rows: number;
  /** output features = rows of w2 per expert */
  dOut: number;
  w1: QMatrix;
  b1: Float32Array | null;
  w2: QMatrix;
  b2: Float32Array | null;
  activation: ExpertActivation;
}

/** Which experts each token uses, and with what weight: [T, k] each. */
export interface Routing {
  k: number;
  experts: Int32Array;
  weights: Float32Array;
}

export interface Backend {
  readonly name: string;
  /** rows `ids` of an embedding table → [T, cols] */
  embed(ids: Int32Array, table: QMatrix): Float32Array;
  /** y[T, rows] = x[T, cols] · Wᵀ + bias */
  linear(x: Float32Array, T: number, w: QMatrix, bias?: Float32Array | null): Float32Array;
  /** y = x / sqrt(mean(x²) + eps) · weight, per row of `weight.length` features */
  rmsNorm(x: Float32Array, T: number, weight: Float32Array, eps: number): Float32Array;
  /** rotate [T, nHeads, headDim] in place at the given positions */
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, rope: RopeSpec): void;
  /** allocate one attention layer's paged K/V storage */
  allocKv(numBlocks: number, blockSize: number, nKv: number, headDim: number): KvLayerCache;
  /**
   * Write this step's k/v [T, nKv·headDim] into the cache at `meta.slotMapping`, then attend
   * every query [T, nHeads·headDim] over its sequence's cached keys (causal, windowed, sinks).
   * Returns [T, nHeads·headDim].
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, cache: KvLayerCache,
    meta: AttentionMeta, opts: AttentionOptions): Float32Array;
  /** Σ_j weight[t,j] · expert_{e[t,j]}(x_t) → [T, dOut] */
  moeExperts(x: Float32Array, T: number, routing: Routing, bank: ExpertBank): Float32Array;
}
