/**
 * Linear weights by name, in whatever format the checkpoint stores them (NVIDIA releases bf16,
 * FP8 and NVFP4 variants of the same model): `<base>.weight` plus, for quantised formats, its
 * scale tensors. Also stacks per-expert matrices into one bank (experts are stored one tensor each).
 */
import { CheckpointError } from '../util/errors.js';
import type { Checkpoint } from './checkpoint.js';
import { decodeToF32 } from './dtypes.js';
import { QMatrix, denseMatrix } from './qmatrix.js';

const DENSE = ['BF16', 'F32', 'F16'] as const;

/** `<base>.weight` as a [rows, cols] matrix. */
export function loadLinear(ckpt: Checkpoint, base: string, rows: number, cols: number): QMatrix {
  const name = `${base}.weight`;
  return denseMatrix(ckpt.tensor(name, [...DENSE], [rows, cols]));
}

/** A small float tensor (norm weights, biases, A_log...) as f32, checked to hold `n` values. */
export function loadVector(ckpt: Checkpoint, name: string, shape: number[]): Float32Array {
  const t = ckpt.tensor(name, [...DENSE], shape);
  return decodeToF32(t.dtype, t.data, name);
}

/** Stack matrices of equal format and cols into one of Σ rows (expert e owns its rows in order). */
export function stackMatrices(ms: QMatrix[], what: string): QMatrix {
  const f = ms[0].format;
  const cols = ms[0].cols;
  if (ms.some((m) => m.format !== f || m.cols !== cols)) {
    throw new CheckpointError(`${what}: experts are stored in different formats or widths`);
  }
  const rows = ms.reduce((a, m) => a + m.rows, 0);
  const cat = <A extends Float32Array | Uint16Array | Uint8Array | Int8Array>(parts: A[], make: (n: number) => A): A => {
    const out = make(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p as never, o);
      o += p.length;
    }
    return out;
  };
  switch (f) {
    case 'f32':
      return { format: 'f32', rows, cols, data: cat(ms.map((m) => (m as Extract<QMatrix, { format: 'f32' }>).data), (n) => new Float32Array(n)) };
    case 'bf16':
      return { format: 'bf16', rows, cols, data: cat(ms.map((m) => (m as Extract<QMatrix, { format: 'bf16' }>).data), (n) => new Uint16Array(n)) };
    default:
      throw new CheckpointError(`${what}: cannot stack experts stored as ${f}`);
  }
}
