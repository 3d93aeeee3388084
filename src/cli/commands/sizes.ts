/** Byte sizes on the command line: 4GiB, 512MB, 1e9. */
import { InputError } from '../../util/errors.js';

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

export function parseByteSize(s: string, flag: string): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InputError(`${flag}: expected a size such as 4GiB or 512MB, got "${s}"`);
  const v = Math.floor(Number(m[1]) * unit);
  if (!(v > 0)) throw new InputError(`${flag}: must be greater than 0`);
  return v;
}
