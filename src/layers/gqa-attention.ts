/**
 * Grouped-query self-attention with no positional encoding (Nemotron-H `*` blocks, NOTES.md §6):
 * q, k, v projections, causal softmax(q·kᵀ/√head_dim) over the paged KV cache, o_proj.
 */
import type { AttentionMeta, Backend, KvDtype, KvLayerCache } from '../backend/backend.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { QMatrix } from '../weights/qmatrix.js';
import { type LinearLoader, loadVector } from '../weights/linear-weight.js';

export interface GqaConfig {
  nHeads: number;
  nKv: number;
  headDim: number;
  bias: boolean;
}

export class GqaAttention {
  private constructor(
    readonly cfg: GqaConfig,
    readonly wq: QMatrix, private readonly bq: Float32Array | null,
    readonly wk: QMatrix, private readonly bk: Float32Array | null,
    readonly wv: QMatrix, private readonly bv: Float32Array | null,
    readonly wo: QMatrix, private readonly bo: Float32Array | null,
  ) {}

  static load(ckpt: Checkpoint, p: string, c: GqaConfig, hidden: number, lin: LinearLoader): GqaAttention {
    const q = c.nHeads * c.headDim;
    const kv = c.nKv * c.headDim;
    const b = (name: string, n: number) => (c.bias ? loadVector(ckpt, `${p}.${name}.bias`, [n]) : null);
    return new GqaAttention(c,
      lin(`${p}.q_proj`, q, hidden), b('q_proj', q),
      lin(`${p}.k_proj`, kv, hidden), b('k_proj', kv),
      lin(`${p}.v_proj`, kv, hidden), b('v_proj', kv),
      lin(`${p}.o_proj`, hidden, q), b('o_proj', hidden));
  }

  allocKv(be: Backend, numBlocks: number, blockSize: number, dtype: KvDtype = 'f32'): KvLayerCache {
    return be.allocKv(numBlocks, blockSize, this.cfg.nKv, this.cfg.headDim, dtype);
  }

  forward(be: Backend, h: Float32Array, T: number, kv: KvLayerCache, meta: AttentionMeta): Float32Array {
    const c = this.cfg;
    const [q, k, v] = be.linearMany(h, T, [{ w: this.wq, bias: this.bq }, { w: this.wk, bias: this.bk }, { w: this.wv, bias: this.bv }]);
    const a = be.attention(q, k, v, T, kv, meta, {
      nHeads: c.nHeads, nKv: c.nKv, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), window: 0, sinks: null,
    });
    return be.linear(a, T, this.wo, this.bo);
  }
}
