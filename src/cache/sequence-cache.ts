/**
 * One sequence's place in the model cache: its block table (KV blocks in logical order) and
 * how many tokens the cache holds. Models with sliding-window layers keep a second table for
 * those layers (WindowBlocks) that lets go of blocks behind the window; hybrid models add a
 * recurrent-state slot beside it.
 */
import { BlockAllocator, OutOfBlocksError } from './block-allocator.js';
import { WindowBlocks } from './window-blocks.js';

export class SequenceCache {
  readonly blocks: number[] = [];
  /** tokens whose k/v (and state) are in the cache */
  length = 0;
  /** recurrent-state slot for hybrid (Mamba) models, -1 when the model has none */
  stateSlot = -1;
  /** the sliding-window layers' table, when the model has such layers */
  readonly window: WindowBlocks | null;

  /**
   * `states`: where a hybrid model's state slot goes back when the sequence is freed;
   * `window`: the sliding-window layers' pool and window size.
   */
  constructor(private readonly allocator: BlockAllocator, readonly blockSize: number,
    private readonly states?: { release(slot: number): void },
    window?: { pool: BlockAllocator; size: number }) {
    this.window = window ? new WindowBlocks(window.pool, blockSize, window.size) : null;
  }

  /** Full-attention blocks needed to hold `n` more tokens. */
  needFor(n: number): number {
    return Math.max(0, Math.ceil((this.length + n) / this.blockSize) - this.blocks.length);
  }

  /** Sliding-window blocks `reserve(n)` takes from that pool, net of those it gives back (may be < 0). */
  windowNeedFor(n: number): number {
    return this.window ? this.window.netNeed(this.length, n) : 0;
  }

  /** Give back the sliding-window blocks no later query reads (blocks the prefix cache also holds stay there). */
  dropBehindWindow(): void {
    this.window?.dropBehind(this.length);
  }

  /** Make room for `n` more tokens (allocating blocks); throws OutOfBlocksError if a pool is short. */
  reserve(n: number): void {
    const need = this.needFor(n);
    if (need > this.allocator.numFree) throw new OutOfBlocksError(need, this.allocator.numFree);
    this.window?.reserve(this.length, n);
    for (let i = 0; i < need; i++) this.blocks.push(this.allocator.allocate());
  }

  /** Slot (block·blockSize + offset) of logical position `pos`. */
  slot(pos: number): number {
    return this.blocks[Math.floor(pos / this.blockSize)] * this.blockSize + (pos % this.blockSize);
  }

  blockTable(): Int32Array {
    return Int32Array.from(this.blocks);
  }

  /** Drop tokens from the end (speculative rollback); frees blocks that become empty. */
  truncate(len: number): void {
    if (len > this.length) throw new Error(`cannot truncate a sequence of ${this.length} tokens to ${len}`);
    this.window?.truncate(len);
    this.length = len;
    const keep = Math.ceil(len / this.blockSize);
    while (this.blocks.length > keep) this.allocator.release(this.blocks.pop()!);
  }

  /** The block pool this sequence draws from (the prefix cache holds its own references in it). */
  get pool(): BlockAllocator {
    return this.allocator;
  }

  /**
   * Start an empty sequence on shared, already-computed full blocks (a prefix-cache hit): each
   * block is retained, and the length covers them, so new tokens go into fresh blocks after them.
   * Models with sliding-window layers also pass the window blocks that end the prefix
   * (`windowHeld`, from logical block `windowFirst` on).
   */
  adoptPrefix(blocks: readonly number[], windowFirst = 0, windowHeld: readonly number[] = []): void {
    if (this.length !== 0 || this.blocks.length !== 0) throw new Error('adoptPrefix needs an empty sequence');
    this.window?.adopt(blocks.length, windowFirst, windowHeld);
    for (const b of blocks) {
      this.allocator.retain(b);
      this.blocks.push(b);
    }
    this.length = blocks.length * this.blockSize;
  }

  free(): void {
    for (const b of this.blocks) this.allocator.release(b);
    this.blocks.length = 0;
    this.window?.free();
    this.length = 0;
    if (this.states && this.stateSlot >= 0) this.states.release(this.stateSlot);
    this.stateSlot = -1;
  }
}
