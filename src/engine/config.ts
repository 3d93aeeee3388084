/** Engine sizing from the user's settings and the model: KV pool, budgets, limits. */
import * as os from 'node:os';
import type { CausalLM } from '../models/model.js';
import { InputError } from '../util/errors.js';
import type { EngineOptions } from './engine.js';

export interface EngineSettings {
  /** bytes for the KV cache; default a quarter of free memory, capped at what maxNumSeqs × maxModelLen needs */
  kvCacheBytes?: number;
  maxNumSeqs?: number;
  maxModelLen?: number;
  maxBatchedTokens?: number;
  blockSize?: number;
  prefixCaching?: boolean;
}

/** Bytes of full-attention cache one token takes (the model says; else an f32 estimate is not possible). */
export function kvBytesPerToken(model: CausalLM): number {
  const f = (model as { kvBytesPerToken?: () => number }).kvBytesPerToken;
  return f ? f.call(model) : 0;
}

export function resolveEngineOptions(model: CausalLM, s: EngineSettings = {}): EngineOptions {
  const blockSize = s.blockSize ?? 16;
  const maxNumSeqs = s.maxNumSeqs ?? 16;
  const maxModelLen = Math.min(s.maxModelLen ?? model.maxContext, model.maxContext);
  if (maxNumSeqs < 1) throw new InputError(`--max-num-seqs: must be at least 1, got ${maxNumSeqs}`);
  if (maxModelLen < 2) throw new InputError(`--max-model-len: must be at least 2, got ${maxModelLen}`);
  const perToken = kvBytesPerToken(model);
  const maxBatchedTokens = s.maxBatchedTokens ?? 256;
  // sliding-window layers hold at most the window (+ the step's new tokens) per running sequence
  const sw = model.slidingWindowKv?.() ?? null;
  const windowBound = sw
    ? maxNumSeqs * (Math.ceil(Math.max(0, sw.window - 1) / blockSize) + 3) + Math.ceil(maxBatchedTokens / blockSize)
    : 0;
  const wantTokens = maxNumSeqs * maxModelLen;
  let numBlocks: number;
  let numWindowBlocks: number | undefined;
  if (s.kvCacheBytes !== undefined) {
    if (perToken === 0) throw new InputError('--kv-cache-size: this model does not report its cache size per token');
    const fullBlock = perToken * blockSize;
    const windowBlock = sw ? sw.bytesPerToken * blockSize : 0;
    numBlocks = Math.floor((s.kvCacheBytes - windowBound * windowBlock) / fullBlock);
    numWindowBlocks = sw ? windowBound : undefined;
    if (sw && numBlocks < windowBound) {
      // a small cache: the window pool never needs more blocks than the full pool
      numBlocks = Math.floor(s.kvCacheBytes / (fullBlock + windowBlock));
      numWindowBlocks = numBlocks;
    }
    if (numBlocks < 1) throw new InputError(`--kv-cache-size: ${s.kvCacheBytes} bytes hold less than one block of ${blockSize} tokens (${fullBlock + windowBlock} bytes)`);
  } else {
    const budget = perToken > 0 ? Math.floor((os.freemem() * 0.25) / perToken) : wantTokens;
    numBlocks = Math.max(1, Math.ceil(Math.min(budget, wantTokens) / blockSize));
    if (sw) numWindowBlocks = Math.min(numBlocks, windowBound);
  }
  const opts: EngineOptions = {
    numBlocks,
    blockSize,
    maxNumSeqs,
    maxBatchedTokens,
    maxModelLen,
    prefixCaching: s.prefixCaching ?? true,
  };
  if (numWindowBlocks !== undefined) opts.numWindowBlocks = numWindowBlocks;
  return opts;
}
