/**
 * Greedy speculative decoding with a model's own MTP head (Nemotron 3 Super): the head drafts
 * k tokens, the main model checks them all in one batched forward, the longest agreeing prefix
 * is kept plus the main model's own next token. Rejected drafts are rolled back: the KV cache
 * by truncation, the Mamba state by adopting the state kept after the last accepted position
 * (the verification forward writes each position's state to a spare slot), or, where no spare
 * slots exist, by restoring a snapshot and re-running the accepted tokens. The output is the
 * plain greedy output, token for token.
 */
import type { SequenceCache } from '../cache/sequence-cache.js';
import type { CausalLM, ForwardBatch, ModelCache } from '../models/model.js';
import { InputError } from '../util/errors.js';
import { packBatch } from './batch.js';
import { argmax, cacheFor, validateIds } from './runner.js';

export interface SpeculativeResult {
  tokens: number[];
  /** draft tokens proposed and accepted by the main model */
  drafted: number;
  accepted: number;
  /** verification forwards of the main model (excluding the prefill) */
  steps: number;
}

/** A model that can draft with an MTP head (NemotronHModel with `mtp.*` weights). */
export interface MtpModel extends CausalLM {
  readonly hiddenSize: number;
  readonly hasMtp: boolean;
  /** forward that also returns the final-normed hidden state of every batch row [T, H] */
  forwardHidden(batch: ForwardBatch, cache: ModelCache): { logits: Float32Array; hidden: Float32Array };
  /** the MTP head over positions [pos0, pos0+n) of `seq`: hidden [n, H], the next tokens [n] */
  mtpForward(seq: SequenceCache, cache: ModelCache, pos0: number, h: Float32Array, next: ArrayLike<number>,
    rows: 'all' | 'last'): { logits: Float32Array; hidden: Float32Array };
}

export function hasMtp(model: CausalLM): model is MtpModel {
  return 'mtpForward' in model && (model as MtpModel).hasMtp === true;
}

function rows(a: Float32Array, width: number, from: number, to: number): Float32Array {
  return a.slice(from * width, to * width);
}

export interface SpeculativeOptions {
  /** replace the MTP's drafts before verification (tests: drive acceptance to known values) */
  editDrafts?: (drafts: number[], position: number) => number[];
  /**
   * How rejected drafts leave the Mamba state: 'keep' (default where the cache offers spare
   * slots) keeps the state after every verified position and adopts the right one; 'rerun'
   * restores the snapshot taken before verification and re-runs the accepted tokens.
   */
  rollback?: 'keep' | 'rerun';
}

/** Caches with spare recurrent-state slots (NemotronHCache). */
interface SpareStateSlots {
  allocStateSlots(n: number): number[];
  releaseStateSlots(slots: number[]): void;
  swapStateSlot(seq: SequenceCache, slot: number, length: number): number;
}

function spareSlots(cache: ModelCache): SpareStateSlots | null {
  return 'allocStateSlots' in cache ? (cache as unknown as SpareStateSlots) : null;
}

