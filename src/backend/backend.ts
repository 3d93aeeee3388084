/**
 * The Backend interface: the few coarse, batch-first operations every model is built from.
 * Activations are f32 host arrays laid out row-major [T, features] over the packed batch
 * (all tokens of all sequences in the step, flattened). Weights stay in their stored formats
 * (QMatrix). The pure-TypeScript reference backend implements every op and is the oracle that
 * the native kernels are tested against.
 */
import { type QMatrix, qmatrixBytes, rowSlice } from '../weights/qmatrix.js';
import type { PreparedStore } from '../weights/prepared-store.js';

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

/**
 * Element type of the KV cache: f32 (exact, the default), or 16-bit floats (half the memory
 * and half the bytes read per decoded token at depth; values rounded to nearest even on write,
 * math in f32 after the read, as llama.cpp's f16 cache).
 */
export const KV_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type KvDtype = (typeof KV_DTYPES)[number];

export function isKvDtype(v: unknown): v is KvDtype {
  return (KV_DTYPES as readonly unknown[]).includes(v);
}

/** element offset of the row of `head` for cache slot `slot` (block·blockSize + offset) */
export function kvOffset(cache: KvLayerCache, slot: number, head: number): number {
  const bs = cache.blockSize;
  const block = Math.floor(slot / bs);
  return ((block * cache.nKv + head) * bs + (slot - block * bs)) * cache.headDim;
}

/** bytes of one cached k or v value */
export function kvDtypeBytes(dtype: KvDtype): number {
  return dtype === 'f32' ? 4 : 2;
}

/**
 * K and V storage of one attention layer: [numBlocks, nKv, blockSize, headDim] each. Within a
 * block each KV head's rows are contiguous, so one head's keys stream in runs of a block (a
 * token-major layout puts them 1–2 KB apart, and decode attention waits on a miss per key).
 * The element of (slot, head, c) is at kvOffset(cache, slot, head) + c.
 */
export interface KvLayerCache {
  numBlocks: number;
  blockSize: number;
  nKv: number;
  headDim: number;
  dtype: KvDtype;
  /** f32 values, or the bits of f16 / bf16 values */
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array;
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

/**
 * One projection of every expert: a stacked matrix in which expert e owns rows [e·rows, (e+1)·rows)
 * (gpt-oss stores its experts so), or one matrix per expert, used where the checkpoint keeps them
 * (Nemotron stores a tensor per expert: mapped as they are, with no copy into a bank).
 */
export type ExpertWeights = QMatrix | readonly QMatrix[];

/** Expert e's matrix of `rows` rows. */
export function expertMatrix(w: ExpertWeights, e: number, rows: number): QMatrix {
  return isExpertList(w) ? w[e] : rowSlice(w, e * rows, rows);
}

export function expertWeightsBytes(w: ExpertWeights): number {
  return isExpertList(w) ? w.reduce((a, m) => a + qmatrixBytes(m), 0) : qmatrixBytes(w);
}

export function expertWeightsFormat(w: ExpertWeights): QMatrix['format'] {
  return isExpertList(w) ? w[0].format : w.format;
}

function isExpertList(w: ExpertWeights): w is readonly QMatrix[] {
  return Array.isArray(w);
}

/** The experts of one MoE layer: expert e's w1 and w2 (expertMatrix), their biases stacked. */
export interface ExpertBank {
  numExperts: number;
  /** input features */
  dIn: number;
  /** rows of w1 per expert (2I for gated activations, I otherwise) */
  w1Rows: number;
  /** output features = rows of w2 per expert */
  dOut: number;
  w1: ExpertWeights;
  b1: Float32Array | null;
  w2: ExpertWeights;
  b2: Float32Array | null;
  activation: ExpertActivation;
}

/** weight bytes of one expert of the bank (its w1 and w2) */
export function bytesPerExpert(bank: ExpertBank): number {
  return (expertWeightsBytes(bank.w1) + expertWeightsBytes(bank.w2)) / bank.numExperts;
}

/** Which experts each token uses, and with what weight: [T, k] each. */
export interface Routing {
  k: number;
  experts: Int32Array;
  weights: Float32Array;
}

/** An op's result array: the caller's `out` (see Backend), checked to hold n values, else a new one. */
export function resultArray(out: Float32Array | undefined, n: number, op: string): Float32Array {
  if (!out) return new Float32Array(n);
  if (out.length !== n) throw new Error(`${op}: the output holds ${out.length} values, the result ${n}`);
  return out;
}

/** one weight (and bias) of a `linearMany` call */
export interface LinearSpec {
  w: QMatrix;
  bias?: Float32Array | null;
}

/**
 * `out`, where an op takes one, is a caller's buffer for the result (a model's per-step
 * workspace: decode would otherwise allocate a dozen arrays a layer): it must hold exactly the
 * result's values, must not be one of the op's inputs, and is overwritten and returned.
 */
export interface Backend {
  readonly name: string;
  /** rows `ids` of an embedding table → [T, cols] */
  embed(ids: Int32Array, table: QMatrix): Float32Array;
  /** y[T, rows] = x[T, cols] · Wᵀ + bias */
  linear(x: Float32Array, T: number, w: QMatrix, bias?: Float32Array | null, out?: Float32Array): Float32Array;
  /** several linears of one input x[T, cols] (q, k, v): the same results as `linear` each */
  linearMany(x: Float32Array, T: number, ws: readonly LinearSpec[], outs?: readonly Float32Array[]): Float32Array[];
  /** y = x / sqrt(mean(x²) + eps) · weight, per row of `weight.length` features */
  rmsNorm(x: Float32Array, T: number, weight: Float32Array, eps: number, out?: Float32Array): Float32Array;
  /** x += y, elementwise (a residual connection; the lengths must match) */
  addInPlace(x: Float32Array, y: Float32Array): void;
  /** rotate [T, nHeads, headDim] in place at the given positions */
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, rope: RopeSpec): void;
  /** allocate one attention layer's paged K/V storage (f32 unless `dtype` says otherwise) */
  allocKv(numBlocks: number, blockSize: number, nKv: number, headDim: number, dtype?: KvDtype): KvLayerCache;
  /**
   * Write this step's k/v [T, nKv·headDim] into the cache at `meta.slotMapping`, then attend
   * every query [T, nHeads·headDim] over its sequence's cached keys (causal, windowed, sinks).
   * Returns [T, nHeads·headDim].
   */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, cache: KvLayerCache,
    meta: AttentionMeta, opts: AttentionOptions, out?: Float32Array): Float32Array;
  /** Σ_j weight[t,j] · expert_{e[t,j]}(x_t) → [T, dOut] */
  moeExperts(x: Float32Array, T: number, routing: Routing, bank: ExpertBank, out?: Float32Array): Float32Array;
  /**
   * Called once per expert bank at load: the same weights, with whatever second layout this
   * backend's kernels read (native q8: MXFP4 scales in oct order for AVX2; with `repack`, the
   * blocks and scales with 16 rows in lanes for AVX-512 VNNI). Optional; the bank as it is
   * otherwise.
   */
  prepareExperts?(bank: ExpertBank, opts?: PrepareExpertsOptions): ExpertBank;
  /**
   * Called at load for each dense matrix the loader made itself (re-quantised int8, this
   * process's own memory): the backend may rearrange its bytes in place into a layout its
   * kernels read (native q8 on AVX-512 VNNI: int8 rows16). Optional; the matrix as it is otherwise.
   */
  prepareMatrix?(m: QMatrix): QMatrix;
}

