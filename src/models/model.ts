import * as os from 'node:os';
/**
 * What every model definition offers the engine. A model composes Backend ops over a packed
 * batch; it never sees scheduling, only the per-step batch layout (ForwardBatch).
 */
import type { AttentionMeta, Backend, KvDtype, KvLayerCache, PrepareExpertsOptions } from '../backend/backend.js';
import type { BlockAllocator } from '../cache/block-allocator.js';
import type { SequenceCache } from '../cache/sequence-cache.js';
import type { RecurrentSnapshot } from '../cache/recurrent-state.js';
import { decodeRow } from '../backend/reference.js';
import { type QMatrix, requantizeInt8 } from '../weights/qmatrix.js';
import { defaultPreparedDir, FilePreparedStore } from '../weights/prepared-store.js';

export interface ForwardBatch extends AttentionMeta {
  /** token ids of every sequence's new tokens, flattened */
  tokens: Int32Array;
  /** the sequences' caches, in the order of `seqs` */
  caches: SequenceCache[];
  /** which rows of the packed batch need logits (e.g. the last token of each sequence) */
  logitRows: Int32Array;
  /** models with sliding-window layers: those layers' slots and block tables (WindowBlocks) */
  window?: AttentionMeta;
  /** recurrent models, optional: per sequence, slots that receive the state after each token (StateMeta.keep) */
  stateKeep?: (Int32Array | null)[];
}

/** Model-owned storage for every sequence's cached state (KV blocks, recurrent states). */
export interface ModelCache {
  readonly blockSize: number;
  readonly numBlocks: number;
  /** a new, empty sequence */
  newSequence(): SequenceCache;
  /** free blocks in the (full-attention) KV pool */
  freeBlocks(): number;
  /** models with sliding-window layers: their separate block pool (sized by createCache's numWindowBlocks) */
  readonly windowPool?: BlockAllocator;
  /**
   * Hybrid (recurrent) models only. A sequence's recurrent state is not positional: rolling
   * back or sharing a prefix needs a copy of the state as it was after that prefix.
   * snapshotState copies it out (tagged with seq.length); restoreState copies it back into the
   * sequence's slot and truncates its KV to the snapshot's length; copyState forks slot → slot.
   */
  snapshotState?(seq: SequenceCache): RecurrentSnapshot;
  restoreState?(seq: SequenceCache, snap: RecurrentSnapshot): void;
  copyState?(from: SequenceCache, to: SequenceCache): void;
  /** free recurrent-state slots (sequences that can still start) */
  freeStateSlots?(): number;
  /** every attention layer's K/V storage (memory accounting, benchmarks that fill a depth) */
  kvLayers(): KvLayerCache[];
}

export interface CausalLM {
  readonly family: string;
  readonly vocabSize: number;
  /** longest context the model supports */
  readonly maxContext: number;
  readonly eosTokenIds: number[];
  readonly backend: Backend;
  /**
   * allocate caches for `numBlocks` blocks of `blockSize` tokens (and `maxSeqs` recurrent slots);
   * models with sliding-window layers give those layers `numWindowBlocks` (default numBlocks)
   */
  createCache(opts: CacheShape): ModelCache;
  /**
   * run the packed batch; returns logits [logitRows.length, vocabSize], in `logitsOut` when given
   * (a caller's buffer of exactly that size, overwritten: an engine's, kept from step to step, so
   * that a step does not allocate a vocabulary's floats per sequence; 12.9 MB at 16 sequences of
   * gpt-oss, which made V8 collect its heap every 2-3 steps on external-memory pressure)
   */
  forward(batch: ForwardBatch, cache: ModelCache, logitsOut?: Float32Array): Float32Array;
  /** bytes of weights held */
  weightBytes(): number;
  /** bytes of weights one decoded token reads (MoE: k experts per layer; the decode roofline) */
  decodeBytesPerToken?(): number;
  /** bytes of cache one token takes in the full-attention pool (sizes the KV pool from --kv-cache-size) */
  kvBytesPerToken?(): number;
  /** models with sliding-window layers: their window and the bytes one token takes in their pool */
  slidingWindowKv?(): { window: number; bytesPerToken: number } | null;
}

export interface CacheShape {
  numBlocks: number;
  blockSize: number;
  maxSeqs?: number;
  numWindowBlocks?: number;
}

/** Choices made when a checkpoint is loaded. */
export interface LoadOptions {
  /** keep dense weights as stored (exact), or re-quantise them to int8 (≈ q8_0 bytes, not exact) */
  denseWeights?: 'bf16' | 'int8';
  /** element type of the KV cache: f32 (exact, default), or f16 / bf16 (half the memory) */
  kvCacheDtype?: KvDtype;
  /**
   * a second copy of the MXFP4 experts in the layout the backend's kernels read fastest (native
   * q8 on AVX-512 VNNI: 16 rows in lanes; the copy replaces the mapped experts in memory): `on`
   * and `auto` (the default) take it from the prepared store on disk (`preparedDir`: written at
   * the first load, mapped by later ones) where it can be written; else `on` copies in memory
   * at each load, and `auto` does so only where the machine's memory holds the checkpoint's page
   * cache and the copy beside it (so that loading again stays a warm read); `off`: neither
   */
  repackExperts?: RepackMode;
  /**
   * where a repacked copy is kept on disk and mapped by later loads (src/weights/prepared-store.ts);
   * undefined: defaultPreparedDir() (TESSERA_CACHE_DIR, else ~/.cache/tessera); null: none
   */
  preparedDir?: string | null;
}

export type RepackMode = 'auto' | 'on' | 'off';

/** headroom `auto` leaves beside the checkpoint and the copy (the dense weights, KV cache, the process) */
export const REPACK_HEADROOM_BYTES = 4 * 2 ** 30;

/** whether the experts get the repacked copy (`copyBytes`) beside a checkpoint of `checkpointBytes` */
export function repackExperts(mode: RepackMode | undefined, checkpointBytes: number, copyBytes: number, totalMem = os.totalmem()): boolean {
  if (mode === 'on') return true;
  if (mode === 'off') return false;
  return totalMem >= checkpointBytes + copyBytes + REPACK_HEADROOM_BYTES;
}

/**
 * How the experts' second layout is made (Backend.prepareExperts): unless `off`, from the
 * prepared store on disk where one can be written (written once, mapped by later loads: no
 * second copy beside the checkpoint in memory or in the page cache), else in memory where
 * repackExperts() allows.
 */
export function expertPreparation(opts: LoadOptions, checkpointBytes: number, copyBytes: number, totalMem = os.totalmem()): PrepareExpertsOptions {
  if (opts.repackExperts === 'off') return {};
  const store = FilePreparedStore.open(opts.preparedDir === undefined ? defaultPreparedDir() : opts.preparedDir);
  return { repack: repackExperts(opts.repackExperts, checkpointBytes, copyBytes, totalMem), store };
}

/**
 * What `denseWeights` does to a loaded projection: re-quantise bf16/f32 to int8 (FP8, NVFP4 and
 * MXFP4 stay as stored), or nothing (undefined).
 */
export function denseWeightsTransform(opts: LoadOptions, backend?: Backend): ((m: QMatrix) => QMatrix) | undefined {
  if (opts.denseWeights !== 'int8') return undefined;
  // the backend may then rearrange the new matrix in place (Backend.prepareMatrix)
  return (m) => {
    const q = requantizeInt8(m, decodeRow);
    return backend?.prepareMatrix?.(q) ?? q;
  };
}
