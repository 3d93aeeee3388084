/**
 * The engine core (vLLM v1's EngineCore, nano-vllm's LLMEngine): continuous batching over the
 * packed forward. Each step the scheduler picks, under a token budget, a decode token for every
 * running sequence and prompt chunks for waiting ones (chunked prefill: prefill and decode are one
 * code path), runs one forward, samples where a sequence reached its end, and reports tokens.
 * Requests join and leave at every step. When the KV pool runs short, idle prefix-cache blocks are
 * evicted first, then the most recently admitted sequence is preempted and later recomputed.
 *
 * The engine is synchronous and single-threaded; `EngineLoop` drives it without blocking, and
 * `WorkerEngine` runs it on its own thread.
 */
import type { SequenceCache } from '../cache/sequence-cache.js';
import type { CausalLM, ModelCache } from '../models/model.js';
import { InputError } from '../util/errors.js';
import { packBatch, type BatchEntry } from './batch.js';
import { PrefixCache, StateSnapshots } from './prefix-cache.js';
import { Sampler, TokenCounts, type SamplingParams, type TokenLogprob } from './sampling.js';

/** steps whose logits fit this many rows reuse one buffer (Engine.logitsBuf); more rows get a new one */
const LOGITS_BUFFER_ROWS = 64;

/** Decides which tokens are allowed next (constrained decoding); advanced with each sampled token. */
export interface TokenConstraint {
  allowed(id: number): boolean;
  /** feed the sampled token */
  accept(id: number): void;
  /** the output is complete: only end-of-sequence is allowed next */
  isComplete(): boolean;
}

export interface EngineRequest {
  id: string;
  prompt: number[];
  sampling: SamplingParams;
  constraint?: TokenConstraint;
}

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

export interface GeneratedToken {
  id: number;
  logprob?: number;
  top?: TokenLogprob[];
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** prompt tokens served from the prefix cache (not recomputed), last admission */
  cachedTokens: number;
}

/** What one step produced for one request. */
export interface RequestOutput {
  id: string;
  tokens: GeneratedToken[];
  finishReason?: FinishReason;
  /** the stop token that ended it (not part of `tokens`) */
  stopToken?: number;
  error?: string;
  usage?: Usage;
}

export interface EngineOptions {
  /** KV blocks in the pool */
  numBlocks: number;
  /** models with sliding-window layers: blocks in those layers' pool (default numBlocks) */
  numWindowBlocks?: number;
  blockSize: number;
  /** most sequences running at once */
  maxNumSeqs: number;
  /** most tokens in one step (chunked-prefill budget) */
  maxBatchedTokens: number;
  /** longest prompt + output */
  maxModelLen: number;
  prefixCaching: boolean;
  /** hybrid models: bytes of recurrent-state snapshots kept for prefix hits (default 512 MiB) */
  stateSnapshotBytes?: number;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksTotal: number;
  kvBlocksUsed: number;
  /** sliding-window layers' pool (0 when the model has none) */
  windowBlocksTotal: number;
  windowBlocksUsed: number;
  prefixCacheBlocks: number;
  prefixCacheQueriedTokens: number;
  prefixCacheHitTokens: number;
  preemptions: number;
  steps: number;
}

class Sequence {
  readonly tokens: number[];
  readonly promptLen: number;
  cache: SequenceCache | null = null;
  /** tokens whose k/v are in the cache */
  computed = 0;
  /** chain hashes of the full blocks of `tokens` */
  hashes: string[] = [];
  /** full blocks already offered to the prefix cache */
  registered = 0;
  cachedTokens = 0;
  readonly counts: TokenCounts;
  readonly sampler: Sampler;
  aborted = false;

  constructor(readonly req: EngineRequest, readonly order: number) {
    this.tokens = req.prompt.slice();
    this.promptLen = req.prompt.length;
    this.counts = new TokenCounts(req.prompt);
    this.sampler = new Sampler(req.sampling);
  }
  get outputLen(): number {
    return this.tokens.length - this.promptLen;
  }
}

