/**
 * Weight matrices as stored: the Backend multiplies them without unpacking them in memory.
 * A matrix is [rows, cols] = [out, in] (torch.nn.Linear layout): y = W·x. Stacked expert
 * weights are one matrix of E·out rows; expert e owns rows [e·out, (e+1)·out).
 */
import { CheckpointError } from '../util/errors.js';
import type { StoredTensor } from './safetensors.js';
import { decodeToF32 } from './dtypes.js';

export type QMatrix =
  | { format: 'f32'; rows: number; cols: number; data: Float32Array }
  | { format: 'bf16'; rows: number; cols: number; data: Uint16Array }
  /**
   * MXFP4: per row, cols/32 blocks of 16 bytes (2 e2m1 codes each, low nibble first) + one E8M0
   * scale. `scalesOct`, where a backend made it at load (NativeBackend.prepareExperts): the same
   * scales in sets of 8 rows, block b of a set's rows at [(r/8)·8·G + 8b + r%8] (G = cols/32),
   * which the native rows-in-lanes kernels read without transposing them. `rows16` / `scales16`
   * (NativeBackend.prepareExperts, AVX-512 VNNI): the blocks and scales with 16 rows in lanes
   * (Matrix::rows16 in native/src/kernels.h); rows a multiple of 16.
   */
  | {
    format: 'mxfp4'; rows: number; cols: number; blocks: Uint8Array; scales: Uint8Array; scalesOct?: Uint8Array;
    rows16?: Uint8Array; scales16?: Uint8Array;
  }
  /**
   * int8 re-quantisation of a dense matrix (`--dense-weights int8`): value = data · rowScale[row].
   * `layout: 'rows16'` (NativeBackend.prepareMatrix, AVX-512 VNNI q8): `data` rearranged in place
   * with 16 rows in lanes, input c of row r at int8Rows16Offset (Matrix::int8_rows16 in
   * native/src/kernels.h); rows a multiple of 16, cols of 32.
   */
  | { format: 'int8'; rows: number; cols: number; data: Int8Array; rowScale: Float32Array; layout?: 'rows16' }
  /**
   * FP8 e4m3 with block scales (NVIDIA FP8 releases): value = e4m3(data[r, c]) ·
   * scales[⌊r/blockRows⌋ · ⌈cols/blockCols⌉ + ⌊c/blockCols⌋]. Per-tensor: one block of the whole
   * matrix; per-row: 1 × cols blocks; DeepSeek-style: 128 × 128.
   */
  | { format: 'fp8'; rows: number; cols: number; data: Uint8Array; scales: Float32Array; blockRows: number; blockCols: number }
  /**
   * NVFP4 (ModelOpt): per row cols/2 bytes of e2m1 codes (element 2j low nibble), one e4m3
   * scale byte per 16 values, and a f32 global scale per row (the tensor's weight_scale_2,
   * repeated so stacked experts keep their own).
   */
  | { format: 'nvfp4'; rows: number; cols: number; packed: Uint8Array; scales: Uint8Array; rowScale2: Float32Array };

export type QFormat = QMatrix['format'];

/** Where input c of row r sits in an int8 matrix of `cols` inputs in the rows16 layout. */
export function int8Rows16Offset(r: number, c: number, cols: number): number {
  return ((r >> 4) * (cols >> 5) + (c >> 5)) * 512 + ((c & 31) >> 2) * 64 + (r & 15) * 4 + (c & 3);
}

/** Bytes the matrix occupies (what a GEMV reads). */
export function qmatrixBytes(m: QMatrix): number {
  switch (m.format) {
    case 'f32': return m.data.byteLength;
    case 'bf16': return m.data.byteLength;
    case 'mxfp4': return m.blocks.byteLength + m.scales.byteLength;
    case 'int8': return m.data.byteLength + m.rowScale.byteLength;
    case 'fp8': return m.data.byteLength + m.scales.byteLength;
    case 'nvfp4': return m.packed.byteLength + m.scales.byteLength;
  }
}

