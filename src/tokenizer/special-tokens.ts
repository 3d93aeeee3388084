/**
 * tiktoken's special-token semantics for encode(text, allowed_special, disallowed_special):
 * which special tokens may become ids, which ones make the call fail, and where they occur.
 */
import { InputError } from '../util/errors.js';
import type { EncodeOptions } from './tokenizer.js';

/** The text contains special-token text that the caller did not allow. */
export class DisallowedSpecialError extends InputError {
  constructor(readonly found: string[]) {
    super(`text contains disallowed special token${found.length > 1 ? 's' : ''} ${found.join(', ')} ` +
      '(allow it with allowedSpecial, or pass disallowedSpecial: [] to encode it as text)');
    this.name = 'DisallowedSpecialError';
  }
}

export class SpecialTokens {
  readonly byText: ReadonlyMap<string, number>;
  readonly byId: ReadonlyMap<number, string>;
  private readonly finder: RegExp | undefined;

  constructor(tokens: Record<string, number>) {
    this.byText = new Map(Object.entries(tokens));
    this.byId = new Map(Object.entries(tokens).map(([t, id]) => [id, t]));
    // longest first so that the leftmost match is also the longest one
    const alts = [...this.byText.keys()].sort((a, b) => b.length - a.length)
      .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.finder = alts.length ? new RegExp(alts.join('|'), 'g') : undefined;
  }

  /** Every special-token occurrence in `text`, left to right, not overlapping. */
  *occurrences(text: string): Generator<{ index: number; text: string }> {
    if (!this.finder) return;
    const re = new RegExp(this.finder.source, 'g');
    for (let m = re.exec(text); m; m = re.exec(text)) yield { index: m.index, text: m[0] };
  }

  /**
   * The set of special tokens that become ids, after checking that no disallowed one occurs.
   * No options: none allowed, none disallowed (encode_ordinary). With options, disallowedSpecial
   * defaults to 'all' (everything not allowed), as in tiktoken.
   */
  resolve(text: string, opts: EncodeOptions | undefined): Set<string> {
    if (!opts) return new Set();
    const allowed = opts.allowedSpecial === 'all' ? new Set(this.byText.keys()) : new Set(opts.allowedSpecial ?? []);
    const dis = opts.disallowedSpecial ?? 'all';
    const disallowed = dis === 'all'
      ? new Set([...this.byText.keys()].filter((t) => !allowed.has(t)))
      : new Set(dis);
    if (disallowed.size > 0) {
      const found = new Set<string>();
      for (const o of this.occurrences(text)) if (disallowed.has(o.text)) found.add(o.text);
      if (found.size) throw new DisallowedSpecialError([...found]);
    }
    return allowed;
  }
}
