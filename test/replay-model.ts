/**
 * A test-only model that replays a fixed token script: the n-th token it is asked to predict for
 * a sequence is script[n] (then `after` forever). It lets API tests drive exact completions
 * (reasoning, tool calls, malformed headers) through the real engine, parser and server.
 */
import { BlockAllocator } from '../src/cache/block-allocator.js';
import { SequenceCache } from '../src/cache/sequence-cache.js';
import { createBackend } from '../src/backend/index.js';
import type { CausalLM, ForwardBatch, ModelCache } from '../src/models/model.js';

export class ReplayModel implements CausalLM {
  readonly family = 'replay';
  readonly maxContext = 4096;
  readonly eosTokenIds: number[] = [];
  readonly backend = createBackend('reference');
  private readonly emitted = new WeakMap<SequenceCache, number>();
  /** prompts seen by forward (the tokens of each sequence's first chunk), for assertions */
  readonly prompts: number[][] = [];

  /** tokens preferred, in order, when the script's token is not allowed (constrained decoding) */
  fallback: number[] = [];

  constructor(readonly vocabSize: number, public script: number[], public after = 0) {}

  createCache(opts: { numBlocks: number; blockSize: number }): ModelCache {
    const alloc = new BlockAllocator(opts.numBlocks);
    return {
      blockSize: opts.blockSize, numBlocks: opts.numBlocks,
      newSequence: () => new SequenceCache(alloc, opts.blockSize),
      freeBlocks: () => alloc.numFree,
      kvLayers: () => [],
    };
  }

  forward(batch: ForwardBatch): Float32Array {
    const V = this.vocabSize;
    const out = new Float32Array(batch.logitRows.length * V);
    for (const s of batch.seqs) if (s.ctxLen === s.queryLen) this.prompts.push(Array.from(batch.tokens.subarray(s.queryStart, s.queryStart + s.queryLen)));
    batch.logitRows.forEach((row, i) => {
      const si = batch.seqs.findIndex((s) => row >= s.queryStart && row < s.queryStart + s.queryLen);
      const cache = batch.caches[si];
      const n = this.emitted.get(cache) ?? 0;
      this.emitted.set(cache, n + 1);
      const tok = n < this.script.length ? this.script[n] : this.after;
      // far below the script token, so that sampling at temperature 1 replays it too (a gap of 20
      // over 200k ids let a random token through about once in a hundred runs)
      out.fill(-1e4, i * V, (i + 1) * V);
      this.fallback.forEach((f, k) => (out[i * V + f] = 5 - k * 0.1));
      out[i * V + tok] = 10;
    });
    return out;
  }

  weightBytes(): number {
    return 0;
  }
}
