/** Router logits → per-token expert choices and weights. */
import type { Routing } from '../backend/backend.js';

/**
 * gpt-oss: the k largest logits (ties → lower index), then softmax over those k only.
 * logits: [T, E].
 */
export function topkSoftmaxRouting(logits: Float32Array, T: number, E: number, k: number): Routing {
  const experts = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  const idx = new Int32Array(E);
  for (let t = 0; t < T; t++) {
    const o = t * E;
    for (let e = 0; e < E; e++) idx[e] = e;
    // partial selection sort: k is small
    for (let j = 0; j < k; j++) {
      let best = j;
      for (let e = j + 1; e < E; e++) if (logits[o + idx[e]] > logits[o + idx[best]]) best = e;
      const tmp = idx[j]; idx[j] = idx[best]; idx[best] = tmp;
    }
    const max = logits[o + idx[0]];
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const w = Math.exp(logits[o + idx[j]] - max);
      weights[t * k + j] = w;
      sum += w;
    }
    for (let j = 0; j < k; j++) {
      experts[t * k + j] = idx[j];
      weights[t * k + j] = weights[t * k + j] / sum;
    }
  }
  return { k, experts, weights };
}
