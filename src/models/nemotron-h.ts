/**
 * NVIDIA Nemotron-H / Nemotron 3 (Nano, Super) hybrid models, as the public reference computes
 * them (../shared/fixtures/nemotron-h/NOTES.md):
 *   h = embeddings[ids]
 *   per block i (hybrid_override_pattern letter):  h += mixer_i(RMSNorm_i(h))
 *       M Mamba-2 · * attention (GQA, no RoPE) · - relu² MLP · E MoE (sigmoid router, LatentMoE)
 *   logits = lm_head(RMSNorm_f(h))
 * The cache holds paged KV for attention blocks and one recurrent-state slot per sequence for
 * the Mamba blocks; `mtp.*` weights (Super) form a separate draft head for speculative decoding.
 */
import { type Backend, type KvDtype, bytesPerExpert, type KvLayerCache, type MambaLayerState, type StateMeta, kvDtypeBytes } from '../backend/backend.js';
import { BlockAllocator } from '../cache/block-allocator.js';
import { RecurrentSnapshot, RecurrentStateStore } from '../cache/recurrent-state.js';
import { SequenceCache } from '../cache/sequence-cache.js';
import { Mamba2Mixer } from '../layers/mamba2.js';
import { GqaAttention } from '../layers/gqa-attention.js';
import { NemotronMoe } from '../layers/nemotron-moe.js';
import { Relu2Mlp } from '../layers/relu2-mlp.js';
import { InputError, TesseraError } from '../util/errors.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { ConfigReader } from '../weights/config.js';
import { QMatrix, qmatrixBytes } from '../weights/qmatrix.js';
import { linearLoader, loadLinear, loadVector } from '../weights/linear-weight.js';
import { type CausalLM, type ForwardBatch, type LoadOptions, type ModelCache, denseWeightsTransform } from './model.js';
import { NemotronHConfig, parseNemotronHConfig } from './nemotron-h-config.js';
import { HybridBlock, loadBlock } from './nemotron-h-blocks.js';
import { MtpHead } from './nemotron-h-mtp.js';

export class NemotronHCache implements ModelCache {
  readonly allocator: BlockAllocator;
  /** per main block: its KV (attention) or its state (Mamba), else null */
  readonly kv: (KvLayerCache | null)[];
  readonly mamba: (MambaLayerState | null)[];
  /** per MTP block: its KV (attention), else null */
  readonly mtpKv: (KvLayerCache | null)[];
  readonly states: RecurrentStateStore;

  constructor(model: NemotronHModel, readonly numBlocks: number, readonly blockSize: number, maxSeqs: number) {
    const be = model.backend;
    this.allocator = new BlockAllocator(numBlocks);
    const kvFor = (b: HybridBlock) => (b.mixer instanceof GqaAttention ? b.mixer.allocKv(be, numBlocks, blockSize, model.kvCacheDtype) : null);
    this.kv = model.blocks.map(kvFor);
    this.mamba = model.blocks.map((b) => (b.mixer instanceof Mamba2Mixer ? b.mixer.allocState(be, maxSeqs) : null));
    this.mtpKv = model.mtp ? model.mtp.blocks.map(kvFor) : [];
    this.states = new RecurrentStateStore(this.mamba.filter((m): m is MambaLayerState => m !== null), maxSeqs);
  }

  newSequence(): SequenceCache {
    const seq = new SequenceCache(this.allocator, this.blockSize, this.states);
    seq.stateSlot = this.states.allocate();
    return seq;
  }

  freeBlocks(): number {
    return this.allocator.numFree;
  }

  freeStateSlots(): number {
    return this.states.numFree;
  }

  kvLayers(): KvLayerCache[] {
    return [...this.kv, ...this.mtpKv].filter((c): c is KvLayerCache => c !== null);
  }

  snapshotState(seq: SequenceCache): RecurrentSnapshot {
    return this.states.snapshot(this.slotOf(seq), seq.length);
  }

  restoreState(seq: SequenceCache, snap: RecurrentSnapshot): void {
    if (seq.length < snap.length) {
      throw new TesseraError(`cannot restore a state taken after ${snap.length} tokens into a sequence of ${seq.length}`);
    }
    this.states.restore(snap, this.slotOf(seq));
    seq.truncate(snap.length);
  }

  copyState(from: SequenceCache, to: SequenceCache): void {
    this.states.copy(this.slotOf(from), this.slotOf(to));
  }

  /** spare state slots (not tied to a sequence), e.g. to keep per-position states in verification */
  allocStateSlots(n: number): number[] {
    const out: number[] = [];
    try {
      for (let i = 0; i < n; i++) out.push(this.states.allocate());
    } catch (e) {
      out.forEach((s) => this.states.release(s));
      throw e;
    }
    return out;
  }

  /**
   * Treat the sequence's slot as holding the state after seq.length tokens whatever it holds
   * (benchmarks that fake a context depth without computing it).
   */
  assumeState(seq: SequenceCache): void {
    this.states.lengths[this.slotOf(seq)] = seq.length;
  }

