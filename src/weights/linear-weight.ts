/**
 * Linear weights by name, in whatever format the checkpoint stores them (NVIDIA releases bf16,
 * FP8 and NVFP4 variants of the same model): `<base>.weight` plus, for quantised formats, its
 * scale tensors. Also gathers a layer's per-expert matrices into one checked list (a tensor per expert, as Nemotron stores them).
 */
import { CheckpointError } from '../util/errors.js';
import type { Checkpoint } from './checkpoint.js';
import { decodeToF32 } from './dtypes.js';
import { QMatrix, denseMatrix } from './qmatrix.js';

const DENSE = ['BF16', 'F32', 'F16'] as const;

/**
 * `<base>.weight` as a [rows, cols] matrix: BF16/F16/F32 as stored; F8_E4M3 with
 * `<base>.weight_scale` (per tensor, per row or a block grid) or `<base>.weight_scale_inv` (block
 * grid); NVFP4 as U8 [rows, cols/2] with `<base>.weight_scale` (F8_E4M3 [rows, cols/16]) and
 * `<base>.weight_scale_2` (F32 scalar). (`input_scale` only matters to FP4/FP8 activations.)
 */
export function loadLinear(ckpt: Checkpoint, base: string, rows: number, cols: number): QMatrix {
  const name = `${base}.weight`;
  const info = ckpt.info(name);
  if (info?.dtype === 'F8_E4M3') return fp8Linear(ckpt, base, rows, cols);
  if (info?.dtype === 'U8' && ckpt.info(`${base}.weight_scale`)?.dtype === 'F8_E4M3') return nvfp4Linear(ckpt, base, rows, cols);
  return denseMatrix(ckpt.tensor(name, [...DENSE], [rows, cols]));
}

/**
 * How a model's projections are loaded: `loadLinear`, or that followed by a re-quantisation
 * (`--dense-weights int8` turns bf16/f32 into int8; FP8 and NVFP4 stay as stored).
 */
export type LinearLoader = (base: string, rows: number, cols: number) => QMatrix;

export function linearLoader(ckpt: Checkpoint, transform?: (m: QMatrix) => QMatrix): LinearLoader {
  return (base, rows, cols) => {
    const m = loadLinear(ckpt, base, rows, cols);
    return transform ? transform(m) : m;
  };
}

function scalar(ckpt: Checkpoint, name: string): number {
  const t = ckpt.tensor(name, ['F32', 'BF16', 'F16']);
  if (t.shape.reduce((a, d) => a * d, 1) !== 1) {
    throw new CheckpointError(`tensor ${name} has shape [${t.shape.join(', ')}], expected a single value`);
  }
  return decodeToF32(t.dtype, t.data, name)[0];
}

function fp8Linear(ckpt: Checkpoint, base: string, rows: number, cols: number): QMatrix {
  const w = ckpt.tensor(`${base}.weight`, 'F8_E4M3', [rows, cols]);
  const sName = ckpt.has(`${base}.weight_scale_inv`) ? `${base}.weight_scale_inv` : `${base}.weight_scale`;
  const st = ckpt.tensor(sName, ['F32', 'BF16', 'F16']);
  const scales = decodeToF32(st.dtype, st.data, sName);
  let blockRows: number;
  let blockCols: number;
  if (scales.length === 1) {
    blockRows = rows;
    blockCols = cols;
  } else if (st.shape.length === 1 && st.shape[0] === rows) {
    blockRows = 1;
    blockCols = cols;
  } else if (st.shape.length === 2) {
    const [gr, gc] = st.shape;
    // DeepSeek-style grids use 128 × 128 blocks; otherwise the even split
    const pick = (n: number, g: number) => (Math.ceil(n / 128) === g ? 128 : Math.ceil(n / g));
    blockRows = pick(rows, gr);
    blockCols = pick(cols, gc);
    if (Math.ceil(rows / blockRows) !== gr || Math.ceil(cols / blockCols) !== gc) {
      throw new CheckpointError(`tensor ${sName} has shape [${st.shape.join(', ')}], not a block grid over [${rows}, ${cols}]`);
    }
  } else {
    throw new CheckpointError(`tensor ${sName} has shape [${st.shape.join(', ')}], expected a scalar, [${rows}] or a 2-D block grid`);
  }
  return { format: 'fp8', rows, cols, data: w.data, scales, blockRows, blockCols };
}

function nvfp4Linear(ckpt: Checkpoint, base: string, rows: number, cols: number): QMatrix {
  if (cols % 16 !== 0) throw new CheckpointError(`tensor ${base}.weight: NVFP4 needs a multiple of 16 inputs, got ${cols}`);
  const w = ckpt.tensor(`${base}.weight`, 'U8', [rows, cols / 2]);
  const sc = ckpt.tensor(`${base}.weight_scale`, 'F8_E4M3', [rows, cols / 16]);
  const g = scalar(ckpt, `${base}.weight_scale_2`);
  return { format: 'nvfp4', rows, cols, packed: w.data, scales: sc.data, rowScale2: new Float32Array(rows).fill(g) };
}

/** A small float tensor (norm weights, biases, A_log...) as f32, checked to hold `n` values. */
export function loadVector(ckpt: Checkpoint, name: string, shape: number[]): Float32Array {
  const t = ckpt.tensor(name, [...DENSE], shape);
  return decodeToF32(t.dtype, t.data, name);
}

/**
 * Experts stored one tensor each, as one projection's list (ExpertWeights): the mapped matrices
 * themselves, no copy (a stacked copy doubled the memory a load needed: the page cache then no
 * longer held a checkpoint that fits beside its process). Checked to share format and width.
 */
export function expertList(ms: QMatrix[], what: string): QMatrix[] {
  if (ms.length === 0) throw new CheckpointError(`${what}: no experts`);
  const f = ms[0].format, cols = ms[0].cols, rows = ms[0].rows;
  if (ms.some((m) => m.format !== f || m.cols !== cols || m.rows !== rows)) {
    throw new CheckpointError(`${what}: experts are stored in different formats or shapes`);
  }
  return ms;
}
