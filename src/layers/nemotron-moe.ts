/**
 * Nemotron-H MoE block (NOTES.md §7, §9.1): sigmoid router with correction bias and optional
 * group-limited top-k; routed relu² experts, in a latent space for LatentMoE
 * (fc1_latent_proj before, fc2_latent_proj after the weighted sum); plus the shared relu² expert
 * on the full-width input.
 */
import type { Backend, ExpertBank } from '../backend/backend.js';
import { CheckpointError } from '../util/errors.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { QMatrix } from '../weights/qmatrix.js';
import { type LinearLoader, expertList, loadLinear, loadVector } from '../weights/linear-weight.js';
import type { MoeConfig } from '../models/nemotron-h-config.js';
import { Relu2Mlp } from './relu2-mlp.js';
import { sigmoidRouting } from './sigmoid-routing.js';

export class NemotronMoe {
  private constructor(
    readonly cfg: MoeConfig,
    readonly router: QMatrix,
    private readonly corrBias: Float32Array | null,
    readonly experts: ExpertBank,
    readonly fc1: QMatrix | null,
    readonly fc2: QMatrix | null,
    readonly shared: Relu2Mlp | null,
  ) {}

  /** `lin` loads the experts and projections (maybe re-quantised); the router stays as stored */
  static load(ckpt: Checkpoint, p: string, c: MoeConfig, hidden: number, lin: LinearLoader): NemotronMoe {
    const E = c.nExperts;
    const L = c.latent > 0 ? c.latent : hidden;
    const I = c.intermediate;
    const biasName = `${p}.gate.e_score_correction_bias`;
    const corr = ckpt.has(biasName) ? loadVector(ckpt, biasName, [E]) : null;
    const ups: QMatrix[] = [];
    const downs: QMatrix[] = [];
    for (let e = 0; e < E; e++) {
      ups.push(lin(`${p}.experts.${e}.up_proj`, I, L));
      downs.push(lin(`${p}.experts.${e}.down_proj`, L, I));
    }
    let shared: Relu2Mlp | null = null;
    if (c.nShared > 0) {
      // transformers uses the configured width; vLLM multiplies it by n_shared_experts: accept either
      const name = `${p}.shared_experts.up_proj.weight`;
      const rows = ckpt.info(name)?.shape[0];
      const widths = [c.sharedIntermediate, c.sharedIntermediate * c.nShared];
      if (rows !== undefined && !widths.includes(rows)) {
        throw new CheckpointError(`${ckpt.dir}: tensor ${name} has ${rows} rows, expected moe_shared_expert_intermediate_size (${c.sharedIntermediate})`);
      }
      shared = Relu2Mlp.load(ckpt, `${p}.shared_experts`, hidden, rows ?? c.sharedIntermediate, false, lin);
    }
    return new NemotronMoe(
      c,
      loadLinear(ckpt, `${p}.gate`, E, hidden),
      corr,
      {
        numExperts: E, dIn: L, w1Rows: I, dOut: L,
        w1: expertList(ups, `${p}.experts.*.up_proj`), b1: null,
        w2: expertList(downs, `${p}.experts.*.down_proj`), b2: null,
        activation: { kind: 'relu2' },
      },
      c.latent > 0 ? lin(`${p}.fc1_latent_proj`, L, hidden) : null,
      c.latent > 0 ? lin(`${p}.fc2_latent_proj`, hidden, L) : null,
      shared,
    );
  }

  forward(be: Backend, x: Float32Array, T: number): Float32Array {
    const c = this.cfg;
    const logits = be.linear(x, T, this.router, null);
    const routing = sigmoidRouting(logits, T, c.nExperts, {
      k: c.topK, bias: this.corrBias, nGroup: c.nGroup, topkGroup: c.topkGroup, normalize: c.normTopk, scale: c.scaling,
    });
    const xin = this.fc1 ? be.linear(x, T, this.fc1, null) : x;
    let out = be.moeExperts(xin, T, routing, this.experts);
    if (this.fc2) out = be.linear(out, T, this.fc2, null);
    if (this.shared) {
      const s = this.shared.forward(be, x, T);
      for (let i = 0; i < out.length; i++) out[i] += s[i];
    }
    return out;
  }
}
