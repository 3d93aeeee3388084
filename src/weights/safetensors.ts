/**
 * safetensors reader. The header is parsed and validated up front (length, JSON, dtypes, shapes,
 * offsets inside the file, no overlaps); tensor bytes are read lazily, once, when a model asks
 * for them, so the process never holds two copies of the weights.
 */
import * as fs from 'node:fs';
import { CheckpointError } from '../util/errors.js';
import { DTYPE_BYTES, DType, isDType } from './dtypes.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** absolute byte offset of the tensor in the file */
  offset: number;
  byteLength: number;
  file: string;
}

export interface StoredTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

const MAX_HEADER = 100 * 1024 * 1024;

export interface ReadOptions {
  /**
   * a mapped tensor's pages are left to fault in when first read (for tensors a backend may
   * serve from a prepared copy instead: NativeBackend.prepareExperts); read() maps them in otherwise
   */
  lazy?: boolean;
}

/** a view read with `lazy` faulted in now, where it is a lazy mapping (a no-op otherwise) */
export function populateMapped(view: Uint8Array): void {
  SafetensorsFile.populate?.(view);
}

export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private fd: number | null = null;
  private mapping: ArrayBuffer | null | undefined;
  /** maps a whole file read-only (set by the native backend's loader); null: read instead */
  static mapper: ((path: string) => ArrayBuffer) | null = null;
  /** where the mapper maps lazily: faults in the pages under a view (read() does, unless `lazy`) */
  static populate: ((view: Uint8Array) => void) | null = null;

  constructor(readonly path: string) {
    let size: number;
    try {
      size = fs.statSync(path).size;
    } catch {
      throw new CheckpointError(`${path}: file not found`);
    }
    if (size < 8) throw new CheckpointError(`${path}: truncated safetensors file (${size} bytes, no header)`);
    const fd = fs.openSync(path, 'r');
    try {
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw new CheckpointError(
          `${path}: corrupt safetensors header: header length ${headerLen} does not fit in a file of ${size} bytes`,
        );
      }
      const hbuf = Buffer.alloc(headerLen);
      fs.readSync(fd, hbuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(hbuf.toString('utf8'));
      } catch (e) {
        throw new CheckpointError(`${path}: corrupt safetensors header: not valid JSON (${(e as Error).message})`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new CheckpointError(`${path}: corrupt safetensors header: expected a JSON object`);
      }
      const dataStart = 8 + headerLen;
      const dataLen = size - dataStart;
      const spans: Array<[number, number, string]> = [];
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          if (raw && typeof raw === 'object') Object.assign(this.metadata, raw);
          continue;
        }
        const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        const where = `${path}: tensor ${name}`;
        if (!info || typeof info !== 'object') throw new CheckpointError(`${where}: entry is not an object`);
        if (!isDType(info.dtype)) throw new CheckpointError(`${where}: unknown dtype ${JSON.stringify(info.dtype)}`);
        if (!Array.isArray(info.shape) || !info.shape.every((d) => Number.isInteger(d) && d >= 0)) {
          throw new CheckpointError(`${where}: shape must be a list of non-negative integers`);
        }
        const offs = info.data_offsets;
        if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0)) {
          throw new CheckpointError(`${where}: data_offsets must be [begin, end]`);
        }
        const [b, e] = offs as [number, number];
        const numel = (info.shape as number[]).reduce((a, d) => a * d, 1);
        const want = numel * DTYPE_BYTES[info.dtype];
        if (e < b || e - b !== want) {
          throw new CheckpointError(
            `${where}: data_offsets [${b}, ${e}] hold ${e - b} bytes but ${info.dtype}${JSON.stringify(info.shape)} needs ${want}`,
          );
        }
        if (e > dataLen) {
          throw new CheckpointError(
            `${where}: data_offsets [${b}, ${e}] lie beyond the end of the data (${dataLen} bytes); the file is truncated or corrupt`,
          );
        }
        spans.push([b, e, name]);
        this.tensors.set(name, {
          name, dtype: info.dtype, shape: info.shape as number[], offset: dataStart + b, byteLength: e - b, file: path,
        });
      }
      spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      for (let i = 1; i < spans.length; i++) {
        const [pb, pe, pn] = spans[i - 1];
        const [b, , n] = spans[i];
        if (b < pe && pe > pb) {
          throw new CheckpointError(`${path}: corrupt safetensors header: tensors ${pn} and ${n} overlap`);
        }
      }
      this.fd = fd;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /**
   * One tensor's bytes: a view into the file's memory mapping where one is available (zero
   * copy; the page cache is the only copy), else a fresh buffer read from the file.
   */
  read(name: string, opts: ReadOptions = {}): StoredTensor {
    const info = this.tensors.get(name);
    if (!info) throw new CheckpointError(`${this.path}: tensor ${name} not found`);
    if (this.fd === null) throw new CheckpointError(`${this.path}: file already closed`);
    if (this.mapping === undefined) this.mapping = SafetensorsFile.mapper ? SafetensorsFile.mapper(this.path) : null;
    const elem = Math.min(4, DTYPE_BYTES[info.dtype]);
    if (this.mapping && info.offset % elem === 0) {
      const data = new Uint8Array(this.mapping, info.offset, info.byteLength);
      if (!opts.lazy) SafetensorsFile.populate?.(data);
      return { name, dtype: info.dtype, shape: info.shape.slice(), data };
    }
    const data = new Uint8Array(info.byteLength);
    let done = 0;
    while (done < info.byteLength) {
      const n = fs.readSync(this.fd, data, done, Math.min(info.byteLength - done, 1 << 30), info.offset + done);
      if (n <= 0) throw new CheckpointError(`${this.path}: tensor ${name}: unexpected end of file`);
      done += n;
    }
    return { name, dtype: info.dtype, shape: info.shape.slice(), data };
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Write a safetensors file (used by tests and by `tessera synth`). */
export function writeSafetensors(
  path: string,
  tensors: Array<{ name: string; dtype: DType; shape: number[]; data: Uint8Array }>,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const fd = fs.openSync(path, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, hb);
    for (const t of tensors) fs.writeSync(fd, t.data);
  } finally {
    fs.closeSync(fd);
  }
}
