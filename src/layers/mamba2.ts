/**
 * The Mamba-2 mixer of Nemotron-H (NOTES.md §5):
 *   z | xBC | dt = in_proj(x);  xBC = SiLU(causal depthwise conv(xBC));  x | B | C = xBC
 *   y = SelectiveScan(x, Δ = softplus(dt + dt_bias), A = −exp(A_log), B, C) + D·x
 *   out = out_proj( GroupedRMSNorm(y · SiLU(z)) · norm.weight )
 * The conv window and SSM state live in the layer's MambaLayerState, one slot per sequence.
 */
import type { Backend, MambaLayerState, StateMeta } from '../backend/backend.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { QMatrix } from '../weights/qmatrix.js';
import { type LinearLoader, loadVector } from '../weights/linear-weight.js';
import type { MambaConfig } from '../models/nemotron-h-config.js';

export class Mamba2Mixer {
  private constructor(
    readonly cfg: MambaConfig,
    private readonly eps: number,
    readonly inProj: QMatrix,
    private readonly inBias: Float32Array | null,
    private readonly convW: Float32Array,
    private readonly convB: Float32Array | null,
    private readonly dtBias: Float32Array,
    private readonly A: Float32Array,
    private readonly D: Float32Array,
    private readonly normW: Float32Array,
    readonly outProj: QMatrix,
    private readonly outBias: Float32Array | null,
  ) {}

  /** channels that go through the conv: x, B and C */
  static convDim(c: MambaConfig): number {
    return c.dInner + 2 * c.nGroups * c.stateSize;
  }

  static load(ckpt: Checkpoint, p: string, c: MambaConfig, hidden: number, eps: number, lin: LinearLoader): Mamba2Mixer {
    const convDim = Mamba2Mixer.convDim(c);
    const projRows = c.dInner + convDim + c.nHeads;
    const aLog = loadVector(ckpt, `${p}.A_log`, [c.nHeads]);
    const A = new Float32Array(c.nHeads);
    for (let h = 0; h < c.nHeads; h++) A[h] = -Math.exp(aLog[h]);
    return new Mamba2Mixer(
      c, eps,
      lin(`${p}.in_proj`, projRows, hidden),
      c.projBias ? loadVector(ckpt, `${p}.in_proj.bias`, [projRows]) : null,
      loadVector(ckpt, `${p}.conv1d.weight`, [convDim, 1, c.convKernel]),
      c.convBias ? loadVector(ckpt, `${p}.conv1d.bias`, [convDim]) : null,
      loadVector(ckpt, `${p}.dt_bias`, [c.nHeads]),
      A,
      loadVector(ckpt, `${p}.D`, [c.nHeads]),
      loadVector(ckpt, `${p}.norm.weight`, [c.dInner]),
      lin(`${p}.out_proj`, hidden, c.dInner),
      c.projBias ? loadVector(ckpt, `${p}.out_proj.bias`, [hidden]) : null,
    );
  }

  allocState(be: Backend, slots: number): MambaLayerState {
    const c = this.cfg;
    return be.allocMambaState(slots, Mamba2Mixer.convDim(c), c.convKernel, c.nHeads, c.headDim, c.stateSize);
  }

  forward(be: Backend, h: Float32Array, T: number, state: MambaLayerState, meta: StateMeta): Float32Array {
    const c = this.cfg;
    const di = c.dInner;
    const convDim = Mamba2Mixer.convDim(c);
    const GN = c.nGroups * c.stateSize;
    const R = di + convDim + c.nHeads;
    const zxbcdt = be.linear(h, T, this.inProj, this.inBias);
    const z = new Float32Array(T * di);
    const xbc = new Float32Array(T * convDim);
    const dt = new Float32Array(T * c.nHeads);
    for (let t = 0; t < T; t++) {
      const o = t * R;
      z.set(zxbcdt.subarray(o, o + di), t * di);
      xbc.set(zxbcdt.subarray(o + di, o + di + convDim), t * convDim);
      dt.set(zxbcdt.subarray(o + di + convDim, o + R), t * c.nHeads);
    }
    const conv = be.causalConv1d(xbc, T, this.convW, this.convB, state, meta);
    const x = new Float32Array(T * di);
    const B = new Float32Array(T * GN);
    const C = new Float32Array(T * GN);
    for (let t = 0; t < T; t++) {
      const o = t * convDim;
      x.set(conv.subarray(o, o + di), t * di);
      B.set(conv.subarray(o + di, o + di + GN), t * GN);
      C.set(conv.subarray(o + di + GN, o + convDim), t * GN);
    }
    const y = be.ssmScan(x, dt, B, C, T, this.A, this.D, this.dtBias, state, meta, {
      nHeads: c.nHeads, headDim: c.headDim, nGroups: c.nGroups, stateSize: c.stateSize,
      chunkSize: c.chunkSize, dtMin: c.dtMin, dtMax: c.dtMax,
    });
    const g = be.gatedRmsNorm(y, z, T, this.normW, di / c.nGroups, this.eps);
    return be.linear(g, T, this.outProj, this.outBias);
  }
}
