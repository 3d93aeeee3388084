/**
 * The native CPU backend: C++ kernels (native/src) behind the same Backend interface, with
 * run-time ISA dispatch (AVX-512, AVX2, generic) and a persistent thread pool. Formats the
 * addon does not know fall back to the reference implementation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type {
  AttentionMeta, AttentionOptions, Backend, ExpertBank, ExpertWeights, KvDtype, KvLayerCache, RopeSpec, Routing,
} from './backend.js';
import { ReferenceBackend } from './reference.js';
import type { LinearSpec, MambaLayerState, PrepareExpertsOptions, SsmScanOptions, StateMeta } from './backend.js';
import { expertWeightsFormat, resultArray } from './backend.js';
import { weightMemory, type QMatrix } from '../weights/qmatrix.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import { useNativeArgmax } from '../util/argmax.js';

interface Addon {
  init(threads: number, isa: string): string;
  /** q8: quantise the activations to int8 for MXFP4 / int8 weights (integer dot products) */
  linear(x: Float32Array, T: number, w: QMatrix, bias: Float32Array | null, y: Float32Array, q8?: boolean): void;
  /** several linears of one input as one job of the pool (absent in addons built before it) */
  linearMany?(x: Float32Array, T: number, ws: QMatrix[], biases: (Float32Array | null)[], ys: Float32Array[], q8?: boolean): void;
  rmsNorm(x: Float32Array, T: number, w: Float32Array, eps: number, y: Float32Array): void;
  /** x += y (absent in addons built before it) */
  addInPlace?(x: Float32Array, y: Float32Array): void;
  rope(x: Float32Array, T: number, nHeads: number, headDim: number, pos: Int32Array, invFreq: Float32Array,
    conc: number, rotaryDim: number): void;
  attention(...args: unknown[]): void;
  moe(...args: unknown[]): void;
  /** a read-only mapping of a file, its pages faulted in at once unless `lazy`; `huge`: in 2 MB folios where the kernel can */
  mapFile(path: string, lazy?: boolean, huge?: boolean): ArrayBuffer;
  /** the pages under a view of a lazy mapping faulted in now (absent in addons built before it) */
  populatePages?(view: Uint8Array): void;
  /** a new file of `bytes` bytes mapped shared and writable */
  createMappedFile?(path: string, bytes: number): ArrayBuffer;
  /** msync of the pages under a view of a shared mapping: whether they reached the disk */
  syncMapping?(view: Uint8Array): boolean;
  readBandwidth(buf: Uint8Array, reps: number): number;
  /** util/argmax's rule over x[offset, offset + n) (absent in addons built before it) */
  argmax?(x: Float32Array, offset: number, n: number): number;
  /** zeroed huge-page-backed memory for weights made at load time */
  allocWeights?(bytes: number): ArrayBuffer;
  requantizeInt8?(src: Uint16Array | Float32Array, rows: number, cols: number, data: Int8Array, rowScale: Float32Array, release: boolean): void;
  /** MXFP4 scales [rows, groups] → QMatrix.scalesOct's order in `out` */
  octScales?(scales: Uint8Array, rows: number, groups: number, out: Uint8Array): void;
  /** whether the chosen kernels read QMatrix.scalesOct (the AVX2 q8 kernels; VNNI's do not) */
  usesOctScales?(): boolean;
  /**
   * MXFP4 blocks and scales (rows a multiple of 16) → QMatrix.rows16 / scales16's order;
   * `release` drops the mapped sources' pages from this process
   */
  packRows16?(blocks: Uint8Array, scales: Uint8Array, rows: number, groups: number, outBlocks: Uint8Array, outScales: Uint8Array, release: boolean): void;
  /** whether the chosen kernels read QMatrix.rows16 (the AVX-512 VNNI q8 kernel) */
  usesRows16?(): boolean;
  /** int8 weights [rows, cols] rearranged in place into the rows16 layout (QMatrix int8 `layout`) */
  packInt8Rows16?(data: Int8Array, rows: number, cols: number): void;
  /** Mamba-2 kernels (native/src/mamba.cpp); absent in addons built before them */
  mambaConv?(...args: unknown[]): void;
  ssmScan?(...args: unknown[]): void;
  gatedRmsNorm?(...args: unknown[]): void;
}

const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../native/build/tessera.node');
let addon: Addon | null | undefined;
let addonError = '';

