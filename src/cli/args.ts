/** Parsing of CLI argument values, with errors that name the argument. */
import { InputError } from '../util/errors.js';
import { type KvDtype, isKvDtype } from '../backend/backend.js';
import type { RepackMode } from '../models/model.js';

export function parseIds(s: string, what = '--ids'): number[] {
  const trimmed = s.trim();
  if (trimmed === '') throw new InputError(`${what}: expected comma-separated token ids, got an empty string`);
  return trimmed.split(',').map((part, i) => {
    const p = part.trim();
    if (!/^\d+$/.test(p)) throw new InputError(`${what}: "${p}" (item ${i}) is not a non-negative integer token id`);
    const n = Number(p);
    if (!Number.isSafeInteger(n)) throw new InputError(`${what}: "${p}" is too large`);
    return n;
  });
}

export function parseIntArg(name: string, min = 0) {
  return (s: string): number => {
    if (!/^-?\d+$/.test(s.trim())) throw new InputError(`${name}: "${s}" is not an integer`);
    const n = Number(s);
    if (n < min) throw new InputError(`${name}: must be ≥ ${min}, got ${n}`);
    return n;
  };
}

export function parseFloatArg(name: string, min = -Infinity) {
  return (s: string): number => {
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n)) throw new InputError(`${name}: "${s}" is not a number`);
    if (n < min) throw new InputError(`${name}: must be ≥ ${min}, got ${n}`);
    return n;
  };
}

/** --dense-weights: bf16 (as stored) or int8 (re-quantised at load) */
export function checkDenseWeights(v: string | undefined): 'bf16' | 'int8' {
  if (v === undefined || v === 'bf16' || v === 'int8') return v ?? 'bf16';
  throw new InputError(`--dense-weights: expected bf16 or int8, got "${v}"`);
}

/** --kv-cache-dtype: f32 (exact), f16 or bf16 */
export function checkKvCacheDtype(v: string | undefined): KvDtype {
  if (v === undefined) return 'f32';
  if (isKvDtype(v)) return v;
  throw new InputError(`--kv-cache-dtype: expected f32, f16 or bf16, got "${v}"`);
}

/** --repack-experts' help, for every command that loads a model */
export const REPACK_EXPERTS_HELP = 'auto, on or off: the MXFP4 experts in the layout the native q8 kernels read fastest, written once ' +
  'to the prepared store (TESSERA_CACHE_DIR, else ~/.cache/tessera; "off" for none) and mapped by later loads, or else copied ' +
  'in memory (on; auto: where memory holds the copy beside the checkpoint\'s page cache)';

/** --repack-experts: auto, on or off */
export function checkRepackExperts(v: string | undefined): RepackMode {
  if (v === undefined || v === 'auto' || v === 'on' || v === 'off') return v ?? 'auto';
  throw new InputError(`--repack-experts: expected auto, on or off, got "${v}"`);
}

/** --activations: f32 (exact) or int8 (q8) */
export function checkActivations(v: string | undefined): 'f32' | 'int8' {
  if (v === undefined || v === 'f32' || v === 'int8') return v ?? 'f32';
  throw new InputError(`--activations: expected f32 or int8, got "${v}"`);
}
