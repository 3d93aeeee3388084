/**
 * Prefix caching (vLLM's automatic prefix caching, nano-vllm's hashed blocks): every full block
 * of computed tokens is named by a hash chained over all tokens up to its end, so two requests
 * that share a prefix share its blocks and the second one skips their prefill. The cache holds
 * one reference on each block it knows; blocks only the cache still holds are evicted, least
 * recently used first, when the pool runs short.
 *
 * gpt-oss's sliding-window layers keep their blocks in a separate pool and free those behind
 * the window, so the engine keeps a second PrefixCache over that pool under the same hashes; a
 * hit of n blocks also needs the window's blocks before block n there. Hybrid models (Mamba)
 * need their recurrent state as it was at the block's end: StateSnapshots keeps copies taken at
 * block boundaries, and a hit stops at the last matched block that has one.
 */
import { createHash } from 'node:crypto';
import type { BlockAllocator } from '../cache/block-allocator.js';
import type { RecurrentSnapshot } from '../cache/recurrent-state.js';

interface Entry {
  block: number;
  lastUse: number;
}

export class PrefixCache {
  private readonly entries = new Map<string, Entry>();
  private clock = 0;
  /** prompt tokens looked up / found, for the hit-rate metric */
  queriedTokens = 0;
  hitTokens = 0;

  constructor(private readonly pool: BlockAllocator, readonly blockSize: number) {}

  /** Chain hashes of the full blocks of `tokens`, continuing from `prev` (the hashes already known). */
  static extendHashes(prev: string[], tokens: ArrayLike<number>, blockSize: number): string[] {
    const out = prev.slice();
    const full = Math.floor(tokens.length / blockSize);
    for (let b = prev.length; b < full; b++) {
      const h = createHash('sha256');
      if (b > 0) h.update(out[b - 1]);
      const ids = new Int32Array(blockSize);
      for (let i = 0; i < blockSize; i++) ids[i] = tokens[b * blockSize + i];
      h.update(new Uint8Array(ids.buffer));
      out.push(h.digest('base64'));
    }
    return out;
  }

  /** Blocks of the longest cached prefix among `hashes` (in order). */
  lookup(hashes: readonly string[]): number[] {
    const blocks: number[] = [];
    const now = ++this.clock;
    for (const h of hashes) {
      const e = this.entries.get(h);
      if (!e) break;
      e.lastUse = now;
      blocks.push(e.block);
    }
    return blocks;
  }

  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  /** Record that `block` holds the tokens named by `hash` (no-op if the hash is known). */
  insert(hash: string, block: number): void {
    if (this.entries.has(hash)) return;
    this.pool.retain(block);
    this.entries.set(hash, { block, lastUse: ++this.clock });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Blocks that only the cache holds (could be freed on demand). */
  evictable(): number {
    let n = 0;
    for (const e of this.entries.values()) if (this.pool.refCount(e.block) === 1) n++;
    return n;
  }

  /** Free up to `n` blocks that only the cache holds, least recently used first; returns how many. */
  evict(n: number): number {
    if (n <= 0) return 0;
    const idle = [...this.entries].filter(([, e]) => this.pool.refCount(e.block) === 1);
    idle.sort((a, b) => a[1].lastUse - b[1].lastUse);
    let freed = 0;
    for (const [h, e] of idle) {
      if (freed >= n) break;
      this.entries.delete(h);
      this.pool.release(e.block);
      freed++;
    }
    return freed;
  }

  /** Drop everything (blocks still used by sequences stay theirs). */
  clear(): void {
    for (const e of this.entries.values()) this.pool.release(e.block);
    this.entries.clear();
  }
}

/**
 * Recurrent-state snapshots at block boundaries, named by the chain hash of the block that ends
 * there; least recently used ones go when the byte budget is exceeded.
 */
export class StateSnapshots {
  private readonly entries = new Map<string, { snap: RecurrentSnapshot; bytes: number; lastUse: number }>();
  private clock = 0;
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  has(hash: string): boolean {
    return this.entries.has(hash);
  }

  get(hash: string): RecurrentSnapshot | undefined {
    const e = this.entries.get(hash);
    if (e) e.lastUse = ++this.clock;
    return e?.snap;
  }

  put(hash: string, snap: RecurrentSnapshot): void {
    if (this.entries.has(hash)) return;
    const bytes = [...snap.conv, ...snap.ssm].reduce((a, x) => a + x.byteLength, 0);
    if (bytes > this.budgetBytes) return;
    while (this.used + bytes > this.budgetBytes) {
      let oldest: string | null = null;
      let at = Infinity;
      for (const [h, e] of this.entries) if (e.lastUse < at) [oldest, at] = [h, e.lastUse];
      this.used -= this.entries.get(oldest!)!.bytes;
      this.entries.delete(oldest!);
    }
    this.entries.set(hash, { snap, bytes, lastUse: ++this.clock });
    this.used += bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.used;
  }
}
