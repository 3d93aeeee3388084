/** Block tables: the full-attention table and the sliding-window table that frees behind the window. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockAllocator } from '../src/cache/block-allocator.js';
import { SequenceCache } from '../src/cache/sequence-cache.js';

test('a sliding-window table keeps only the blocks the next query reads, and rollback stops at the window', () => {
  const full = new BlockAllocator(64);
  const win = new BlockAllocator(8);
  const seq = new SequenceCache(full, 4, undefined, { pool: win, size: 6 });
  seq.reserve(10);
  seq.length = 10;
  assert.equal(seq.blocks.length, 3);
  assert.equal(seq.window!.held(), 3);
  // the next query at 10 reads 5..10: block 0 (0..3) is behind the window
  assert.equal(seq.windowNeedFor(1), -1);
  seq.reserve(1);
  seq.length = 11;
  assert.deepEqual(seq.window!.blocks.map((b) => b >= 0), [false, true, true]);
  assert.equal(win.numFree, 6);
  assert.throws(() => seq.window!.slot(2), /position 2 is not held/);
  assert.equal(seq.window!.slot(5) % 4, 1);
  // rolling back to 9 still finds 4..8; to 4 would need block 0, which is gone
  seq.truncate(9);
  assert.throws(() => seq.truncate(4), /already freed/);
  seq.free();
  assert.equal(win.numFree, 8);
  assert.equal(full.numFree, 64);
});

test('a window pool that runs short names itself; blocks the prefix cache shares are not counted as freed', () => {
  const win = new BlockAllocator(2);
  const seq = new SequenceCache(new BlockAllocator(16), 4, undefined, { pool: win, size: 4 });
  seq.reserve(8);
  seq.length = 8;
  win.retain(seq.window!.blocks[0]); // as the prefix cache does
  // the next query at 8 reads 5..8: block 0 is behind, but still held by the cache
  assert.equal(seq.windowNeedFor(4), 1);
  assert.throws(() => seq.reserve(4), /sliding-window KV cache is full/);
});
