/** Parsing of CLI argument values, with errors that name the argument. */
import { InputError } from '../util/errors.js';

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
