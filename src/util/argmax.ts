/**
 * Greedy decoding's pick: the index of the largest of row[offset, offset + n), the first of
 * equal ones, NaN never chosen, 0 where no value is above −∞. A vocabulary's logits (201088 for
 * gpt-oss) took 150 µs a token in this loop; the native addon, where it is loaded, registers its
 * kernel (the same rule, ~10 µs) through `useNativeArgmax`.
 */
let kernel: ((row: Float32Array, offset: number, n: number) => number) | null = null;

/** rows shorter than this stay in JS (a call into the addon costs about a microsecond) */
const NATIVE_MIN = 4096;

export function useNativeArgmax(fn: ((row: Float32Array, offset: number, n: number) => number) | null): void {
  kernel = fn;
}

export function argmax(row: Float32Array, offset = 0, n = row.length - offset): number {
  if (kernel && n >= NATIVE_MIN) return kernel(row, offset, n);
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < n; i++) {
    if (row[offset + i] > bv) {
      bv = row[offset + i];
      best = i;
    }
  }
  return best;
}