/** A dense 2-D (or stacked 3-D) BF16/F32 tensor as a matrix [prod(shape[:-1]), shape[-1]]. */
export function denseMatrix(t: StoredTensor): QMatrix {
  const cols = t.shape[t.shape.length - 1];
  const rows = t.shape.slice(0, -1).reduce((a, d) => a * d, 1);
  const bytes = t.data;
  if (t.dtype === 'BF16') {
    return { format: 'bf16', rows, cols, data: new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols) };
  }
  if (t.dtype === 'F32') {
    return { format: 'f32', rows, cols, data: new Float32Array(bytes.buffer, bytes.byteOffset, rows * cols) };
  }
  if (t.dtype === 'F16') {
    return { format: 'f32', rows, cols, data: decodeToF32('F16', bytes, t.name) };
  }
  throw new CheckpointError(`tensor ${t.name}: dtype ${t.dtype} is not a dense matrix type`);
}

/** MXFP4 from `<name>_blocks` [..., rows, cols/32, 16] and `<name>_scales` [..., rows, cols/32]. */
export function mxfp4Matrix(blocks: StoredTensor, scales: StoredTensor): QMatrix {
  const bs = blocks.shape;
  const ss = scales.shape;
  if (bs.length < 2 || bs[bs.length - 1] !== 16) {
    throw new CheckpointError(`tensor ${blocks.name}: MXFP4 blocks must end in a dimension of 16 bytes, got [${bs.join(', ')}]`);
  }
  const lead = bs.slice(0, -1);
  if (ss.length !== lead.length || ss.some((d, i) => d !== lead[i])) {
    throw new CheckpointError(
      `tensor ${scales.name}: shape [${ss.join(', ')}] does not match blocks ${blocks.name} [${bs.join(', ')}]`,
    );
  }
  const groups = bs[bs.length - 2];
  const rows = bs.slice(0, -2).reduce((a, d) => a * d, 1);
  return { format: 'mxfp4', rows, cols: groups * 32, blocks: blocks.data, scales: scales.data };
}

/** A view of rows [r0, r0+n) of a matrix (an expert of a stacked bank), sharing memory. */
export function rowSlice(m: QMatrix, r0: number, n: number): QMatrix {
  switch (m.format) {
    case 'f32': return { ...m, rows: n, data: m.data.subarray(r0 * m.cols, (r0 + n) * m.cols) };
    case 'bf16': return { ...m, rows: n, data: m.data.subarray(r0 * m.cols, (r0 + n) * m.cols) };
    case 'mxfp4': {
      const g = m.cols / 32;
      const slice: QMatrix = { ...m, rows: n, blocks: m.blocks.subarray(r0 * g * 16, (r0 + n) * g * 16), scales: m.scales.subarray(r0 * g, (r0 + n) * g) };
      // the oct-ordered copy slices along whole sets of 8 rows only
      if (m.scalesOct && r0 % 8 === 0) slice.scalesOct = m.scalesOct.subarray(r0 * g, Math.ceil((r0 + n) / 8) * 8 * g);
      else delete slice.scalesOct;
      // the 16-row layout along whole sets of 16 rows only
      if (m.rows16 && m.scales16 && r0 % 16 === 0 && n % 16 === 0) {
        slice.rows16 = m.rows16.subarray(r0 * g * 16, (r0 + n) * g * 16);
        slice.scales16 = m.scales16.subarray(r0 * g, (r0 + n) * g);
      } else {
        delete slice.rows16;
        delete slice.scales16;
      }
      return slice;
    }
    case 'int8':
      if (m.layout === 'rows16' && (r0 % 16 !== 0 || n % 16 !== 0)) throw new Error(`int8 rows16 layout: rows [${r0}, ${r0 + n}) are not whole sets of 16`);
      return { ...m, rows: n, data: m.data.subarray(r0 * m.cols, (r0 + n) * m.cols), rowScale: m.rowScale.subarray(r0, r0 + n) };
    case 'fp8': {
      if (r0 % m.blockRows !== 0) throw new Error(`fp8 row slice at ${r0} is not on a scale block boundary (${m.blockRows})`);
      const gc = Math.ceil(m.cols / m.blockCols);
      const g0 = r0 / m.blockRows;
      const gn = Math.ceil(n / m.blockRows);
      return { ...m, rows: n, data: m.data.subarray(r0 * m.cols, (r0 + n) * m.cols), scales: m.scales.subarray(g0 * gc, (g0 + gn) * gc) };
    }
    case 'nvfp4':
      return {
        ...m, rows: n, packed: m.packed.subarray((r0 * m.cols) / 2, ((r0 + n) * m.cols) / 2),
        scales: m.scales.subarray((r0 * m.cols) / 16, ((r0 + n) * m.cols) / 16), rowScale2: m.rowScale2.subarray(r0, r0 + n),
      };
  }
}