export class Engine {
  readonly cache: ModelCache;
  private readonly prefix: PrefixCache | null;
  /** sliding-window layers: their blocks by the same chain hashes (a hit needs the window's blocks) */
  private readonly windowPrefix: PrefixCache | null;
  /** hybrid models: recurrent states at block boundaries, for prefix hits */
  private readonly snapshots: StateSnapshots | null;
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly byId = new Map<string, Sequence>();
  private order = 0;
  private preemptions = 0;
  /** the logits of steps with up to LOGITS_BUFFER_ROWS rows, sampled within their step */
  private logitsBuf = new Float32Array(0);
  private steps = 0;
  private readonly eos: Set<number>;

  constructor(readonly model: CausalLM, readonly opts: EngineOptions) {
    this.cache = model.createCache({
      numBlocks: opts.numBlocks, blockSize: opts.blockSize, maxSeqs: opts.maxNumSeqs,
      numWindowBlocks: opts.numWindowBlocks ?? opts.numBlocks,
    });
    const probe = this.cache.newSequence();
    const pool = probe.pool;
    probe.free();
    // prefix reuse needs every layer's state at a block boundary: KV blocks, and for hybrid models
    // snapshots of the recurrent state taken where prefill chunks end on a block boundary
    const hybrid = hasRecurrentState(model);
    const snapshots = hybrid && this.cache.snapshotState !== undefined && this.cache.restoreState !== undefined;
    this.prefix = opts.prefixCaching && (!hybrid || snapshots) ? new PrefixCache(pool, opts.blockSize) : null;
    this.snapshots = this.prefix && hybrid ? new StateSnapshots(opts.stateSnapshotBytes ?? 512 * 2 ** 20) : null;
    const wp = this.cache.windowPool;
    this.windowPrefix = this.prefix && wp ? new PrefixCache(wp, opts.blockSize) : null;
    this.eos = new Set(model.eosTokenIds);
  }

  /** Queue a request; throws InputError when it can never run. */
  add(req: EngineRequest): void {
    if (this.byId.has(req.id)) throw new InputError(`request id "${req.id}" is already in use`);
    if (req.prompt.length === 0) throw new InputError('the prompt is empty');
    for (let i = 0; i < req.prompt.length; i++) {
      const t = req.prompt[i];
      if (!Number.isInteger(t) || t < 0 || t >= this.model.vocabSize) {
        throw new InputError(`prompt token ${t} at index ${i} is outside the vocabulary [0, ${this.model.vocabSize})`);
      }
    }
    const maxLen = Math.min(this.opts.maxModelLen, this.model.maxContext);
    if (req.prompt.length >= maxLen) {
      throw new InputError(`the prompt has ${req.prompt.length} tokens, more than the context allows (${maxLen} incl. at least one generated token)`);
    }
    const blocksNeeded = Math.ceil((req.prompt.length + 1) / this.opts.blockSize);
    if (blocksNeeded > this.opts.numBlocks) {
      throw new InputError(`the prompt needs ${blocksNeeded} KV blocks but the cache has ${this.opts.numBlocks} (raise --kv-cache-size)`);
    }
    const seq = new Sequence(req, this.order++);
    this.byId.set(req.id, seq);
    this.waiting.push(seq);
  }

  /** Cancel a request: it is removed (and its blocks freed) at the next step. */
  abort(id: string): void {
    const s = this.byId.get(id);
    if (s) s.aborted = true;
  }

  hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  stats(): EngineStats {
    const free = this.cache.freeBlocks();
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      kvBlocksTotal: this.opts.numBlocks,
      kvBlocksUsed: this.opts.numBlocks - free - (this.prefix?.evictable() ?? 0),
      windowBlocksTotal: this.cache.windowPool?.numBlocks ?? 0,
      windowBlocksUsed: this.cache.windowPool
        ? this.cache.windowPool.numBlocks - this.cache.windowPool.numFree - (this.windowPrefix?.evictable() ?? 0)
        : 0,
      prefixCacheBlocks: this.prefix?.size ?? 0,
      prefixCacheQueriedTokens: this.prefix?.queriedTokens ?? 0,
      prefixCacheHitTokens: this.prefix?.hitTokens ?? 0,
      preemptions: this.preemptions,
      steps: this.steps,
    };
  }

  /** One scheduling step + forward + sampling. */
  step(): RequestOutput[] {
    const outputs: RequestOutput[] = [];
    this.reapAborted(outputs);
    const plan = this.schedule(outputs);
    if (plan.length === 0) return outputs;
    this.steps++;
    const entries: BatchEntry[] = plan.map(({ seq, n }) => ({
      cache: seq.cache!,
      tokens: seq.tokens.slice(seq.computed, seq.computed + n),
      logits: seq.computed + n === seq.tokens.length ? 'last' : 'none',
    }));
    let logits: Float32Array;
    try {
      const batch = packBatch(entries);
      const n = batch.logitRows.length * this.model.vocabSize;
      const reuse = batch.logitRows.length <= LOGITS_BUFFER_ROWS;
      if (reuse && this.logitsBuf.length < n) this.logitsBuf = new Float32Array(n);
      logits = this.model.forward(batch, this.cache, reuse ? this.logitsBuf.subarray(0, n) : undefined);
    } catch (e) {
      // a failed forward ends the step's requests with an error; the engine keeps serving
      const msg = e instanceof Error ? e.message : String(e);
      for (const { seq } of plan) outputs.push(this.finish(seq, 'error', undefined, msg));
      return outputs;
    }
    const V = this.model.vocabSize;
    let row = 0;
    for (let i = 0; i < plan.length; i++) {
      const { seq, n } = plan[i];
      seq.computed += n;
      this.registerBlocks(seq);
      if (entries[i].logits === 'none') continue;
      const out = this.sampleNext(seq, logits.subarray(row * V, (row + 1) * V));
      row++;
      if (out) outputs.push(out);
    }
    return outputs;
  }

  private sampleNext(seq: Sequence, logits: Float32Array): RequestOutput | null {
    const p = seq.req.sampling;
    const c = seq.req.constraint;
    let mask: ((id: number) => boolean) | undefined;
    if (c) {
      const stops = new Set([...p.stopTokenIds, ...this.eos]);
      mask = c.isComplete() ? (id) => stops.has(id) : (id) => !stops.has(id) && c.allowed(id);
    }
    const r = seq.sampler.sample(logits, seq.counts, mask);
    const isStop = p.stopTokenIds.includes(r.token) || (!p.ignoreEos && this.eos.has(r.token));
    if (isStop) return this.finish(seq, 'stop', [], undefined, r.token);
    c?.accept(r.token);
    seq.tokens.push(r.token);
    seq.counts.add(r.token);
    const tok: GeneratedToken = { id: r.token };
    if (r.logprob !== undefined) tok.logprob = r.logprob;
    if (r.top) tok.top = r.top;
    const maxLen = Math.min(this.opts.maxModelLen, this.model.maxContext);
    if (seq.outputLen >= p.maxTokens || seq.tokens.length >= maxLen) return this.finish(seq, 'length', [tok]);
    return { id: seq.req.id, tokens: [tok] };
  }

  private finish(seq: Sequence, reason: FinishReason, tokens: GeneratedToken[] = [], error?: string, stopToken?: number): RequestOutput {
    this.remove(seq);
    const out: RequestOutput = {
      id: seq.req.id, tokens, finishReason: reason,
      usage: { promptTokens: seq.promptLen, completionTokens: seq.outputLen, cachedTokens: seq.cachedTokens },
    };
    if (error !== undefined) out.error = error;
    if (stopToken !== undefined) out.stopToken = stopToken;
    return out;
  }

  private remove(seq: Sequence): void {
    seq.cache?.free();
    seq.cache = null;
    this.byId.delete(seq.req.id);
    let i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    i = this.waiting.indexOf(seq);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  private reapAborted(outputs: RequestOutput[]): void {
    for (const s of [...this.running, ...this.waiting]) if (s.aborted) outputs.push(this.finish(s, 'abort'));
  }

  /** Offer newly computed full blocks to the prefix cache. */
  private registerBlocks(seq: Sequence): void {
    if (!this.prefix || !seq.cache) return;
    const full = Math.floor(seq.computed / this.opts.blockSize);
    if (full <= seq.registered) return;
    seq.hashes = PrefixCache.extendHashes(seq.hashes, seq.tokens.slice(0, full * this.opts.blockSize), this.opts.blockSize);
    for (let b = seq.registered; b < full; b++) {
      this.prefix.insert(seq.hashes[b], seq.cache.blocks[b]);
      // sliding-window layers: the block is still held (it falls behind the window only at the next reserve)
      const wb = seq.cache.window?.blocks[b] ?? -1;
      if (this.windowPrefix && wb >= 0) this.windowPrefix.insert(seq.hashes[b], wb);
    }
    seq.registered = full;
    // hybrid: the state as it is now, at this block boundary (prefill chunks are cut to end on one)
    if (this.snapshots && seq.computed === full * this.opts.blockSize && full > 0 && seq.computed <= seq.promptLen) {
      this.snapshots.put(seq.hashes[full - 1], this.cache.snapshotState!(seq.cache));
    }
  }

  /**
   * The next chunk of a sequence's prefill. Hybrid models with prefix caching end a chunk that
   * does not finish the prompt on a block boundary, and stop once at the prompt's last full block,
   * so the recurrent state there can be snapshotted for later prefix hits.
   */
  private chunk(seq: Sequence, n: number): number {
    if (!this.snapshots || seq.computed >= seq.promptLen) return n;
    const bs = this.opts.blockSize;
    const end = seq.computed + n;
    const lastBoundary = Math.floor((seq.promptLen - 1) / bs) * bs;
    if (end >= seq.promptLen) return lastBoundary > seq.computed ? lastBoundary - seq.computed : n;
    const aligned = Math.floor(end / bs) * bs;
    return aligned > seq.computed ? aligned - seq.computed : n;
  }

  /**
   * Make `need` blocks free (and `windowNeed` in the sliding-window pool), evicting idle cached
   * blocks; false when that is not enough.
   */
  private ensureFree(need: number, windowNeed = 0): boolean {
    const free = this.cache.freeBlocks();
    if (free < need) this.prefix?.evict(need - free);
    const wp = this.cache.windowPool;
    if (wp && wp.numFree < windowNeed) this.windowPrefix?.evict(windowNeed - wp.numFree);
    return this.cache.freeBlocks() >= need && (!wp || wp.numFree >= windowNeed);
  }

  private preempt(seq: Sequence): void {
    // recompute later: drop its blocks (registered ones survive in the prefix cache)
    seq.cache?.free();
    seq.cache = null;
    seq.computed = 0;
    seq.registered = 0;
    this.running.splice(this.running.indexOf(seq), 1);
    this.waiting.unshift(seq);
    this.preemptions++;
  }

  private schedule(outputs: RequestOutput[]): { seq: Sequence; n: number }[] {
    const plan: { seq: Sequence; n: number }[] = [];
    let budget = this.opts.maxBatchedTokens;
    // running sequences first, oldest first: a decode token each, or their next prefill chunk
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i];
      const n = this.chunk(seq, Math.min(seq.tokens.length - seq.computed, budget));
      if (n <= 0) continue;
      seq.cache!.dropBehindWindow(); // first, so the prefix cache can evict what only it still holds
      const need = seq.cache!.needFor(n);
      const windowNeed = seq.cache!.windowNeedFor(n);
      let ok = this.ensureFree(need, windowNeed);
      while (!ok) {
        // preempt the newest running sequence that is not already in this step
        const victim = [...this.running].reverse().find((s) => s !== seq && !plan.some((p) => p.seq === s));
        if (!victim) break;
        this.preempt(victim);
        ok = this.ensureFree(need, windowNeed);
      }
      if (!ok) {
        this.preempt(seq);
        i--;
        continue;
      }
      seq.cache!.reserve(n); // hold the blocks now so later admissions see the true free count
      plan.push({ seq, n });
      budget -= n;
    }
    // then admit waiting sequences while there is budget, a sequence slot and memory
    while (this.waiting.length > 0 && budget > 0 && this.running.length < this.opts.maxNumSeqs) {
      const seq = this.waiting[0];
      if (!seq.cache) this.attach(seq);
      const n = this.chunk(seq, Math.min(seq.tokens.length - seq.computed, budget));
      seq.cache!.dropBehindWindow(); // first, so the prefix cache can evict what only it still holds
      const need = seq.cache!.needFor(n);
      const windowNeed = seq.cache!.windowNeedFor(n);
      // keep a block of headroom per running sequence so admissions don't thrash decodes
      if (!this.ensureFree(need + (this.running.length > 0 ? 1 : 0), windowNeed)) {
        if (this.running.length === 0 && this.ensureFree(need, windowNeed)) {
          // nothing else runs: take what there is
        } else {
          if (this.running.length === 0) {
            // alone and still too big (prompt + output outgrew the pool): end it, keep serving
            outputs.push(this.finish(seq, 'error', [], `the sequence (${seq.tokens.length} tokens) no longer fits in the KV cache`));
            continue;
          }
          break;
        }
      }
      this.waiting.shift();
      this.running.push(seq);
      seq.cache!.reserve(n);
      plan.push({ seq, n });
      budget -= n;
    }
    return plan;
  }

  /** A fresh cache for a sequence, starting on the longest cached prefix of its tokens. */
  private attach(seq: Sequence): void {
    seq.cache = this.cache.newSequence();
    seq.computed = 0;
    seq.registered = 0;
    seq.cachedTokens = 0;
    if (!this.prefix) return;
    const bs = this.opts.blockSize;
    // at least one token must be computed to get logits: never reuse the block holding the last token
    const reusable = Math.floor((seq.tokens.length - 1) / bs);
    seq.hashes = PrefixCache.extendHashes([], seq.tokens.slice(0, reusable * bs), bs);
    let blocks = this.prefix.lookup(seq.hashes);
    this.prefix.queriedTokens += seq.promptLen;
    // every layer must find its state at the end of the hit: sliding-window layers the blocks of
    // the window before it, hybrid models a recurrent-state snapshot
    const snaps = this.snapshots;
    const wp = this.windowPrefix;
    const win = seq.cache.window;
    const windowFirst = (n: number) => (win ? win.firstNeeded(n * bs) : n);
    const usable = (n: number) => {
      if (snaps && !snaps.has(seq.hashes[n - 1])) return false;
      if (win && wp) for (let b = windowFirst(n); b < n; b++) if (!wp.has(seq.hashes[b])) return false;
      return true;
    };
    let n = blocks.length;
    while (n > 0 && !usable(n)) n--;
    blocks = blocks.slice(0, n);
    if (blocks.length > 0) {
      const first = windowFirst(n);
      const held = win && wp ? wp.lookup(seq.hashes.slice(first, n)) : [];
      seq.cache.adoptPrefix(blocks, first, held);
      if (snaps) this.cache.restoreState!(seq.cache, snaps.get(seq.hashes[blocks.length - 1])!);
      seq.computed = blocks.length * bs;
      seq.registered = blocks.length;
      seq.cachedTokens = Math.min(seq.computed, seq.promptLen);
      this.prefix.hitTokens += seq.cachedTokens;
    }
  }
}

/** Models with per-sequence recurrent state (Mamba) mark themselves with `hasRecurrentState`. */
function hasRecurrentState(model: CausalLM): boolean {
  return (model as { hasRecurrentState?: boolean }).hasRecurrentState === true;
}
