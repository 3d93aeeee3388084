/**
 * The multi-token-prediction head of Nemotron 3 Super (NOTES.md §9.2): for position t,
 *   u = eh_proj( [RMSNorm_enorm(emb(token_{t+1})), RMSNorm_hnorm(h_t)] )
 * then the `mtp_hybrid_override_pattern` blocks as pre-norm residual blocks (causal attention
 * over the MTP positions, no RoPE), final_layernorm and the shared lm_head → a draft of token t+2.
 * Only the first MTP depth is loaded; drafting k tokens chains it on its own output.
 */
import type { AttentionMeta, Backend, KvLayerCache } from '../backend/backend.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { QMatrix } from '../weights/qmatrix.js';
import { type LinearLoader, loadVector } from '../weights/linear-weight.js';
import type { NemotronHConfig } from './nemotron-h-config.js';
import { HybridBlock, loadBlock } from './nemotron-h-blocks.js';

export class MtpHead {
  private constructor(
    private readonly eps: number,
    private readonly enorm: Float32Array,
    private readonly hnorm: Float32Array,
    private readonly ehProj: QMatrix,
    readonly blocks: HybridBlock[],
    private readonly finalNorm: Float32Array,
  ) {}

  static load(ckpt: Checkpoint, cfg: NemotronHConfig, lin: LinearLoader): MtpHead {
    const H = cfg.hidden;
    const kinds = cfg.mtp!.layers;
    const last = kinds.length - 1;
    const blocks = kinds.map((k, i) => loadBlock(ckpt, `mtp.layers.${i}`, k, cfg, lin));
    return new MtpHead(
      cfg.eps,
      loadVector(ckpt, 'mtp.layers.0.enorm.weight', [H]),
      loadVector(ckpt, 'mtp.layers.0.hnorm.weight', [H]),
      lin('mtp.layers.0.eh_proj', H, 2 * H),
      blocks,
      loadVector(ckpt, `mtp.layers.${last}.final_layernorm.weight`, [H]),
    );
  }

  /**
   * T positions: `h` [T, H] the previous hidden state (main model: after norm_f), `emb` [T, H]
   * the embeddings of the following tokens. Returns the final-normed MTP hidden [T, H].
   */
  forward(be: Backend, h: Float32Array, emb: Float32Array, T: number, kv: (KvLayerCache | null)[], meta: AttentionMeta): Float32Array {
    const H = this.enorm.length;
    const e = be.rmsNorm(emb, T, this.enorm, this.eps);
    const hh = be.rmsNorm(h, T, this.hnorm, this.eps);
    const cat = new Float32Array(T * 2 * H);
    for (let t = 0; t < T; t++) {
      cat.set(e.subarray(t * H, (t + 1) * H), t * 2 * H);
      cat.set(hh.subarray(t * H, (t + 1) * H), t * 2 * H + H);
    }
    const x = be.linear(cat, T, this.ehProj, null);
    this.blocks.forEach((b, i) => b.apply(be, x, T, { kv: kv[i], mamba: null, meta, stateMeta: null }));
    return be.rmsNorm(x, T, this.finalNorm, this.eps);
  }
}
