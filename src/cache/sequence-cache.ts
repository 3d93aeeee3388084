/**
 * One sequence's place in the model cache: its block table (KV blocks in logical order) and
 * how many tokens the cache holds. Hybrid models add a recurrent-state slot beside it.
 */
import { BlockAllocator, OutOfBlocksError } from './block-allocator.js';

export class SequenceCache {
  readonly blocks: number[] = [];
  /** tokens whose k/v (and state) are in the cache */
  length = 0;
  /** recurrent-state slot for hybrid (Mamba) models, -1 when the model has none */
  stateSlot = -1;

  /** `states`: where a hybrid model's state slot goes back when the sequence is freed */
  constructor(private readonly allocator: BlockAllocator, readonly blockSize: number,
    private readonly states?: { release(slot: number): void }) {}

  /** Make room for `n` more tokens (allocating blocks); throws OutOfBlocksError if the pool is short. */
  reserve(n: number): void {
    const need = Math.ceil((this.length + n) / this.blockSize) - this.blocks.length;
    if (need <= 0) return;
    if (need > this.allocator.numFree) throw new OutOfBlocksError(need, this.allocator.numFree);
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
   */
  adoptPrefix(blocks: readonly number[]): void {
    if (this.length !== 0 || this.blocks.length !== 0) throw new Error('adoptPrefix needs an empty sequence');
    for (const b of blocks) {
      this.allocator.retain(b);
      this.blocks.push(b);
    }
    this.length = blocks.length * this.blockSize;
  }

  free(): void {
    for (const b of this.blocks) this.allocator.release(b);
    this.blocks.length = 0;
    this.length = 0;
    if (this.states && this.stateSlot >= 0) this.states.release(this.stateSlot);
    this.stateSlot = -1;
  }
}