  releaseStateSlots(slots: number[]): void {
    slots.forEach((s) => this.states.release(s));
  }

  /**
   * Make `slot` (a spare holding the state after `length` tokens) the sequence's state: the
   * slots swap, so the old one becomes the spare. KV is truncated to `length`.
   */
  swapStateSlot(seq: SequenceCache, slot: number, length: number): number {
    const old = this.slotOf(seq);
    seq.stateSlot = slot;
    seq.truncate(length);
    return old;
  }

  private slotOf(seq: SequenceCache): number {
    if (seq.stateSlot < 0) throw new TesseraError('sequence has no recurrent-state slot (already freed?)');
    return seq.stateSlot;
  }
}

export class NemotronHModel implements CausalLM {
  readonly family = 'nemotron-h';
  /** per-sequence Mamba state beside the KV (the engine disables block-level prefix reuse) */
  readonly hasRecurrentState = true;
  readonly vocabSize: number;
  readonly maxContext: number;
  readonly eosTokenIds: number[];
  readonly hiddenSize: number;

  private constructor(
    readonly backend: Backend,
    readonly config: NemotronHConfig,
    readonly embedding: QMatrix,
    readonly blocks: HybridBlock[],
    private readonly finalNorm: Float32Array,
    readonly lmHead: QMatrix,
    readonly mtp: MtpHead | null,
    readonly kvCacheDtype: KvDtype,
  ) {
    this.vocabSize = config.vocabSize;
    this.maxContext = config.maxPositions;
    this.eosTokenIds = config.eosTokenIds;
    this.hiddenSize = config.hidden;
  }

  /** true when the checkpoint carries an MTP head (speculative decoding) */
  get hasMtp(): boolean {
    return this.mtp !== null;
  }

  static load(ckpt: Checkpoint, backend: Backend, opts: LoadOptions = {}): NemotronHModel {
    const cfg = parseNemotronHConfig(new ConfigReader(ckpt.config, ckpt.configPath));
    const H = cfg.hidden;
    const V = cfg.vocabSize;
    // every NVIDIA release names it `embeddings`; some third-party copies `embedding`
    const embName = ckpt.has('backbone.embeddings.weight') || !ckpt.has('backbone.embedding.weight')
      ? 'backbone.embeddings' : 'backbone.embedding';
    const embedding = loadLinear(ckpt, embName, V, H);
    // projections, experts and the unembedding may be re-quantised; the embedding is only gathered
    const requant = denseWeightsTransform(opts, backend);
    const lin = linearLoader(ckpt, requant);
    const blocks = cfg.layers.map((k, i) => loadBlock(ckpt, `backbone.layers.${i}`, k, cfg, lin));
    const tied = cfg.tieEmbeddings && !ckpt.has('lm_head.weight');
    const lmHead = tied ? (requant ? requant(embedding) : embedding) : lin('lm_head', V, H);
    const mtp = cfg.mtp && ckpt.has('mtp.layers.0.eh_proj.weight') ? MtpHead.load(ckpt, cfg, lin) : null;
    return new NemotronHModel(backend, cfg, embedding, blocks, loadVector(ckpt, 'backbone.norm_f.weight', [H]), lmHead, mtp,
      opts.kvCacheDtype ?? 'f32');
  }

  /** Bytes of KV cache per token: k and v of every attention block (the MTP head's too, when loaded). */
  kvBytesPerToken(): number {
    const a = this.config.attn;
    if (!a) return 0;
    const blocks = [...this.blocks, ...(this.mtp ? this.mtp.blocks : [])].filter((b) => b.mixer instanceof GqaAttention).length;
    return blocks * 2 * a.nKv * a.headDim * kvDtypeBytes(this.kvCacheDtype);
  }

  createCache(opts: { numBlocks: number; blockSize: number; maxSeqs?: number }): NemotronHCache {
    return new NemotronHCache(this, opts.numBlocks, opts.blockSize, opts.maxSeqs ?? 1);
  }

  weightBytes(): number {
    let n = qmatrixBytes(this.embedding) + (this.lmHead === this.embedding ? 0 : qmatrixBytes(this.lmHead));
    for (const b of this.blocks) n += mixerBytes(b, false);
    return n;
  }

  /** Weight bytes one decoded token reads: every mixer, the top-k experts only, the unembedding. */
  decodeBytesPerToken(): number {
    let n = qmatrixBytes(this.lmHead) + qmatrixBytes(this.embedding) / this.vocabSize;
    for (const b of this.blocks) n += mixerBytes(b, true);
    return n;
  }

  forward(batch: ForwardBatch, cache: ModelCache, logitsOut?: Float32Array): Float32Array {
    return this.forwardHidden(batch, cache, logitsOut).logits;
  }

