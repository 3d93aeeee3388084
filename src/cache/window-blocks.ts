/**
 * The block table of a sequence's sliding-window layers (vLLM's sliding-window KV group). Those
 * layers only ever read the last `window` positions, so blocks that fall wholly behind the window
 * go back to their own pool and their table entries become −1; the table stays indexed by logical
 * block, so kernels address it exactly like a full-attention table (they never read before the
 * window). A sequence then holds at most ⌈(window−1)/blockSize⌉ + 1 window blocks between steps,
 * however long it grows.
 */
import { BlockAllocator, OutOfBlocksError } from './block-allocator.js';

export class WindowBlocks {
  /** physical block per logical block, −1 where it fell behind the window */
  readonly blocks: number[] = [];

  constructor(readonly pool: BlockAllocator, readonly blockSize: number, readonly window: number) {}

  /** First logical block a query at position `pos` reads. */
  firstNeeded(pos: number): number {
    return Math.floor(Math.max(0, pos - this.window + 1) / this.blockSize);
  }

  /** Blocks that `reserve(length, n)` would take from the pool, net of those it gives back. */
  netNeed(length: number, n: number): number {
    const total = Math.ceil((length + n) / this.blockSize);
    const fresh = Math.max(0, total - this.blocks.length);
    return fresh - this.behind(length);
  }

  /** Blocks wholly behind the window of the next query at `length` that go back to the pool when dropped. */
  private behind(length: number): number {
    const first = Math.min(this.firstNeeded(length), this.blocks.length);
    let n = 0;
    for (let b = 0; b < first; b++) if (this.blocks[b] >= 0 && this.pool.refCount(this.blocks[b]) === 1) n++;
    return n;
  }

  /** Let go of blocks behind the window of the next query at `length`, then cover `length + n` tokens. */
  reserve(length: number, n: number): void {
    this.dropBehind(length);
    const need = Math.ceil((length + n) / this.blockSize) - this.blocks.length;
    if (need <= 0) return;
    if (need > this.pool.numFree) throw new OutOfBlocksError(need, this.pool.numFree, 'sliding-window ');
    for (let i = 0; i < need; i++) this.blocks.push(this.pool.allocate());
  }

  dropBehind(length: number): void {
    const first = Math.min(this.firstNeeded(length), this.blocks.length);
    for (let b = 0; b < first; b++) {
      if (this.blocks[b] >= 0) {
        this.pool.release(this.blocks[b]);
        this.blocks[b] = -1;
      }
    }
  }

  slot(pos: number): number {
    const b = this.blocks[Math.floor(pos / this.blockSize)];
    if (b === undefined || b < 0) throw new Error(`sliding-window block for position ${pos} is not held`);
    return b * this.blockSize + (pos % this.blockSize);
  }

  /** Keep `len` tokens; the next query at `len` must still find its window (rollback limit). */
  truncate(len: number): void {
    const keep = Math.ceil(len / this.blockSize);
    while (this.blocks.length > keep) {
      const b = this.blocks.pop()!;
      if (b >= 0) this.pool.release(b);
    }
    for (let b = this.firstNeeded(len); b < this.blocks.length; b++) {
      if (this.blocks[b] < 0) throw new Error(`cannot roll back to ${len} tokens: sliding-window block ${b} was already freed`);
    }
  }

  /**
   * Start on a cached prefix of `numBlocks` blocks: `held[i]` is the physical block of logical
   * block `first + i` (retained here); earlier ones are behind the window.
   */
  adopt(numBlocks: number, first: number, held: readonly number[]): void {
    if (this.blocks.length !== 0) throw new Error('adopt needs an empty table');
    if (first + held.length !== numBlocks) throw new Error('adopt: the held blocks must end the prefix');
    for (let b = 0; b < first; b++) this.blocks.push(-1);
    for (const b of held) {
      this.pool.retain(b);
      this.blocks.push(b);
    }
  }

  free(): void {
    for (const b of this.blocks) if (b >= 0) this.pool.release(b);
    this.blocks.length = 0;
  }

  /** Blocks held now. */
  held(): number {
    let n = 0;
    for (const b of this.blocks) if (b >= 0) n++;
    return n;
  }
}
