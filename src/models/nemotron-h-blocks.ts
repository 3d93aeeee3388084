/**
 * One residual block of the hybrid stack: x ← x + mixer(RMSNorm(x)), the mixer chosen by the
 * pattern letter (Mamba-2, attention, relu² MLP or MoE). There is no separate FFN per block.
 */
import type { AttentionMeta, Backend, KvLayerCache, MambaLayerState, StateMeta } from '../backend/backend.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { type LinearLoader, loadVector } from '../weights/linear-weight.js';
import { GqaAttention } from '../layers/gqa-attention.js';
import { Mamba2Mixer } from '../layers/mamba2.js';
import { NemotronMoe } from '../layers/nemotron-moe.js';
import { Relu2Mlp } from '../layers/relu2-mlp.js';
import type { BlockKind, NemotronHConfig } from './nemotron-h-config.js';

export interface BlockCaches {
  kv: KvLayerCache | null;
  mamba: MambaLayerState | null;
  meta: AttentionMeta;
  stateMeta: StateMeta | null;
}

export class HybridBlock {
  constructor(
    readonly kind: BlockKind,
    private readonly norm: Float32Array,
    private readonly eps: number,
    readonly mixer: Mamba2Mixer | GqaAttention | Relu2Mlp | NemotronMoe,
  ) {}

  /** x += mixer(RMSNorm(x)), in place */
  apply(be: Backend, x: Float32Array, T: number, c: BlockCaches): void {
    const h = be.rmsNorm(x, T, this.norm, this.eps);
    let y: Float32Array;
    const m = this.mixer;
    if (m instanceof Mamba2Mixer) y = m.forward(be, h, T, c.mamba!, c.stateMeta!);
    else if (m instanceof GqaAttention) y = m.forward(be, h, T, c.kv!, c.meta);
    else y = m.forward(be, h, T);
    be.addInPlace(x, y);
  }
}

export function loadBlock(ckpt: Checkpoint, p: string, kind: BlockKind, cfg: NemotronHConfig, lin: LinearLoader): HybridBlock {
  const H = cfg.hidden;
  const norm = loadVector(ckpt, `${p}.norm.weight`, [H]);
  const mp = `${p}.mixer`;
  switch (kind) {
    case 'mamba': return new HybridBlock(kind, norm, cfg.eps, Mamba2Mixer.load(ckpt, mp, cfg.mamba!, H, cfg.eps, lin));
    case 'attention': return new HybridBlock(kind, norm, cfg.eps, GqaAttention.load(ckpt, mp, cfg.attn!, H, lin));
    case 'mlp': return new HybridBlock(kind, norm, cfg.eps, Relu2Mlp.load(ckpt, mp, H, cfg.mlp!.intermediate, cfg.mlp!.bias, lin));
    case 'moe': return new HybridBlock(kind, norm, cfg.eps, NemotronMoe.load(ckpt, mp, cfg.moe!, H, lin));
  }
}
