/** Element types as safetensors names them, and exact scalar decoders for the packed formats. */

export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bf16 bits → float (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0];
}

/** float → bf16 bits, round to nearest even (as torch does). */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // quiet NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits → float. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** OCP FP8 e4m3fn (bias 7, no infinities, S.1111.111 = NaN). */
export function fp8e4m3ToF32(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 0x7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * m * 2 ** -9;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** FP8 e5m2 (bias 15, IEEE-like). */
export function fp8e5m2ToF32(b: number): number {
  return f16ToF32(b << 8);
}

/** e2m1 (FP4) magnitudes; code = sign·8 + magnitude index. Used by MXFP4 and NVFP4. */
export const E2M1_VALUES: Float32Array = new Float32Array([
  0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6,
]);

/** E8M0 scale byte → 2^(s−127), as the reference's ldexp computes it (255 is not special-cased). */
export function e8m0ToF32(s: number): number {
  return 2 ** (s - 127);
}

/** Decode a whole little-endian tensor of a float dtype to f32 (for small tensors: norms, biases). */
export function decodeToF32(dtype: DType, bytes: Uint8Array, what: string): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(dv.getUint16(2 * i, true));
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      break;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = fp8e4m3ToF32(bytes[i]);
      break;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = fp8e5m2ToF32(bytes[i]);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      break;
    default:
      throw new TypeError(`${what}: dtype ${dtype} is not a floating-point type`);
  }
  return out;
}
