/**
 * Reference (f32 storage, f64 accumulation) Mamba-2 ops: causal depthwise conv with a rolling
 * window, the selective scan in its chunked (SSD) and recurrent forms, and the grouped gated
 * RMSNorm. Written from ../shared/fixtures/nemotron-h/NOTES.md §5; the native backend
 * delegates here until it has kernels of its own.
 */
import type { MambaLayerState, SsmScanOptions, StateMeta } from './backend.js';

export function allocMambaState(numSlots: number, convDim: number, convKernel: number, nHeads: number,
  headDim: number, stateSize: number): MambaLayerState {
  return {
    numSlots, convDim, convKernel, nHeads, headDim, stateSize,
    conv: new Float32Array(numSlots * (convKernel - 1) * convDim),
    ssm: new Float32Array(numSlots * nHeads * headDim * stateSize),
  };
}

const silu = (v: number) => v / (1 + Math.exp(-v));
/** torch softplus (beta 1, threshold 20) */
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

export function causalConv1d(x: Float32Array, T: number, weight: Float32Array, bias: Float32Array | null,
  st: MambaLayerState, meta: StateMeta): Float32Array {
  const Cd = st.convDim;
  const K = st.convKernel;
  const W = K - 1;
  const out = new Float32Array(T * Cd);
  meta.seqs.forEach((s, i) => {
    const n = s.queryLen;
    if (n === 0) return;
    const so = meta.stateSlots[i] * W * Cd;
    // window = previous K−1 columns (zeros at sequence start) followed by this step's columns
    const win = new Float32Array((W + n) * Cd);
    if (s.ctxLen !== n) win.set(st.conv.subarray(so, so + W * Cd), 0);
    win.set(x.subarray(s.queryStart * Cd, (s.queryStart + n) * Cd), W * Cd);
    for (let j = 0; j < n; j++) {
      const oo = (s.queryStart + j) * Cd;
      for (let ch = 0; ch < Cd; ch++) {
        let acc = bias ? bias[ch] : 0;
        for (let k = 0; k < K; k++) acc += weight[ch * K + k] * win[(j + k) * Cd + ch];
        out[oo + ch] = silu(Math.fround(acc));
      }
    }
    st.conv.set(win.subarray(n * Cd, (n + W) * Cd), so);
    const keep = meta.keep?.[i];
    if (keep) {
      for (let j = 0; j < n; j++) {
        if (keep[j] >= 0) st.conv.set(win.subarray((j + 1) * Cd, (j + 1 + W) * Cd), keep[j] * W * Cd);
      }
    }
  });
  return out;
}

/** Δ for every token and head: softplus(dt + bias), clamped to the limits. */
function deltas(dt: Float32Array, T: number, nh: number, dtBias: Float32Array, lo: number, hi: number): Float32Array {
  const out = new Float32Array(T * nh);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      let d = softplus(Math.fround(dt[t * nh + h] + dtBias[h]));
      if (d < lo) d = lo;
      if (d > hi) d = hi;
      out[t * nh + h] = d;
    }
  }
  return out;
}

export function ssmScan(x: Float32Array, dt: Float32Array, B: Float32Array, C: Float32Array, T: number,
  A: Float32Array, D: Float32Array, dtBias: Float32Array, st: MambaLayerState, meta: StateMeta,
  o: SsmScanOptions): Float32Array {
  const { nHeads: nh, headDim: P, nGroups: G, stateSize: N } = o;
  const delta = deltas(dt, T, nh, dtBias, o.dtMin, o.dtMax);
  const y = new Float32Array(T * nh * P);
  const seg: ScanSegment = { x, delta, B, C, y, nh, P, G, N, t0: 0, n: 0 };
  meta.seqs.forEach((s, i) => {
    if (s.queryLen === 0) return;
    const so = meta.stateSlots[i] * nh * P * N;
    const S = st.ssm.subarray(so, so + nh * P * N);
    if (s.ctxLen === s.queryLen) S.fill(0);
    seg.t0 = s.queryStart;
    seg.n = s.queryLen;
    const keep = meta.keep?.[i];
    if (keep) {
      // token by token, copying the state out after each kept position
      const size = nh * P * N;
      for (let j = 0; j < s.queryLen; j++) {
        seg.t0 = s.queryStart + j;
        seg.n = 1;
        recurrentScan(seg, A, D, S);
        if (keep[j] >= 0) st.ssm.set(S, keep[j] * size);
      }
    } else if (s.queryLen === 1) recurrentScan(seg, A, D, S);
    else chunkedScan(seg, A, D, S, o.chunkSize);
  });
  return y;
}

/** One sequence's tokens [t0, t0+n) of the packed scan inputs. */
export interface ScanSegment {
  x: Float32Array; delta: Float32Array; B: Float32Array; C: Float32Array; y: Float32Array;
  nh: number; P: number; G: number; N: number; t0: number; n: number;
}

