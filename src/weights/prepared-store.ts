/**
 * Prepared weights on disk: a backend's second layout of checkpoint bytes (the MXFP4 experts
 * with 16 rows in lanes, NativeBackend.prepareExperts), written once into a cache folder and
 * mapped by later loads. Against a copy in memory made at each load, this costs no repack after
 * the first load and no second copy of the bytes in the page cache: the prepared file takes the
 * place of the checkpoint's expert ranges there, which are then never read.
 *
 * An entry is keyed by the layout's name and where its bytes come from (weightMemory.sourceOf:
 * file path, device and inode, size, mtime, offset, length), so a changed checkpoint gets new
 * entries and never reads stale ones. One file per entry: a header page (magic, key, part sizes),
 * then each part at a page-aligned offset. A file is written under a temporary name, synced, and
 * renamed, so a file under its final name is whole; one that does not match its key is rewritten.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { weightMemory } from './qmatrix.js';

export interface PreparedEntry {
  /** the parts, mapped shared and writable: fill them, then commit() */
  parts: Uint8Array[];
  /** sync the file to disk and give it its name; false (and no file) where that failed */
  commit(): boolean;
}

export interface PreparedStore {
  /** the folder the entries live in (for messages) */
  readonly dir: string;
  /** the parts of `key`, mapped read-only, or null (absent, or not of these sizes) */
  load(key: string, sizes: readonly number[]): Uint8Array[] | null;
  /** a new entry for `key` of these part sizes, or null where it cannot be written (no space, read-only) */
  create(key: string, sizes: readonly number[]): PreparedEntry | null;
}

const MAGIC = 'tessera prepared weights 1\n';
const PAGE = 4096;
/** free space a new entry leaves on the cache's file system */
export const PREPARED_FREE_MARGIN_BYTES = 2 * 2 ** 30;

/**
 * The cache folder: TESSERA_CACHE_DIR ("off" or empty: none), else $XDG_CACHE_HOME/tessera or
 * ~/.cache/tessera, with prepared weights under prepared/.
 */
export function defaultPreparedDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = env.TESSERA_CACHE_DIR;
  if (set !== undefined) return set === '' || set === 'off' ? null : path.join(set, 'prepared');
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'tessera', 'prepared');
}

const align = (n: number) => Math.ceil(n / PAGE) * PAGE;

/** the header page of an entry: magic, then one JSON line with the key and the part sizes */
function header(key: string, sizes: readonly number[]): Uint8Array {
  const h = Buffer.from(`${MAGIC}${JSON.stringify({ key, sizes })}\n`, 'utf8');
  return h.length <= PAGE ? h : new Uint8Array(0);
}

export class FilePreparedStore implements PreparedStore {
  /** bytes written and bytes mapped by this store in this process */
  written = 0;
  mapped = 0;

  private told = false;

  constructor(readonly dir: string, private readonly freeBytes: (dir: string) => number = freeSpace,
    /** told once, when a load starts writing entries of real size (it takes a while, once) */
    private readonly note: (msg: string) => void = (msg) => process.stderr.write(`tessera: ${msg}\n`)) {}

  /** a store at `dir` where this process can map and write prepared files, else null */
  static open(dir: string | null): FilePreparedStore | null {
    if (!dir || !weightMemory.files) return null;
    return new FilePreparedStore(dir);
  }

  private file(key: string): string {
    return path.join(this.dir, `${crypto.createHash('sha256').update(key).digest('hex').slice(0, 40)}.bin`);
  }

  load(key: string, sizes: readonly number[]): Uint8Array[] | null {
    const files = weightMemory.files;
    const h = header(key, sizes);
    if (!files || h.length === 0) return null;
    const file = this.file(key);
    const total = PAGE + sizes.reduce((a, n) => a + align(n), 0);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return null;
    }
    if (!st.isFile() || st.size !== total) return null;
    const buf = files.map(file);
    if (!Buffer.from(buf, 0, h.length).equals(h)) return null;
    this.mapped += total;
    return this.layout(buf, sizes);
  }

  create(key: string, sizes: readonly number[]): PreparedEntry | null {
    const files = weightMemory.files;
    const h = header(key, sizes);
    if (!files || h.length === 0) return null;
    const total = PAGE + sizes.reduce((a, n) => a + align(n), 0);
    const file = this.file(key);
    const tmp = `${file}.${process.pid}.tmp`;
    let buf: ArrayBuffer;
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      if (this.freeBytes(this.dir) < total + PREPARED_FREE_MARGIN_BYTES) return null;
      fs.rmSync(tmp, { force: true });
      buf = files.create(tmp, total);
    } catch {
      return null;
    }
    if (!this.told && total >= 64 * 2 ** 20) {
      this.told = true;
      this.note(`writing the experts' repacked layout to ${this.dir} (once: later loads map it; TESSERA_CACHE_DIR=off or --repack-experts off for none)`);
    }
    new Uint8Array(buf, 0, h.length).set(h);
    const parts = this.layout(buf, sizes);
    return {
      parts,
      commit: () => {
        try {
          if (!files.sync(new Uint8Array(buf))) throw new Error('sync failed');
          fs.renameSync(tmp, file);
          this.written += total;
          return true;
        } catch {
          fs.rmSync(tmp, { force: true });
          return false;
        }
      },
    };
  }

  private layout(buf: ArrayBuffer, sizes: readonly number[]): Uint8Array[] {
    let off = PAGE;
    return sizes.map((n) => {
      const v = new Uint8Array(buf, off, n);
      off += align(n);
      return v;
    });
  }
}

/** bytes free to this user on the file system of `dir` */
function freeSpace(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}