export interface PrepareExpertsOptions {
  /** a whole second copy of the expert weights in memory is allowed (LoadOptions.repackExperts, resolved) */
  repack?: boolean;
  /**
   * where the second layout may be kept on disk and mapped (src/weights/prepared-store.ts):
   * taken before a copy in memory, for matrices mapped from a checkpoint
   */
  store?: PreparedStore | null;
}

/**
 * One Mamba-2 layer's recurrent states, f32, for `numSlots` sequences (hybrid models):
 * conv windows [numSlots, convKernel−1, convDim] (the last K−1 pre-conv xBC columns, oldest
 * first) and SSM states [numSlots, nHeads, headDim, stateSize]. Host memory, so a slot can be
 * copied (snapshot / restore / fork) with plain array copies.
 */
export interface MambaLayerState {
  numSlots: number;
  convDim: number;
  convKernel: number;
  nHeads: number;
  headDim: number;
  stateSize: number;
  conv: Float32Array;
  ssm: Float32Array;
}

/** Which state slot each sequence of the packed batch uses (parallel to `seqs`). */
export interface StateMeta {
  seqs: SeqSlice[];
  /** state slot of seqs[i]; a sequence whose ctxLen equals its queryLen starts from zero state */
  stateSlots: Int32Array;
  /**
   * Optional, per sequence: keep[i][j] ≥ 0 is a slot that also receives the state after token j
   * of seqs[i] (speculative verification keeps every candidate's state, so a rejection needs no
   * re-run). null or −1 entries keep nothing.
   */
  keep?: (Int32Array | null)[];
}

export interface SsmScanOptions {
  nHeads: number;
  headDim: number;
  /** B/C groups (config `n_groups`): head h uses group floor(h / (nHeads/nGroups)) */
  nGroups: number;
  stateSize: number;
  /** tokens per chunk of the SSD scan (multi-token segments); single tokens take the recurrent step */
  chunkSize: number;
  /** Δ clamp after softplus (config `time_step_limit`; (0, ∞) = none) */
  dtMin: number;
  dtMax: number;
}

/** Mamba-2 ops (Nemotron-H): added beside the attention ops; every backend implements them. */
export interface Backend {
  /** allocate one Mamba-2 layer's conv + SSM states for `numSlots` sequences (zeroed) */
  allocMambaState(numSlots: number, convDim: number, convKernel: number, nHeads: number, headDim: number,
    stateSize: number): MambaLayerState;
  /**
   * Causal depthwise conv1d over time then SiLU, per sequence: x [T, convDim], weight
   * [convDim, K] (row-major), reading each sequence's previous K−1 columns from its slot (zeros at
   * sequence start) and leaving its last K−1 columns there. Returns [T, convDim].
   */
  causalConv1d(x: Float32Array, T: number, weight: Float32Array, bias: Float32Array | null,
    state: MambaLayerState, meta: StateMeta): Float32Array;
  /**
   * The selective scan: Δ = clamp(softplus(dt + dtBias)); per head S ← exp(Δ·A)·S + Δ·x⊗B,
   * y = S·C + D·x, from each sequence's slot state (zero at start), which is updated.
   * x [T, nHeads·headDim], dt [T, nHeads], B and C [T, nGroups·stateSize]. Returns [T, nHeads·headDim].
   * Multi-token segments use the chunked (SSD) form, single tokens the recurrent step: same math.
   */
  ssmScan(x: Float32Array, dt: Float32Array, B: Float32Array, C: Float32Array, T: number,
    A: Float32Array, D: Float32Array, dtBias: Float32Array, state: MambaLayerState, meta: StateMeta,
    opts: SsmScanOptions): Float32Array;
  /** u = y·silu(z), normalised over contiguous groups of `groupSize` features, times weight */
  gatedRmsNorm(y: Float32Array, z: Float32Array, T: number, weight: Float32Array, groupSize: number,
    eps: number): Float32Array;
}
