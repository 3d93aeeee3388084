/**
 * Prepared weights on disk (src/weights/prepared-store.ts): the experts' 16-row layout written
 * at a checkpoint's first load and mapped by later ones, keyed by the bytes' source, never read
 * stale, and declined (back to a copy in memory or none) where it cannot be written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAddon } from '../src/backend/native.js';
import type { ExpertBank } from '../src/backend/backend.js';
import { FilePreparedStore, defaultPreparedDir, PREPARED_FREE_MARGIN_BYTES } from '../src/weights/prepared-store.js';
import { weightMemory, type QMatrix } from '../src/weights/qmatrix.js';
import { loadModel } from '../src/models/registry.js';
import { packBatch } from '../src/engine/batch.js';
import { modelFixtureDirs, nativeOn, tmpDir } from './helpers.js';

const addon = loadAddon();

test('the prepared store: entries round-trip through files, sizes and headers are checked, a full disk declines', () => {
  assert.ok(addon, 'native/build/tessera.node failed to load');
  assert.ok(weightMemory.files, 'the addon maps and writes prepared files');
  const dir = path.join(tmpDir(), 'prepared');
  const store = new FilePreparedStore(dir);
  assert.equal(store.load('k1', [10, 5000]), null, 'nothing there yet');
  const e = store.create('k1', [10, 5000]);
  assert.ok(e);
  assert.deepEqual(e.parts.map((p) => p.length), [10, 5000]);
  e.parts[0].set(Array.from({ length: 10 }, (_, i) => i + 1));
  e.parts[1].fill(7);
  assert.equal(store.load('k1', [10, 5000]), null, 'an entry is invisible until committed');
  assert.ok(e.commit());
  const files = fs.readdirSync(dir);
  assert.equal(files.length, 1, `one file, no temporary left: ${files}`);
  const got = store.load('k1', [10, 5000]);
  assert.ok(got);
  assert.deepEqual([...got[0]], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.ok(got[1].every((v) => v === 7) && got[1].byteOffset % 4096 === 0, 'parts page-aligned');
  assert.equal(store.load('k1', [10, 4999]), null, 'other sizes: not this entry');
  assert.equal(store.load('k2', [10, 5000]), null, 'other key');
  // the store's files are mapped asking for huge pages (mapFile's `huge`), whole or lazily:
  // either way every byte is the file's, across 2 MB boundaries
  const big = store.create('k3', [5 << 20]);
  assert.ok(big);
  const pat = (i: number) => Math.imul(i, 2654435761) >>> 24;
  for (let i = 0; i < big.parts[0].length; i++) big.parts[0][i] = pat(i);
  assert.ok(big.commit());
  const whole = store.load('k3', [5 << 20]);
  assert.ok(whole);
  const bigFile = path.join(dir, fs.readdirSync(dir).find((f) => f !== files[0])!);
  const lazy = new Uint8Array(addon!.mapFile(bigFile, true, true));
  addon!.populatePages!(lazy.subarray(3 << 20, 4 << 20));
  for (const [name, v, off] of [['whole', whole[0], 0], ['lazy', lazy, 4096]] as const) {
    let bad = -1;
    for (let i = 0; i < 5 << 20 && bad < 0; i++) if (v[off + i] !== pat(i)) bad = i;
    assert.equal(bad, -1, `${name}: the first byte that differs`);
  }
  // a damaged header (same size) is not read, and a new entry replaces it
  const file = path.join(dir, files[0]);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from('X'), 0, 1, 3);
  fs.closeSync(fd);
  assert.equal(store.load('k1', [10, 5000]), null, 'damaged header');
  const again = store.create('k1', [10, 5000]);
  assert.ok(again && again.commit());
  assert.ok(store.load('k1', [10, 5000]));
  // a truncated file is not read either
  fs.truncateSync(file, 4096 + 16);
  assert.equal(store.load('k1', [10, 5000]), null, 'truncated');
  // no room: declined, nothing written
  const full = new FilePreparedStore(path.join(tmpDir(), 'p'), () => PREPARED_FREE_MARGIN_BYTES);
  assert.equal(full.create('k', [1 << 20]), null);
  assert.deepEqual(fs.readdirSync(full.dir), []);
  // a folder that cannot be made: declined
  const blocked = path.join(tmpDir(), 'file');
  fs.writeFileSync(blocked, 'x');
  assert.equal(new FilePreparedStore(path.join(blocked, 'p')).create('k', [16]), null);
  // where it lives
  assert.equal(defaultPreparedDir({ TESSERA_CACHE_DIR: '/c' }), '/c/prepared');
  assert.equal(defaultPreparedDir({ TESSERA_CACHE_DIR: 'off' }), null);
  assert.equal(defaultPreparedDir({ XDG_CACHE_HOME: '/x', HOME: '/h' }), '/x/tessera/prepared');
});

test('a gpt-oss checkpoint with q8 activations on avx512vnni: the experts\' 16-row layout written once, mapped after, rewritten when the checkpoint changes; logits keep their bits', (t) => {
  const be = () => nativeOn(t, 'avx512vnni', 'int8');
  const first = be();
  if (!first) return;
  // a private copy of a fixture, so that touching its files changes nothing shared
  const src = modelFixtureDirs('gpt-oss')[0];
  assert.ok(src, 'a gpt-oss fixture');
  const dir = path.join(tmpDir(), 'ckpt');
  fs.cpSync(src, dir, { recursive: true });
  const preparedDir = path.join(tmpDir(), 'prepared');
  const bankOf = (m: object) => (m as unknown as { layers: { experts: ExpertBank }[] }).layers;
  const ids = [5, 17, 42, 99, 3, 250, 7, 64, 128];
  const run = (m: ReturnType<typeof loadModel>) => {
    const c = m.createCache({ numBlocks: 8, blockSize: 16 });
    const s = c.newSequence();
    const out = [m.forward(packBatch([{ cache: s, tokens: ids, logits: 'all' }]), c)];
    for (const tok of [11, 300]) out.push(m.forward(packBatch([{ cache: s, tokens: [tok], logits: 'last' }]), c));
    return out;
  };
  const plain = be()!;
  plain.prepareExperts = (bank: ExpertBank) => bank;
  const want = run(loadModel(dir, plain, { preparedDir }));
  // auto: the store, before any copy in memory
  const a = loadModel(dir, first, { preparedDir });
  const layers = bankOf(a);
  assert.ok(layers.every((l) => (l.experts.w1 as { rows16?: Uint8Array }).rows16 && (l.experts.w2 as { rows16?: Uint8Array }).rows16), 'every bank prepared');
  assert.ok(first.preparedBytesWritten > 0 && first.preparedBytesMapped === 0, 'the first load writes');
  const entries = fs.readdirSync(preparedDir).length;
  assert.equal(entries, 2 * layers.length, 'one file per matrix');
  assert.deepEqual(run(a), want);
  const second = be()!;
  const b = loadModel(dir, second, { preparedDir });
  assert.ok(second.preparedBytesMapped === first.preparedBytesWritten && second.preparedBytesWritten === 0, 'the second load maps');
  assert.deepEqual(run(b), want);
  // a damaged entry is rewritten, not read
  const victim = path.join(preparedDir, fs.readdirSync(preparedDir)[0]);
  const sz = fs.statSync(victim).size;
  fs.rmSync(victim);
  fs.writeFileSync(victim, Buffer.alloc(sz, 1));
  const third = be()!;
  assert.deepEqual(run(loadModel(dir, third, { preparedDir })), want);
  assert.ok(third.preparedBytesWritten > 0 && third.preparedBytesWritten < first.preparedBytesWritten, 'the damaged entry alone rewritten');
  // new bytes in the checkpoint (a new mtime): new entries, never the stale ones
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    const t0 = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, f), t0, t0);
  }
  const fourth = be()!;
  assert.deepEqual(run(loadModel(dir, fourth, { preparedDir })), want);
  assert.equal(fourth.preparedBytesWritten, first.preparedBytesWritten);
  assert.equal(fs.readdirSync(preparedDir).length, 2 * entries);
  // off: neither the store nor a copy
  const off = be()!;
  const o = loadModel(dir, off, { preparedDir, repackExperts: 'off' });
  assert.ok(!(bankOf(o)[0].experts.w1 as QMatrix & { rows16?: Uint8Array }).rows16 && off.repackedBytes === 0);
  assert.deepEqual(run(o), want);
});