/** The addon, or null where it is not built or fails to load. */
export function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  try {
    if (!fs.existsSync(ADDON_PATH)) throw new Error(`${ADDON_PATH} is not built (run npm ci)`);
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    // zero-copy weights: checkpoints are memory-mapped rather than read
    // (lazy where the addon can populate ranges: a checkpoint's tensors are faulted in as they
    // are read, and those a prepared copy replaces never are)
    const mapped = new WeakMap<ArrayBufferLike, string>();
    const lazy = !!addon.populatePages;
    const map = (p: string, lazyMap: boolean, huge = false): ArrayBuffer => {
      const st = fs.statSync(p);
      const buf = addon!.mapFile(p, lazyMap, huge);
      mapped.set(buf, `${fs.realpathSync(p)}|${st.dev}:${st.ino}|${st.size}|${st.mtimeMs}`);
      return buf;
    };
    if (!process.env.TESSERA_NO_MMAP) {
      SafetensorsFile.mapper = (p) => map(p, lazy);
      if (lazy) SafetensorsFile.populate = (v) => addon!.populatePages!(v);
    }
    weightMemory.isMapped = (buf) => mapped.has(buf);
    weightMemory.sourceOf = (v) => {
      const file = mapped.get(v.buffer);
      return file === undefined ? null : `${file}|${v.byteOffset}|${v.byteLength}`;
    };
    if (addon.createMappedFile && addon.syncMapping) {
      const { createMappedFile, syncMapping } = addon;
      // the prepared store's files are read whole, as the experts stream: huge pages there
      weightMemory.files = { map: (p) => map(p, false, true), create: (p, n) => createMappedFile(p, n), sync: (v) => syncMapping(v) };
    }
    if (addon.argmax) useNativeArgmax(addon.argmax);
    if (addon.allocWeights) weightMemory.alloc = (bytes) => addon!.allocWeights!(bytes);
    if (addon.requantizeInt8) weightMemory.requantizeInt8 = (...args) => addon!.requantizeInt8!(...args);
  } catch (e) {
    addonError = (e as Error).message;
    addon = null;
  }
  return addon;
}

export function addonLoadError(): string {
  return addonError;
}

