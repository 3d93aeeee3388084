/**
 * Single-process helpers over a model: full-prompt logits (in one pass or in chunks) and
 * greedy generation through the KV cache. The server's scheduler uses the same packBatch path.
 */
import type { CausalLM, ModelCache } from '../models/model.js';
import { InputError } from '../util/errors.js';
import { packBatch } from './batch.js';
import { argmax } from '../util/argmax.js';

export const DEFAULT_BLOCK_SIZE = 16;

export function validateIds(model: CausalLM, ids: ArrayLike<number>, what = '--ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) {
      throw new InputError(`${what}: token id ${id} at index ${i} is outside the vocabulary [0, ${model.vocabSize})`);
    }
  }
}

/** A cache big enough for `tokens` positions in each of `seqs` sequences. */
export function cacheFor(model: CausalLM, tokens: number, seqs = 1, blockSize = DEFAULT_BLOCK_SIZE): ModelCache {
  const perSeq = Math.ceil(tokens / blockSize) + 1;
  return model.createCache({ numBlocks: perSeq * seqs, blockSize, maxSeqs: seqs });
}

/** Logits [T, V] for every prompt position; `chunk` > 0 prefills in chunks of that many tokens. */
export function promptLogits(model: CausalLM, ids: number[], chunk = 0): Float32Array {
  validateIds(model, ids);
  if (ids.length === 0) throw new InputError('--ids: the prompt is empty');
  const V = model.vocabSize;
  const cache = cacheFor(model, ids.length);
  const seq = cache.newSequence();
  const out = new Float32Array(ids.length * V);
  const step = chunk > 0 ? chunk : ids.length;
  for (let s = 0; s < ids.length; s += step) {
    const part = ids.slice(s, s + step);
    const batch = packBatch([{ cache: seq, tokens: part, logits: 'all' }]);
    out.set(model.forward(batch, cache), s * V);
  }
  seq.free();
  return out;
}

export { argmax } from '../util/argmax.js';

/** Greedy decoding through the KV cache: prefill, then one token per step. */
export function greedyGenerate(model: CausalLM, ids: number[], maxNew: number): number[] {
  validateIds(model, ids);
  if (ids.length === 0) throw new InputError('--ids: the prompt is empty');
  const cache = cacheFor(model, ids.length + maxNew);
  const seq = cache.newSequence();
  const out: number[] = [];
  let next = ids;
  const buf = new Float32Array(model.vocabSize);  // (one step's logits, reused)
  for (let i = 0; i < maxNew; i++) {
    const logits = model.forward(packBatch([{ cache: seq, tokens: next, logits: 'last' }]), cache, buf);
    const tok = argmax(logits);
    out.push(tok);
    next = [tok];
  }
  seq.free();
  return out;
}