export function speculativeGreedy(model: CausalLM, ids: number[], maxNew: number, k: number,
  opts: SpeculativeOptions = {}): SpeculativeResult {
  validateIds(model, ids);
  if (ids.length === 0) throw new InputError('--ids: the prompt is empty');
  if (!hasMtp(model)) throw new InputError('--speculative-tokens: this checkpoint has no MTP head (mtp.* weights)');
  if (k < 1) throw new InputError(`--speculative-tokens: must be ≥ 1, got ${k}`);
  const V = model.vocabSize;
  const H = model.hiddenSize;
  const blockSize = 16;
  const numBlocks = Math.ceil((ids.length + maxNew + k + 1) / blockSize) + 1;
  // one state slot for the sequence, k spares for the states after each verified draft
  const cache: ModelCache = model.createCache({ numBlocks, blockSize, maxSeqs: 1 + k });
  const seq: SequenceCache = cache.newSequence();
  const spare = opts.rollback === 'rerun' ? null : spareSlots(cache);
  let slots = spare ? spare.allocStateSlots(k) : [];
  const res: SpeculativeResult = { tokens: [], drafted: 0, accepted: 0, steps: 0 };
  try {
    if (maxNew === 0) return res;
    const pre = model.forwardHidden(packBatch([{ cache: seq, tokens: ids, logits: 'last' }]), cache);
    let tok = argmax(pre.logits);
    res.tokens.push(tok);
    // MTP inputs not yet run: positions [pendPos, pendPos+n) with their hidden states and next tokens
    let pendPos = 0;
    let pendH = pre.hidden;
    let pendNext = [...ids.slice(1), tok];
    while (res.tokens.length < maxNew) {
      const n0 = seq.length; // position of `tok`
      const kk = Math.min(k, maxNew - res.tokens.length);
      seq.reserve(kk + 1);
      // draft: catch the MTP up on the verified positions, then chain it on its own output
      let d = model.mtpForward(seq, cache, pendPos, pendH, pendNext, 'last');
      const drafts = [argmax(d.logits)];
      for (let i = 1; i < kk; i++) {
        const last = rows(d.hidden, H, d.hidden.length / H - 1, d.hidden.length / H);
        d = model.mtpForward(seq, cache, n0 + i - 1, last, [drafts[i - 1]], 'last');
        drafts.push(argmax(d.logits));
      }
      if (opts.editDrafts) drafts.splice(0, kk, ...opts.editDrafts(drafts.slice(), n0 + 1).slice(0, kk));
      // verify all drafts in one forward (keeping the state after each of tok, d1 … d_{k−1})
      const snap = spare ? null : cache.snapshotState!(seq);
      const batch = packBatch([{ cache: seq, tokens: [tok, ...drafts], logits: 'all' }]);
      if (spare) batch.stateKeep = [Int32Array.from({ length: kk + 1 }, (_, j) => (j < kk ? slots[j] : -1))];
      const v = model.forwardHidden(batch, cache);
      res.steps++;
      let a = 0;
      while (a < kk && argmax(v.logits, a * V, V) === drafts[a]) a++;
      const next = argmax(v.logits, a * V, V);
      res.drafted += kk;
      res.accepted += a;
      if (a < kk && spare) {
        // adopt the state after `d_a` (slot a), truncate KV past it
        slots[a] = spare.swapStateSlot(seq, slots[a], n0 + a + 1);
      } else if (a < kk) {
        // roll back KV and Mamba state to before the check, then advance over the accepted tokens
        cache.restoreState!(seq, snap!);
        model.forwardHidden(packBatch([{ cache: seq, tokens: [tok, ...drafts.slice(0, a)], logits: 'none' }]), cache);
      }
      pendPos = n0;
      pendH = rows(v.hidden, H, 0, a + 1);
      pendNext = [...drafts.slice(0, a), next];
      res.tokens.push(...drafts.slice(0, a), next);
      tok = next;
    }
    res.tokens.length = maxNew;
    return res;
  } finally {
    spare?.releaseStateSlots(slots);
    slots = [];
    seq.free();
  }
}

/**
 * The MTP draft logits for every prompt position but the last: row t from the main model's
 * hidden state at t and token t+1 ([T−1, V]; compare with `<prompt>.mtp_draft_logits.f32`).
 */
export function mtpPromptLogits(model: CausalLM, ids: number[]): Float32Array {
  validateIds(model, ids);
  if (!hasMtp(model)) throw new InputError('this checkpoint has no MTP head (mtp.* weights)');
  const cache = cacheFor(model, ids.length);
  const seq = cache.newSequence();
  try {
    const pre = model.forwardHidden(packBatch([{ cache: seq, tokens: ids, logits: 'none' }]), cache);
    const H = model.hiddenSize;
    if (ids.length < 2) return new Float32Array(0);
    return model.mtpForward(seq, cache, 0, rows(pre.hidden, H, 0, ids.length - 1), ids.slice(1), 'all').logits;
  } finally {
    seq.free();
  }
}
