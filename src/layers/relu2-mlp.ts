/** Non-gated relu² MLP: down(relu(up(x))²) (Nemotron-H `-` blocks and shared experts). */
import type { Backend } from '../backend/backend.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { QMatrix } from '../weights/qmatrix.js';
import { type LinearLoader, loadVector } from '../weights/linear-weight.js';

export class Relu2Mlp {
  private constructor(
    readonly up: QMatrix, private readonly upBias: Float32Array | null,
    readonly down: QMatrix, private readonly downBias: Float32Array | null,
  ) {}

  static load(ckpt: Checkpoint, p: string, hidden: number, inter: number, bias: boolean, lin: LinearLoader): Relu2Mlp {
    return new Relu2Mlp(
      lin(`${p}.up_proj`, inter, hidden), bias ? loadVector(ckpt, `${p}.up_proj.bias`, [inter]) : null,
      lin(`${p}.down_proj`, hidden, inter), bias ? loadVector(ckpt, `${p}.down_proj.bias`, [hidden]) : null,
    );
  }

  forward(be: Backend, x: Float32Array, T: number): Float32Array {
    const a = be.linear(x, T, this.up, this.upBias);
    relu2InPlace(a);
    return be.linear(a, T, this.down, this.downBias);
  }
}

export function relu2InPlace(a: Float32Array): void {
  for (let i = 0; i < a.length; i++) {
    const r = a[i] > 0 ? a[i] : 0;
    a[i] = r * r;
  }
}