/**
 * Native help for weights made at load time, installed by the addon's loader (native/src/addon.cpp):
 * `alloc` gives huge-page backed memory; `requantizeInt8` is requantizeInt8's row loop on the
 * native threads, the same arithmetic, and can drop a memory-mapped source's pages afterwards.
 * Plain JS memory and the JS loop otherwise.
 */
export const weightMemory: {
  alloc: ((bytes: number) => ArrayBuffer) | null;
  requantizeInt8: ((src: Uint16Array | Float32Array, rows: number, cols: number, data: Int8Array, rowScale: Float32Array, release: boolean) => void) | null;
  /** is this buffer a read-only file mapping (so its pages may be dropped and faulted back)? */
  isMapped: (buf: ArrayBufferLike) => boolean;
  /**
   * where a view of a mapped file comes from (file identity: path, device and inode, size,
   * mtime; then the view's offset and length), null for other memory: what a prepared copy of
   * the bytes is keyed by (src/weights/prepared-store.ts)
   */
  sourceOf: (view: Uint8Array) => string | null;
  /**
   * files of prepared weights: `map` a whole file read-only (faulted in), `create` a new file of
   * n bytes mapped shared and writable, `sync` a view of such a mapping to the disk
   */
  files: { map(path: string): ArrayBuffer; create(path: string, bytes: number): ArrayBuffer; sync(view: Uint8Array): boolean } | null;
} = { alloc: null, requantizeInt8: null, isMapped: () => false, sourceOf: () => null, files: null };

/**
 * Re-quantise a dense matrix to int8 with one absmax scale per row (bytes per weight ≈ 1, as
 * llama.cpp's q8_0). This changes the weights: it is an opt-in speed/size trade, not exact.
 */
export function requantizeInt8(m: QMatrix, decodeRow: (m: QMatrix, r: number, out: Float32Array) => void): QMatrix {
  if (m.format !== 'f32' && m.format !== 'bf16') return m;
  const n = m.rows * m.cols;
  const data = weightMemory.alloc && n >= 1 << 20 ? new Int8Array(weightMemory.alloc(n)) : new Int8Array(n);
  const rowScale = new Float32Array(m.rows);
  if (weightMemory.requantizeInt8) {
    weightMemory.requantizeInt8(m.data, m.rows, m.cols, data, rowScale, weightMemory.isMapped(m.data.buffer));
    return { format: 'int8', rows: m.rows, cols: m.cols, data, rowScale };
  }
  const row = new Float32Array(m.cols);
  for (let r = 0; r < m.rows; r++) {
    decodeRow(m, r, row);
    let amax = 0;
    for (let c = 0; c < m.cols; c++) amax = Math.max(amax, Math.abs(row[c]));
    const scale = amax / 127;
    rowScale[r] = scale;
    const inv = scale > 0 ? 1 / scale : 0;
    const o = r * m.cols;
    for (let c = 0; c < m.cols; c++) data[o + c] = Math.round(row[c] * inv);
  }
  return { format: 'int8', rows: m.rows, cols: m.cols, data, rowScale };
}
