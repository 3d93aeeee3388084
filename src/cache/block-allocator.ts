/**
 * Fixed-size block pool with reference counts (the nano-vllm block manager's core). Blocks
 * are shared by sequences that share a prefix; a block returns to the free list when its last
 * user lets go.
 */
import { TesseraError } from '../util/errors.js';

export class OutOfBlocksError extends TesseraError {
  constructor(need: number, free: number, kind = '') {
    super(`${kind}KV cache is full: need ${need} more blocks, ${free} free`, 'kv_cache_full');
  }
}

export class BlockAllocator {
  private free: number[] = [];
  private refs: Int32Array;

  constructor(readonly numBlocks: number) {
    this.refs = new Int32Array(numBlocks);
    for (let b = numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  get numFree(): number {
    return this.free.length;
  }

  allocate(): number {
    const b = this.free.pop();
    if (b === undefined) throw new OutOfBlocksError(1, 0);
    this.refs[b] = 1;
    return b;
  }

  retain(b: number): void {
    if (this.refs[b] <= 0) throw new Error(`block ${b} is not allocated`);
    this.refs[b]++;
  }

  release(b: number): void {
    if (this.refs[b] <= 0) throw new Error(`block ${b} released twice`);
    if (--this.refs[b] === 0) this.free.push(b);
  }

  refCount(b: number): number {
    return this.refs[b];
  }
}
