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

/**
 * float → IEEE half bits, round to nearest even: overflow to ±inf, half subnormals kept, NaN
 * quiet with its top payload bits (what F16C's vcvtps2ph gives). The native KV writer does the
 * same integer arithmetic, so both backends store the same bits.
 */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const u = u32Scratch[0];
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  const m = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 | (m >>> 13) : 0);
  const he = e - 112; // the half exponent field: e − 127 + 15
  if (he >= 31) return sign | 0x7c00;
  if (he >= 1) {
    const rem = m & 0x1fff;
    const v = (he << 10) | (m >>> 13);
    // a carry out of the mantissa steps the exponent (65520 and up become inf)
    return sign | (v + (rem > 0x1000 || (rem === 0x1000 && (v & 1)) ? 1 : 0));
  }
  // half subnormal (units of 2^-24); f32 subnormals and anything below 2^-25 round to ±0
  const shift = 14 - he; // 14..
  if (e === 0 || shift > 24) return sign;
  const M = m | 0x800000;
  const q = M >>> shift;
  const rem = M & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (q + (rem > half || (rem === half && (q & 1)) ? 1 : 0));
}

/** 65536-entry decode tables (KV caches of 16-bit floats are read through these). */
let f16Table: Float32Array | null = null;
let bf16Table: Float32Array | null = null;
export function f16DecodeTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}
export function bf16DecodeTable(): Float32Array {
  if (!bf16Table) {
    bf16Table = new Float32Array(new Uint32Array(65536).map((_, h) => h << 16).buffer);
  }
  return bf16Table;
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
