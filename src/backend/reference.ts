/**
 * The pure-TypeScript reference backend: straightforward loops in float32 storage (JS
 * arithmetic accumulates in f64), weights decoded row by row from their stored formats.
 * It is the oracle for the native kernels and the fallback where the addon is absent.
 */
import { E2M1_VALUES, bf16DecodeTable, bf16ToF32, f16DecodeTable, f32ToBf16, f32ToF16, fp8e4m3ToF32 } from '../weights/dtypes.js';
import { QMatrix, int8Rows16Offset, rowSlice } from '../weights/qmatrix.js';
import type {
  AttentionMeta, AttentionOptions, Backend, ExpertBank, KvDtype, KvLayerCache, RopeSpec, Routing,
} from './backend.js';
import { KV_DTYPES, expertMatrix, isKvDtype, kvOffset, resultArray } from './backend.js';
import type { LinearSpec, MambaLayerState, SsmScanOptions, StateMeta } from './backend.js';
import * as mamba from './reference-mamba.js';
import { InputError } from '../util/errors.js';

/** e4m3 byte → value, as a table (FP8 weights and NVFP4 block scales) */
const E4M3 = Float32Array.from({ length: 256 }, (_, b) => fp8e4m3ToF32(b));

/** Decode row r of a stored matrix into `out` (length cols) as f32. */
export function decodeRow(m: QMatrix, r: number, out: Float32Array): void {
  const cols = m.cols;
  switch (m.format) {
    case 'f32':
      out.set(m.data.subarray(r * cols, (r + 1) * cols));
      return;
    case 'bf16': {
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[c] = bf16ToF32(m.data[base + c]);
      return;
    }
    case 'int8': {
      const sc = m.rowScale[r];
      if (m.layout === 'rows16') {
        for (let c = 0; c < cols; c++) out[c] = m.data[int8Rows16Offset(r, c, cols)] * sc;
        return;
      }
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[c] = m.data[base + c] * sc;
      return;
    }
    case 'mxfp4': {
      const groups = cols >> 5;
      for (let g = 0; g < groups; g++) {
        const scale = 2 ** (m.scales[r * groups + g] - 127);
        const bo = (r * groups + g) * 16;
        const o = g * 32;
        for (let j = 0; j < 16; j++) {
          const byte = m.blocks[bo + j];
          out[o + 2 * j] = E2M1_VALUES[byte & 15] * scale;
          out[o + 2 * j + 1] = E2M1_VALUES[byte >> 4] * scale;
        }
      }
      return;
    }
    case 'fp8': {
      const base = r * cols;
      const gc = Math.ceil(cols / m.blockCols);
      const so = Math.floor(r / m.blockRows) * gc;
      for (let c = 0; c < cols; c++) out[c] = E4M3[m.data[base + c]] * m.scales[so + Math.floor(c / m.blockCols)];
      return;
    }
    case 'nvfp4': {
      const pb = (r * cols) >> 1;
      const sb = (r * cols) >> 4;
      const g2 = m.rowScale2[r];
      for (let g = 0; g < cols >> 4; g++) {
        const scale = Math.fround(E4M3[m.scales[sb + g]] * g2);
        for (let j = 0; j < 8; j++) {
          const byte = m.packed[pb + g * 8 + j];
          out[g * 16 + 2 * j] = E2M1_VALUES[byte & 15] * scale;
          out[g * 16 + 2 * j + 1] = E2M1_VALUES[byte >> 4] * scale;
        }
      }
      return;
    }
  }
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference';

  embed(ids: Int32Array, table: QMatrix): Float32Array {
    const H = table.cols;
    const out = new Float32Array(ids.length * H);
    const row = new Float32Array(H);
    for (let t = 0; t < ids.length; t++) {
      decodeRow(table, ids[t], row);
      out.set(row, t * H);
    }
    return out;
  }

  linearMany(x: Float32Array, T: number, ws: readonly LinearSpec[], outs?: readonly Float32Array[]): Float32Array[] {
    return ws.map(({ w, bias }, i) => this.linear(x, T, w, bias, outs?.[i]));
  }

  linear(x: Float32Array, T: number, w: QMatrix, bias?: Float32Array | null, out?: Float32Array): Float32Array {
    const R = w.rows;
    const C = w.cols;
    const y = resultArray(out, T * R, 'linear');
    const row = new Float32Array(C);
    for (let r = 0; r < R; r++) {
      decodeRow(w, r, row);
      const b = bias ? bias[r] : 0;
      for (let t = 0; t < T; t++) {
        const xo = t * C;
        let acc = 0;
        for (let c = 0; c < C; c++) acc += x[xo + c] * row[c];
        y[t * R + r] = acc + b;
      }
    }
    return y;
  }

  addInPlace(x: Float32Array, y: Float32Array): void {
    if (x.length !== y.length) throw new Error(`addInPlace: x holds ${x.length} values and y ${y.length}`);
    for (let i = 0; i < x.length; i++) x[i] += y[i];
  }

  rmsNorm(x: Float32Array, T: number, weight: Float32Array, eps: number, out?: Float32Array): Float32Array {
    const H = weight.length;
    const y = resultArray(out, T * H, 'rmsNorm');
    for (let t = 0; t < T; t++) {
      const o = t * H;
      let ss = 0;
      for (let i = 0; i < H; i++) ss += x[o + i] * x[o + i];
      const inv = 1 / Math.sqrt(Math.fround(ss / H) + eps);
      for (let i = 0; i < H; i++) y[o + i] = Math.fround(x[o + i] * inv) * weight[i];
    }
    return y;
  }

  rope(x: Float32Array, T: number, nHeads: number, headDim: number, positions: Int32Array, rope: RopeSpec): void {
    const half = rope.rotaryDim >> 1;
    const cos = new Float32Array(half);
    const sin = new Float32Array(half);
    for (let t = 0; t < T; t++) {
      const p = positions[t];
      for (let i = 0; i < half; i++) {
        const a = Math.fround(p * rope.invFreq[i]);
        cos[i] = Math.fround(Math.cos(a)) * rope.concentration;
        sin[i] = Math.fround(Math.sin(a)) * rope.concentration;
      }
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const x1 = x[o + i];
          const x2 = x[o + half + i];
          x[o + i] = x1 * cos[i] - x2 * sin[i];
          x[o + half + i] = x2 * cos[i] + x1 * sin[i];
        }
      }
    }
  }

  allocKv(numBlocks: number, blockSize: number, nKv: number, headDim: number, dtype: KvDtype = 'f32'): KvLayerCache {
    if (!isKvDtype(dtype)) throw new InputError(`KV cache dtype: expected ${KV_DTYPES.join(', ')}, got "${dtype}"`);
    const n = numBlocks * blockSize * nKv * headDim;
    const arr = () => (dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n));
    return { numBlocks, blockSize, nKv, headDim, dtype, k: arr(), v: arr() };
  }

  attention(q: Float32Array, k: Float32Array, v: Float32Array, T: number, cache: KvLayerCache,
    meta: AttentionMeta, o: AttentionOptions, outBuf?: Float32Array): Float32Array {
    const { nHeads, nKv, headDim: d } = o;
    const kvw = nKv * d;
    const enc = cache.dtype === 'f16' ? f32ToF16 : f32ToBf16;
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < nKv; h++) {
        const at = kvOffset(cache, meta.slotMapping[t], h), from = t * kvw + h * d;
        if (cache.dtype === 'f32') {
          cache.k.set(k.subarray(from, from + d), at);
          cache.v.set(v.subarray(from, from + d), at);
        } else {
          for (let c = 0; c < d; c++) {
            cache.k[at + c] = enc(k[from + c]);
            cache.v[at + c] = enc(v[from + c]);
          }
        }
      }
    }
    // the cached values as f32: the arrays themselves, or 16-bit codes through a decode table
    const table = cache.dtype === 'f32' ? null : cache.dtype === 'f16' ? f16DecodeTable() : bf16DecodeTable();
    const kc = cache.k, vc = cache.v;
    const K = table ? (i: number) => table[kc[i]] : (i: number) => kc[i];
    const V = table ? (i: number) => table[vc[i]] : (i: number) => vc[i];
    const out = resultArray(outBuf, T * nHeads * d, 'attention').fill(0);  // (sums into it)
    const group = nHeads / nKv;
    const bs = cache.blockSize;
    let scores = new Float32Array(64);
    let slots = new Int32Array(64);
    for (const s of meta.seqs) {
      for (let i = 0; i < s.queryLen; i++) {
        const t = s.queryStart + i;
        const p = meta.positions[t];
        const lo = o.window > 0 ? Math.max(0, p - o.window + 1) : 0;
        const n = p - lo + 1;
        if (scores.length < n) {
          scores = new Float32Array(2 * n);
          slots = new Int32Array(2 * n);
        }
        for (let j = 0; j < n; j++) {
          const pos = lo + j;
          slots[j] = s.blockTable[Math.floor(pos / bs)] * bs + (pos % bs);
        }
        for (let h = 0; h < nHeads; h++) {
          const kh = Math.floor(h / group);
          const qo = (t * nHeads + h) * d;
          let max = o.sinks ? o.sinks[h] : -Infinity;
          for (let j = 0; j < n; j++) {
            const ko = kvOffset(cache, slots[j], kh);
            let dot = 0;
            for (let c = 0; c < d; c++) dot += q[qo + c] * K(ko + c);
            const sc = Math.fround(dot * o.scale);
            scores[j] = sc;
            if (sc > max) max = sc;
          }
          let sum = o.sinks ? Math.exp(o.sinks[h] - max) : 0;
          for (let j = 0; j < n; j++) {
            const e = Math.exp(scores[j] - max);
            scores[j] = e;
            sum += e;
          }
          const oo = (t * nHeads + h) * d;
          for (let j = 0; j < n; j++) {
            const pr = scores[j] / sum;
            const vo = kvOffset(cache, slots[j], kh);
            for (let c = 0; c < d; c++) out[oo + c] += pr * V(vo + c);
          }
        }
      }
    }
    return out;
  }

  moeExperts(x: Float32Array, T: number, routing: Routing, bank: ExpertBank, outBuf?: Float32Array): Float32Array {
    const { dIn, dOut, w1Rows } = bank;
    const out = resultArray(outBuf, T * dOut, 'moeExperts').fill(0);  // (sums into it)
    // group the batch's tokens by expert so each expert's weights are decoded once
    const byExpert: number[][] = Array.from({ length: bank.numExperts }, () => []);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < routing.k; j++) byExpert[routing.experts[t * routing.k + j]].push(t * routing.k + j);
    }
    for (let e = 0; e < bank.numExperts; e++) {
      const picks = byExpert[e];
      if (picks.length === 0) continue;
      const n = picks.length;
      const xe = new Float32Array(n * dIn);
      for (let i = 0; i < n; i++) {
        const t = Math.floor(picks[i] / routing.k);
        xe.set(x.subarray(t * dIn, (t + 1) * dIn), i * dIn);
      }
      const h = this.linear(xe, n, expertMatrix(bank.w1, e, w1Rows),
        bank.b1 ? bank.b1.subarray(e * w1Rows, (e + 1) * w1Rows) : null);
      const a = activate(h, n, w1Rows, bank);
      const y = this.linear(a, n, expertMatrix(bank.w2, e, dOut),
        bank.b2 ? bank.b2.subarray(e * dOut, (e + 1) * dOut) : null);
      for (let i = 0; i < n; i++) {
        const t = Math.floor(picks[i] / routing.k);
        const w = routing.weights[picks[i]];
        for (let c = 0; c < dOut; c++) out[t * dOut + c] += w * y[i * dOut + c];
      }
    }
    return out;
  }

  // Mamba-2 ops (reference-mamba.ts)
  allocMambaState(numSlots: number, convDim: number, convKernel: number, nHeads: number, headDim: number,
    stateSize: number): MambaLayerState {
    return mamba.allocMambaState(numSlots, convDim, convKernel, nHeads, headDim, stateSize);
  }

  causalConv1d(x: Float32Array, T: number, weight: Float32Array, bias: Float32Array | null,
    state: MambaLayerState, meta: StateMeta): Float32Array {
    return mamba.causalConv1d(x, T, weight, bias, state, meta);
  }

  ssmScan(x: Float32Array, dt: Float32Array, B: Float32Array, C: Float32Array, T: number, A: Float32Array,
    D: Float32Array, dtBias: Float32Array, state: MambaLayerState, meta: StateMeta, opts: SsmScanOptions): Float32Array {
    return mamba.ssmScan(x, dt, B, C, T, A, D, dtBias, state, meta, opts);
  }

  gatedRmsNorm(y: Float32Array, z: Float32Array, T: number, weight: Float32Array, groupSize: number,
    eps: number): Float32Array {
    return mamba.gatedRmsNorm(y, z, T, weight, groupSize, eps);
  }
}

/** Expert activation over [n, w1Rows] → [n, inter]. */
function activate(h: Float32Array, n: number, w1Rows: number, bank: ExpertBank): Float32Array {
  const act = bank.activation;
  if (act.kind === 'swiglu_oai') {
    const I = w1Rows >> 1;
    const a = new Float32Array(n * I);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < I; j++) {
        let g = h[i * w1Rows + 2 * j];
        let l = h[i * w1Rows + 2 * j + 1];
        if (g > act.limit) g = act.limit;
        if (l > act.limit) l = act.limit;
        else if (l < -act.limit) l = -act.limit;
        const sg = Math.fround(1 / (1 + Math.exp(-act.alpha * g)));
        a[i * I + j] = Math.fround(g * sg) * (l + 1);
      }
    }
    return a;
  }
  const a = new Float32Array(n * w1Rows);
  for (let i = 0; i < a.length; i++) {
    const r = h[i] > 0 ? h[i] : 0;
    a[i] = r * r;
  }
  return a;
}
