/**
 * Packs the new tokens of several sequences into one ForwardBatch: positions continue from
 * each sequence's cache length, blocks are reserved, and each token gets its cache slot.
 */
import type { SequenceCache } from '../cache/sequence-cache.js';
import type { ForwardBatch } from '../models/model.js';
import type { SeqSlice } from '../backend/backend.js';

export interface BatchEntry {
  cache: SequenceCache;
  tokens: ArrayLike<number>;
  /** which of this entry's tokens need logits */
  logits: 'all' | 'last' | 'none';
}

/** Build the batch and advance each cache's length (the forward pass fills those slots). */
export function packBatch(entries: BatchEntry[]): ForwardBatch {
  const total = entries.reduce((a, e) => a + e.tokens.length, 0);
  const tokens = new Int32Array(total);
  const positions = new Int32Array(total);
  const slotMapping = new Int32Array(total);
  const logitRows: number[] = [];
  const seqs: SeqSlice[] = [];
  // sliding-window layers (when the model has them) read their own block table
  const windowed = entries.length > 0 && entries[0].cache.window !== null;
  const windowSlots = windowed ? new Int32Array(total) : null;
  const windowSeqs: SeqSlice[] = [];
  let t = 0;
  for (const e of entries) e.cache.reserve(e.tokens.length);
  for (const e of entries) {
    const start = t;
    const n = e.tokens.length;
    for (let i = 0; i < n; i++, t++) {
      const pos = e.cache.length + i;
      tokens[t] = e.tokens[i];
      positions[t] = pos;
      slotMapping[t] = e.cache.slot(pos);
      if (windowSlots) windowSlots[t] = e.cache.window!.slot(pos);
      if (e.logits === 'all' || (e.logits === 'last' && i === n - 1)) logitRows.push(t);
    }
    e.cache.length += n;
    seqs.push({ queryStart: start, queryLen: n, ctxLen: e.cache.length, blockTable: e.cache.blockTable() });
    if (windowed) windowSeqs.push({ queryStart: start, queryLen: n, ctxLen: e.cache.length, blockTable: Int32Array.from(e.cache.window!.blocks) });
  }
  const batch: ForwardBatch = { tokens, positions, slotMapping, seqs, caches: entries.map((e) => e.cache), logitRows: Int32Array.from(logitRows) };
  if (windowSlots) batch.window = { positions, slotMapping: windowSlots, seqs: windowSeqs };
  return batch;
}