/** Token by token: S ← exp(Δ·A)·S + Δ·x⊗B, y = S·C + D·x. S [nh, P, N] is updated in place. */
export function recurrentScan(g: ScanSegment, A: Float32Array, D: Float32Array, S: Float32Array): void {
  const { x, delta, B, C, y, nh, P, G, N } = g;
  const hpg = nh / G;
  const GN = G * N;
  for (let j = 0; j < g.n; j++) {
    const t = g.t0 + j;
    for (let h = 0; h < nh; h++) {
      const grp = Math.floor(h / hpg);
      const d = delta[t * nh + h];
      const dA = Math.exp(d * A[h]);
      const bo = t * GN + grp * N;
      for (let p = 0; p < P; p++) {
        const xv = x[(t * nh + h) * P + p];
        const dx = d * xv;
        const so = (h * P + p) * N;
        let acc = 0;
        for (let k = 0; k < N; k++) {
          const v = Math.fround(S[so + k] * dA + dx * B[bo + k]);
          S[so + k] = v;
          acc += v * C[bo + k];
        }
        y[(t * nh + h) * P + p] = acc + D[h] * xv;
      }
    }
  }
}

/**
 * The SSD chunked form (Mamba-2 paper §6): within a chunk, y_j = Σ_{s≤j} exp(cs_j − cs_s)·(C_j·B_s)·Δ_s·x_s
 * plus the carried state's contribution exp(cs_j)·S·C_j; the state passes to the next chunk as
 * exp(cs_L)·S + Σ_s exp(cs_L − cs_s)·Δ_s·x_s⊗B_s (cs = cumulative Δ·A inside the chunk).
 */
export function chunkedScan(g: ScanSegment, A: Float32Array, D: Float32Array, S: Float32Array, chunk: number): void {
  const { x, delta, B, C, y, nh, P, G, N } = g;
  const hpg = nh / G;
  const GN = G * N;
  const L = Math.max(1, chunk);
  const cb = new Float64Array(L * L);
  const cs = new Float64Array(L);
  const sc = new Float64Array(P * N);
  const yrow = new Float64Array(P);
  for (let c0 = 0; c0 < g.n; c0 += L) {
    const len = Math.min(L, g.n - c0);
    const tb = g.t0 + c0;
    for (let grp = 0; grp < G; grp++) {
      // C_j·B_s for the group, shared by its heads
      for (let j = 0; j < len; j++) {
        for (let s = 0; s <= j; s++) {
          let acc = 0;
          const co = (tb + j) * GN + grp * N;
          const bo = (tb + s) * GN + grp * N;
          for (let k = 0; k < N; k++) acc += C[co + k] * B[bo + k];
          cb[j * L + s] = acc;
        }
      }
      for (let h = grp * hpg; h < (grp + 1) * hpg; h++) {
        let run = 0;
        for (let j = 0; j < len; j++) {
          run += delta[(tb + j) * nh + h] * A[h];
          cs[j] = run;
        }
        const so = h * P * N;
        for (let j = 0; j < len; j++) {
          const t = tb + j;
          const co = t * GN + grp * N;
          const decay0 = Math.exp(cs[j]);
          // carried-state term, then the intra-chunk terms (one coefficient per (j, s), a row of x each)
          for (let p = 0; p < P; p++) {
            let acc = 0;
            const sp = so + p * N;
            for (let k = 0; k < N; k++) acc += S[sp + k] * C[co + k];
            yrow[p] = acc * decay0;
          }
          for (let s = 0; s <= j; s++) {
            const ts = tb + s;
            const w = Math.exp(cs[j] - cs[s]) * cb[j * L + s] * delta[ts * nh + h];
            const xo = (ts * nh + h) * P;
            for (let p = 0; p < P; p++) yrow[p] += w * x[xo + p];
          }
          const yo = (t * nh + h) * P;
          for (let p = 0; p < P; p++) y[yo + p] = yrow[p] + D[h] * x[yo + p];
        }
        // state after the chunk
        const end = cs[len - 1];
        const dEnd = Math.exp(end);
        for (let i = 0; i < P * N; i++) sc[i] = S[so + i] * dEnd;
        for (let s = 0; s < len; s++) {
          const ts = tb + s;
          const w = Math.exp(end - cs[s]) * delta[ts * nh + h];
          const bo = ts * GN + grp * N;
          for (let p = 0; p < P; p++) {
            const wx = w * x[(ts * nh + h) * P + p];
            for (let k = 0; k < N; k++) sc[p * N + k] += wx * B[bo + k];
          }
        }
        for (let i = 0; i < P * N; i++) S[so + i] = sc[i];
      }
    }
  }
}

export function gatedRmsNorm(y: Float32Array, z: Float32Array, T: number, weight: Float32Array,
  groupSize: number, eps: number): Float32Array {
  const W = weight.length;
  const out = new Float32Array(T * W);
  const u = new Float32Array(W);
  for (let t = 0; t < T; t++) {
    const o = t * W;
    for (let i = 0; i < W; i++) u[i] = y[o + i] * silu(z[o + i]);
    for (let g0 = 0; g0 < W; g0 += groupSize) {
      let ss = 0;
      for (let i = g0; i < g0 + groupSize; i++) ss += u[i] * u[i];
      const inv = 1 / Math.sqrt(Math.fround(ss / groupSize) + eps);
      for (let i = g0; i < g0 + groupSize; i++) out[o + i] = Math.fround(u[i] * inv) * weight[i];
    }
  }
  return out;
}
