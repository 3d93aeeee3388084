/**
 * DeepSeek-V3-style routing as Nemotron-H uses it (NOTES.md §7): sigmoid scores, a correction
 * bias that only picks experts, optional group-limited selection, then the unbiased scores of the
 * picked experts, normalised and scaled.
 */
import type { Routing } from '../backend/backend.js';

export interface SigmoidRoutingOptions {
  k: number;
  /** e_score_correction_bias [E] (selection only), or null */
  bias: Float32Array | null;
  /** expert groups (config n_group) and how many groups stay eligible (topk_group) */
  nGroup: number;
  topkGroup: number;
  /** divide the k weights by their sum (norm_topk_prob) */
  normalize: boolean;
  /** routed_scaling_factor */
  scale: number;
}

/** logits [T, E] (router output, f32) → the k experts per token and their weights. Ties → lower index. */
export function sigmoidRouting(logits: Float32Array, T: number, E: number, o: SigmoidRoutingOptions): Routing {
  const { k } = o;
  const experts = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  const s = new Float32Array(E);
  const c = new Float64Array(E);
  const gsize = E / o.nGroup;
  const gScore = new Float64Array(o.nGroup);
  const allowed = new Uint8Array(E);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      s[e] = 1 / (1 + Math.exp(-logits[t * E + e]));
      c[e] = o.bias ? Math.fround(s[e] + o.bias[e]) : s[e];
    }
    allowed.fill(1);
    if (o.nGroup > 1) {
      // group score: sum of the two largest selection scores in the group
      for (let g = 0; g < o.nGroup; g++) {
        let a = -Infinity;
        let b = -Infinity;
        for (let e = g * gsize; e < (g + 1) * gsize; e++) {
          if (c[e] > a) { b = a; a = c[e]; } else if (c[e] > b) b = c[e];
        }
        gScore[g] = gsize >= 2 ? a + b : a;
      }
      const keep = new Uint8Array(o.nGroup);
      for (let j = 0; j < o.topkGroup; j++) {
        let best = -1;
        for (let g = 0; g < o.nGroup; g++) if (!keep[g] && (best < 0 || gScore[g] > gScore[best])) best = g;
        keep[best] = 1;
      }
      for (let e = 0; e < E; e++) allowed[e] = keep[Math.floor(e / gsize)];
    }
    let sum = 0;
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) if (allowed[e] && (best < 0 || c[e] > c[best])) best = e;
      allowed[best] = 0;
      experts[t * k + j] = best;
      weights[t * k + j] = s[best];
      sum += s[best];
    }
    const denom = o.normalize ? Math.fround(sum) + 1e-20 : 1;
    for (let j = 0; j < k; j++) weights[t * k + j] = Math.fround(weights[t * k + j] / denom) * o.scale;
  }
  return { k, experts, weights };
}