  /**
   * The forward pass, also returning the final-normed hidden state of every batch row
   * ([T, H], what the MTP head reads) beside the logits of `logitRows`.
   */
  forwardHidden(batch: ForwardBatch, cache: ModelCache, logitsOut?: Float32Array): { logits: Float32Array; hidden: Float32Array } {
    const be = this.backend;
    const c = cache as NemotronHCache;
    const T = batch.tokens.length;
    const H = this.config.hidden;
    const stateMeta: StateMeta = {
      seqs: batch.seqs,
      stateSlots: Int32Array.from(batch.caches, (s) => {
        if (s.stateSlot < 0) throw new TesseraError('sequence has no recurrent-state slot (not from this cache?)');
        return s.stateSlot;
      }),
      keep: batch.stateKeep,
    };
    // a state continues exactly where it stopped: catches KV-only edits (truncate, adoptPrefix)
    // that did not restore the matching recurrent state
    const lengths = c.states.lengths;
    batch.seqs.forEach((s, i) => {
      const at = s.ctxLen - s.queryLen;
      const slot = stateMeta.stateSlots[i];
      if (at !== 0 && lengths[slot] !== at) {
        throw new TesseraError(`recurrent state of sequence ${i} is after ${lengths[slot]} tokens but the batch continues at ` +
          `position ${at}: restore a state snapshot (ModelCache.restoreState) after truncate/adoptPrefix`);
      }
    });
    const x = be.embed(batch.tokens, this.embedding);
    this.blocks.forEach((b, i) => b.apply(be, x, T, { kv: c.kv[i], mamba: c.mamba[i], meta: batch, stateMeta }));
    batch.seqs.forEach((s, i) => {
      lengths[stateMeta.stateSlots[i]] = s.ctxLen;
      const keep = batch.stateKeep?.[i];
      if (keep) keep.forEach((slot, j) => { if (slot >= 0) lengths[slot] = s.ctxLen - s.queryLen + j + 1; });
    });
    const hidden = be.rmsNorm(x, T, this.finalNorm, this.config.eps);
    const R = batch.logitRows.length;
    const xs = new Float32Array(R * H);
    for (let i = 0; i < R; i++) xs.set(hidden.subarray(batch.logitRows[i] * H, (batch.logitRows[i] + 1) * H), i * H);
    return { logits: be.linear(xs, R, this.lmHead, null, logitsOut), hidden };
  }

  /**
   * The MTP head over positions [pos0, pos0+n) of one sequence whose blocks cover them: `h`
   * [n, H] the hidden state at each position, `next` the token after each position. Writes the
   * MTP's KV at those positions; returns the draft logits (every row, or the last) and the MTP
   * hidden states (to chain further drafts).
   */
  mtpForward(seq: SequenceCache, cache: ModelCache, pos0: number, h: Float32Array, next: ArrayLike<number>,
    rows: 'all' | 'last'): { logits: Float32Array; hidden: Float32Array } {
    if (!this.mtp) throw new InputError('this checkpoint has no MTP weights (mtp.* tensors)');
    const be = this.backend;
    const c = cache as NemotronHCache;
    const n = next.length;
    const H = this.config.hidden;
    if (Math.ceil((pos0 + n) / seq.blockSize) > seq.blocks.length) {
      throw new TesseraError(`mtpForward: positions up to ${pos0 + n} are not reserved in the sequence's blocks`);
    }
    const positions = new Int32Array(n);
    const slotMapping = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      positions[i] = pos0 + i;
      slotMapping[i] = seq.slot(pos0 + i);
    }
    const meta = { positions, slotMapping, seqs: [{ queryStart: 0, queryLen: n, ctxLen: pos0 + n, blockTable: seq.blockTable() }] };
    const emb = be.embed(Int32Array.from(next), this.embedding);
    const hidden = this.mtp.forward(be, h, emb, n, c.mtpKv, meta);
    const lo = rows === 'all' ? 0 : n - 1;
    return { logits: be.linear(hidden.subarray(lo * H), n - lo, this.lmHead, null), hidden };
  }
}

function mixerBytes(b: HybridBlock, perToken: boolean): number {
  const m = b.mixer;
  if (m instanceof Mamba2Mixer) return qmatrixBytes(m.inProj) + qmatrixBytes(m.outProj);
  if (m instanceof GqaAttention) return qmatrixBytes(m.wq) + qmatrixBytes(m.wk) + qmatrixBytes(m.wv) + qmatrixBytes(m.wo);
  if (m instanceof Relu2Mlp) return qmatrixBytes(m.up) + qmatrixBytes(m.down);
  const moe = m as NemotronMoe;
  const per = bytesPerExpert(moe.experts);
  let n = qmatrixBytes(moe.router) + per * (perToken ? moe.cfg.topK : moe.experts.numExperts);
  if (moe.fc1) n += qmatrixBytes(moe.fc1) + qmatrixBytes(moe.fc2!);
  if (moe.shared) n += qmatrixBytes(moe.shared.up) + qmatrixBytes(moe.shared.down);
  return n;
}