/** Physical cores (hyperthreads share one core's vector units), at least 1. */
export function physicalCores(): number {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    let phys = '0';
    for (const line of info.split('\n')) {
      const [k, v] = line.split(':').map((s) => s?.trim());
      if (k === 'physical id') phys = v;
      if (k === 'core id') cores.add(`${phys}:${v}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    /* not Linux */
  }
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/** formats the kernels read as stored (FP8 and NVFP4 decode in registers, as MXFP4) */
const NATIVE_FORMATS = new Set(['f32', 'bf16', 'mxfp4', 'int8', 'fp8', 'nvfp4']);

/**
 * Activation precision of the MXFP4 / int8 matmuls: `f32` (exact, the default) or `int8` (q8:
 * activations quantised per 32 inputs, integer dot products; what llama.cpp does, not exact).
 */
export type ActivationPrecision = 'f32' | 'int8';

/** the addon's thread pool and kernel table, shared by every NativeBackend of the process */
let initialised: { threads: number; isa: string; requested: string } | null = null;

/** The addon's view of a batch's sequences (AttentionMeta.seqs): query starts and lengths, and the block tables end to end. */
interface AttentionTables {
  starts: Int32Array;
  lens: Int32Array;
  tables: Int32Array;
  offs: Int32Array;
}

/** whether `t` still describes meta.seqs (an AttentionMeta is not expected to change, but may) */
function sameTables(t: AttentionTables, meta: AttentionMeta): boolean {
  const n = meta.seqs.length;
  if (t.starts.length !== n) return false;
  for (let i = 0; i < n; i++) {
    const s = meta.seqs[i];
    const end = i + 1 < n ? t.offs[i + 1] : t.tables.length;
    if (t.starts[i] !== s.queryStart || t.lens[i] !== s.queryLen || end - t.offs[i] !== s.blockTable.length) return false;
    for (let j = 0; j < s.blockTable.length; j++) if (t.tables[t.offs[i] + j] !== s.blockTable[j]) return false;
  }
  return true;
}

export class NativeBackend implements Backend {
  readonly name: string;
  readonly isa: string;
  private readonly ref = new ReferenceBackend();
  /** each batch's attention arrays, made at its first attention layer */
  private readonly tablesOf = new WeakMap<AttentionMeta, AttentionTables>();
  private readonly q8: boolean;
  /** bytes of expert weights this backend copied into a second layout at load (prepareExperts) */
  repackedBytes = 0;
  /** of those, bytes mapped from the prepared store, and bytes this load wrote into it */
  preparedBytesMapped = 0;
  preparedBytesWritten = 0;

  constructor(private readonly a: Addon, readonly threads: number, isa = 'auto', readonly activations: ActivationPrecision = 'f32') {
    if (!initialised || initialised.threads !== threads || initialised.requested !== isa) {
      initialised = { threads, isa: a.init(threads, isa), requested: isa };
    }
    this.isa = initialised.isa;
    this.q8 = activations === 'int8';
    this.name = `native-${this.isa}${this.q8 ? '-q8' : ''}`;
  }

  embed(ids: Int32Array, table: QMatrix): Float32Array {
    return this.ref.embed(ids, table);
  }

  linear(x: Float32Array, T: number, w: QMatrix, bias?: Float32Array | null, out?: Float32Array): Float32Array {
    if (!NATIVE_FORMATS.has(w.format)) return this.ref.linear(x, T, w, bias, out);
    const y = resultArray(out, T * w.rows, 'linear');
    this.a.linear(x, T, w, bias ?? null, y, this.q8);
    return y;
  }

  linearMany(x: Float32Array, T: number, ws: readonly LinearSpec[], outs?: readonly Float32Array[]): Float32Array[] {
    const cols = ws[0]?.w.cols;
    if (!this.a.linearMany || ws.some(({ w }) => !NATIVE_FORMATS.has(w.format) || w.cols !== cols)) {
      return ws.map(({ w, bias }, i) => this.linear(x, T, w, bias, outs?.[i]));
    }
    const ys = ws.map(({ w }, i) => resultArray(outs?.[i], T * w.rows, 'linearMany'));
    this.a.linearMany(x, T, ws.map((s) => s.w), ws.map((s) => s.bias ?? null), ys, this.q8);
    return ys;
  }

  addInPlace(x: Float32Array, y: Float32Array): void {
    // (a short row is cheaper in JS than a call)
    if (this.a.addInPlace && x.length >= 1024) this.a.addInPlace(x, y);
    else this.ref.addInPlace(x, y);
  }

  rmsNorm(x: Float32Array, T: number, weight: Float32Array, eps: number, out?: Float32Array): Float32Array {
    const y = resultArray(out, T * weight.length, 'rmsNorm');
    this.a.rmsNorm(x, T, weight, eps, y);
    return y;
  }

  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, rope: RopeSpec): void {
    this.a.rope(x, T, nHeads, headDim, positions, rope.invFreq, rope.concentration, rope.rotaryDim);
  }

  allocKv(numBlocks: number, blockSize: number, nKv: number, headDim: number, dtype: KvDtype = 'f32'): KvLayerCache {
    return this.ref.allocKv(numBlocks, blockSize, nKv, headDim, dtype);
  }

  attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, cache: KvLayerCache,
    meta: AttentionMeta, o: AttentionOptions, outBuf?: Float32Array): Float32Array {
    const { starts, lens, tables, offs } = this.attentionTables(meta);
    const out = resultArray(outBuf, T * o.nHeads * o.headDim, 'attention');
    this.a.attention(q, k, v, T, cache.k, cache.v, o.nKv, o.headDim, cache.blockSize, meta.positions,
      meta.slotMapping, starts, lens, tables, offs, o.nHeads, o.scale, o.window, o.sinks, out, cache.dtype);
    return out;
  }

  /** a batch's sequences as the addon's arrays, made once for all the layers that read `meta` */
  private attentionTables(meta: AttentionMeta): AttentionTables {
    const seen = this.tablesOf.get(meta);
    if (seen && sameTables(seen, meta)) return seen;
    const n = meta.seqs.length;
    const starts = new Int32Array(n);
    const lens = new Int32Array(n);
    const offs = new Int32Array(n);
    let total = 0;
    meta.seqs.forEach((s, i) => {
      starts[i] = s.queryStart;
      lens[i] = s.queryLen;
      offs[i] = total;
      total += s.blockTable.length;
    });
    const tables = new Int32Array(total);
    meta.seqs.forEach((s, i) => tables.set(s.blockTable, offs[i]));
    const made = { starts, lens, tables, offs };
    this.tablesOf.set(meta, made);
    return made;
  }

  /**
   * With q8 activations, MXFP4 experts get a second layout at load, the one the chosen kernels
   * read:
   * - AVX-512 VNNI: the blocks and scales with 16 rows in lanes (QMatrix.rows16 / scales16),
   *   mapped from the prepared store (`opts.store`: written at the first load, mapped at later
   *   ones; the checkpoint's expert ranges are then never read), or in huge-page memory where
   *   `opts.repack` allows (the mapped checkpoint's copy leaves this process; it stays in the
   *   page cache). Either way the experts stay resident once. The kernel then needs no
   *   transposes and no horizontal sums (kernels_impl.inc, q8_r16_mxfp4).
   * - AVX2: the scales again in oct order (QMatrix.scalesOct): the one-token kernel reads them
   *   as it goes and the 2-4 token passes without a transpose (the scale tables were about a
   *   tenth of the MoE's time at one token; one token's MoE layer 0.88× the time, 3 tokens
   *   0.93×). Prefill's token-lane kernels read the stored scales, which stay mapped: 1/16 of
   *   the experts' bytes more resident (0.6 GB for gpt-oss-20b).
   */
  prepareExperts(bank: ExpertBank, opts: PrepareExpertsOptions = {}): ExpertBank {
    if (!this.q8) return bank;
    let one: ((m: QMatrix, rows: number) => QMatrix) | null = null;
    if (this.a.packRows16 && this.a.usesRows16?.()) {
      if (opts.repack || opts.store) one = (m, rows) => this.rows16(m, rows, opts);
    } else if (this.a.octScales && this.a.usesOctScales?.()) one = (m, rows) => this.octScales(m, rows);
    if (!one) return bank;
    const prep = (w: ExpertWeights, rows: number): ExpertWeights =>
      Array.isArray(w) ? w.map((m) => one!(m, m.rows)) : one!(w as QMatrix, rows);
    return { ...bank, w1: prep(bank.w1, bank.w1Rows), w2: prep(bank.w2, bank.dOut) };
  }

  /**
   * With q8 activations on AVX-512 VNNI, re-quantised int8 matrices (rows in 16s, inputs in 32s)
   * are rearranged in place with 16 rows in lanes (QMatrix int8 `layout: 'rows16'`): no copy,
   * and the VNNI kernel then needs no horizontal sums (kernels_impl.inc, q8_r16_int8). Mapped
   * memory is never written.
   */
  prepareMatrix(m: QMatrix): QMatrix {
    if (!this.q8 || m.format !== 'int8' || m.layout || !this.a.packInt8Rows16 || !this.a.usesRows16?.()) return m;
    if (m.rows < 16 || m.rows % 16 !== 0 || m.cols % 32 !== 0 || weightMemory.isMapped(m.data.buffer)) return m;
    this.a.packInt8Rows16(m.data, m.rows, m.cols);
    return { ...m, layout: 'rows16' };
  }

  /**
   * m with rows16 / scales16, when it is MXFP4 and its experts (of `rows` rows) are sets of 16
   * rows: from the prepared store where it has them or can take them (mapped checkpoints only),
   * else a copy in memory where `repack` allows one, else m as it is
   */
  private rows16(m: QMatrix, rows: number, opts: PrepareExpertsOptions): QMatrix {
    if (m.format !== 'mxfp4' || rows % 16 !== 0 || m.rows % 16 !== 0 || m.rows16) return m;
    const G = m.cols / 32;
    const sizes = [m.rows * G * 16, m.rows * G], total = sizes[0] + sizes[1];
    const release = weightMemory.isMapped(m.blocks.buffer) && weightMemory.isMapped(m.scales.buffer);
    const from = [weightMemory.sourceOf(m.blocks), weightMemory.sourceOf(m.scales)];
    const key = opts.store && from[0] && from[1] ? `mxfp4 rows16 v1 ${m.rows}x${m.cols}\n${from[0]}\n${from[1]}` : null;
    if (opts.store && key) {
      const got = opts.store.load(key, sizes);
      if (got) {
        this.repackedBytes += total;
        this.preparedBytesMapped += total;
        return { ...m, rows16: got[0], scales16: got[1] };
      }
      const entry = opts.store.create(key, sizes);
      if (entry) {
        const [blocks, scales] = entry.parts;
        this.a.packRows16!(m.blocks, m.scales, m.rows, G, blocks, scales, release);
        if (entry.commit()) {
          this.repackedBytes += total;
          this.preparedBytesWritten += total;
          return { ...m, rows16: blocks, scales16: scales };
        }
      }
    }
    if (!opts.repack) return m;
    const blocks = weightMemory.alloc && sizes[0] >= 1 << 20 ? new Uint8Array(weightMemory.alloc(sizes[0])) : new Uint8Array(sizes[0]);
    // (small pages for the scales, as for scalesOct below)
    const scales = new Uint8Array(sizes[1]);
    this.a.packRows16!(m.blocks, m.scales, m.rows, G, blocks, scales, release);
    this.repackedBytes += total;
    return { ...m, rows16: blocks, scales16: scales };
  }

  /** m with scalesOct, when it is MXFP4 and its experts (of `rows` rows) start on sets of 8 rows */
  private octScales(m: QMatrix, rows: number): QMatrix {
    if (m.format !== 'mxfp4' || rows % 8 !== 0 || m.scalesOct) return m;
    const G = m.cols / 32;
    const n = Math.ceil(m.rows / 8) * 8 * G;
    // small pages: huge ones (allocWeights) stalled the load on compaction (0.7-1.3 s against
    // 0.5 for gpt-oss-20b's 0.6 GB), and these bytes stream at 1/16 of the weights' rate
    const out = new Uint8Array(n);
    this.a.octScales!(m.scales, m.rows, G, out);
    return { ...m, scalesOct: out };
  }

  moeExperts(x: Float32Array, T: number, routing: Routing, bank: ExpertBank, outBuf?: Float32Array): Float32Array {
    if (!NATIVE_FORMATS.has(expertWeightsFormat(bank.w1)) || !NATIVE_FORMATS.has(expertWeightsFormat(bank.w2))) {
      return this.ref.moeExperts(x, T, routing, bank, outBuf);
    }
    const out = resultArray(outBuf, T * bank.dOut, 'moeExperts');
    const act = bank.activation;
    this.a.moe(x, T, routing.k, routing.experts, routing.weights, bank.w1, bank.b1, bank.w2, bank.b2,
      bank.numExperts, bank.w1Rows, bank.dOut, act.kind,
      act.kind === 'swiglu_oai' ? act.alpha : 0, act.kind === 'swiglu_oai' ? act.limit : 0, out, this.q8);
    return out;
  }

  // Mamba-2 ops: native conv, scan and gated norm; the reference where the addon lacks them or a batch keeps every position's state
  allocMambaState(numSlots: number, convDim: number, convKernel: number, nHeads: number, headDim: number,
    stateSize: number): MambaLayerState {
    return this.ref.allocMambaState(numSlots, convDim, convKernel, nHeads, headDim, stateSize);
  }

  causalConv1d(x: Float32Array, T: number, weight: Float32Array, bias: Float32Array | null,
    state: MambaLayerState, meta: StateMeta): Float32Array {
    if (!this.a.mambaConv || meta.keep) return this.ref.causalConv1d(x, T, weight, bias, state, meta);
    const out = new Float32Array(T * state.convDim);
    const s = mambaSegs(meta);
    this.a.mambaConv(x, T, state.convDim, state.convKernel, weight, bias, state.conv, s.starts, s.lens, s.slots, s.fresh, out);
    return out;
  }

  ssmScan(x: Float32Array, dt: Float32Array, B: Float32Array, C: Float32Array, T: number, A: Float32Array,
    D: Float32Array, dtBias: Float32Array, state: MambaLayerState, meta: StateMeta, opts: SsmScanOptions): Float32Array {
    if (!this.a.ssmScan || meta.keep) return this.ref.ssmScan(x, dt, B, C, T, A, D, dtBias, state, meta, opts);
    const y = new Float32Array(T * opts.nHeads * opts.headDim);
    const s = mambaSegs(meta);
    this.a.ssmScan(x, dt, B, C, T, A, D, dtBias, state.ssm, s.starts, s.lens, s.slots, s.fresh, opts.nHeads, opts.headDim,
      opts.nGroups, opts.stateSize, opts.chunkSize, opts.dtMin, opts.dtMax, y);
    return y;
  }

  gatedRmsNorm(y: Float32Array, z: Float32Array, T: number, weight: Float32Array, groupSize: number,
    eps: number): Float32Array {
    if (!this.a.gatedRmsNorm) return this.ref.gatedRmsNorm(y, z, T, weight, groupSize, eps);
    const out = new Float32Array(T * weight.length);
    this.a.gatedRmsNorm(y, z, T, weight, groupSize, eps, out);
    return out;
  }
}

/** The batch's sequences as the Mamba kernels take them. */
function mambaSegs(meta: StateMeta) {
  const n = meta.seqs.length;
  const starts = new Int32Array(n);
  const lens = new Int32Array(n);
  const fresh = new Uint8Array(n);
  meta.seqs.forEach((s, i) => {
    starts[i] = s.queryStart;
    lens[i] = s.queryLen;
    fresh[i] = s.ctxLen === s.queryLen ? 1 : 0;
  });
  return { starts, lens, slots: meta.stateSlots, fresh };
}
