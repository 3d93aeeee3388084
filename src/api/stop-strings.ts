/**
 * Stop strings over streamed text: text is released only once it cannot be the start of a stop
 * string, and generation ends at the first complete match (the match itself is not emitted).
 */
export class StopStringFilter {
  private held = '';
  stopped = false;
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Feed text; returns what may be emitted now. Sets `stopped` on a match. */
  push(text: string): string {
    if (this.stopped) return '';
    if (this.stops.length === 0) return text;
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      return out;
    }
    // keep the longest tail that is a prefix of some stop string
    let keep = 0;
    for (let k = Math.min(this.longest - 1, this.held.length); k > 0; k--) {
      const tail = this.held.slice(this.held.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = k;
        break;
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }

  /** End of generation: release what was held back. */
  flush(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }
}

/** `stop` from a request body: a string or up to 4 strings (OpenAI); errors name the field. */
export function parseStop(v: unknown, field = 'stop'): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw new StopFieldError(`${field}: expected a string or an array of strings`);
  }
  if (list.length > 4) throw new StopFieldError(`${field}: at most 4 stop sequences are allowed, got ${list.length}`);
  if (list.some((s) => s.length === 0)) throw new StopFieldError(`${field}: stop sequences must not be empty`);
  return list as string[];
}

import { InputError } from '../util/errors.js';
class StopFieldError extends InputError {}
