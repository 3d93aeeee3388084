/**
 * o200k_base and o200k_harmony (gpt-oss): tiktoken's byte-level BPE, written for speed.
 * The ranks come from the js-tiktoken package (the same 199,998 merges as OpenAI's
 * o200k_base.tiktoken); the pre-tokenizer split, the merge loop and special-token handling
 * follow tiktoken exactly (see ../shared/fixtures/tokenizer/README.md).
 */
import o200kRanks from 'js-tiktoken/ranks/o200k_base';
import { InputError } from '../util/errors.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** Harmony's formatting tokens (openai/harmony's registry), the rest of 199998..201088 is reserved. */
const HARMONY_NAMED: Record<string, number> = {
  '<|startoftext|>': 199998, '<|endoftext|>': 199999, '<|return|>': 200002, '<|constrain|>': 200003,
  '<|channel|>': 200005, '<|start|>': 200006, '<|end|>': 200007, '<|message|>': 200008, '<|call|>': 200012,
};
const HARMONY_LAST_ID = 201088;

function harmonySpecials(): Map<string, number> {
  const m = new Map<string, number>();
  const named = new Set(Object.values(HARMONY_NAMED));
  for (const [k, v] of Object.entries(HARMONY_NAMED)) m.set(k, v);
  for (let id = 200000; id <= HARMONY_LAST_ID; id++) if (!named.has(id)) m.set(`<|reserved_${id}|>`, id);
  return m;
}

interface RankTable {
  /** latin1 string of a token's bytes → rank */
  ranks: Map<string, number>;
  /** rank → bytes */
  bytes: Uint8Array[];
  pattern: string;
}

let table: RankTable | null = null;
function rankTable(): RankTable {
  if (table) return table;
  const ranks = new Map<string, number>();
  const bytes: Uint8Array[] = [];
  for (const line of o200kRanks.bpe_ranks.split('\n')) {
    if (!line) continue;
    const parts = line.split(' ');
    const offset = Number.parseInt(parts[1], 10);
    for (let i = 2; i < parts.length; i++) {
      const b = Buffer.from(parts[i], 'base64');
      const rank = offset + i - 2;
      ranks.set(b.toString('latin1'), rank);
      bytes[rank] = new Uint8Array(b);
    }
  }
  table = { ranks, bytes, pattern: o200kRanks.pat_str };
  return table;
}

const MAX_CACHE = 1 << 16;

export class O200kTokenizer implements Tokenizer {
  readonly vocabSize: number;
  private readonly ranks: Map<string, number>;
  private readonly rankBytes: Uint8Array[];
  private readonly split: RegExp;
  private readonly specialIds: Map<string, number>;
  private readonly specialNames = new Map<number, string>();
  private readonly specialBytes = new Map<number, Uint8Array>();
  private readonly cache = new Map<string, number[]>();

  private constructor(readonly name: string, specials: Map<string, number>, vocabSize: number) {
    const t = rankTable();
    this.ranks = t.ranks;
    this.rankBytes = t.bytes;
    this.split = new RegExp(t.pattern, 'gu');
    this.specialIds = specials;
    for (const [k, v] of specials) {
      this.specialNames.set(v, k);
      this.specialBytes.set(v, new TextEncoder().encode(k));
    }
    this.vocabSize = vocabSize;
  }

  /** o200k_harmony: the o200k_base ranks plus harmony's special tokens (201,089 ids). */
  static harmony(): O200kTokenizer {
    return (harmonyInstance ??= new O200kTokenizer('o200k_harmony', harmonySpecials(), HARMONY_LAST_ID + 1));
  }

  /** o200k_base as tiktoken ships it: <|endoftext|> 199999 and <|endofprompt|> 200018. */
  static base(): O200kTokenizer {
    return (baseInstance ??= new O200kTokenizer('o200k_base', new Map(Object.entries(o200kRanks.special_tokens)), 200019));
  }

  encode(text: string, opts?: EncodeOptions): number[] {
    text = wellFormed(text); // lone surrogates become U+FFFD, as tiktoken's UTF-8 conversion does
    if (!opts) return this.encodeOrdinary(text);
    const all = [...this.specialIds.keys()];
    const allowed = opts.allowedSpecial === 'all' ? new Set(all) : new Set(opts.allowedSpecial ?? []);
    const dis = opts.disallowedSpecial ?? 'all';
    const disallowed = dis === 'all' ? all.filter((s) => !allowed.has(s)) : dis.filter((s) => this.specialIds.has(s));
    if (disallowed.length > 0 && text.includes('<|')) {
      for (const s of disallowed) {
        if (text.includes(s)) throw new InputError(`the text contains the special token ${s}, which is not allowed here`);
      }
    }
    if (allowed.size === 0 || !text.includes('<|')) return this.encodeOrdinary(text);
    const out: number[] = [];
    let start = 0;
    // leftmost special occurrence, longest first at a position (tiktoken's regex alternation)
    const names = [...allowed].filter((s) => this.specialIds.has(s)).sort((a, b) => b.length - a.length);
    while (start < text.length) {
      let best = -1;
      let bestName = '';
      let from = start;
      for (;;) {
        const i = text.indexOf('<|', from);
        if (i < 0) break;
        const hit = names.find((n) => text.startsWith(n, i));
        if (hit) {
          best = i;
          bestName = hit;
          break;
        }
        from = i + 1;
      }
      if (best < 0) {
        this.encodeOrdinaryInto(text.slice(start), out);
        break;
      }
      if (best > start) this.encodeOrdinaryInto(text.slice(start, best), out);
      out.push(this.specialIds.get(bestName)!);
      start = best + bestName.length;
    }
    return out;
  }

  private encodeOrdinary(text: string): number[] {
    const out: number[] = [];
    this.encodeOrdinaryInto(text, out);
    return out;
  }

  private encodeOrdinaryInto(text: string, out: number[]): void {
    const re = this.split;
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const piece = m[0];
      let key = piece;
      // ASCII pieces are their own latin1 byte string; others go through UTF-8
      for (let i = 0; i < piece.length; i++) {
        if (piece.charCodeAt(i) > 0x7f) {
          key = Buffer.from(piece, 'utf8').toString('latin1');
          break;
        }
      }
      const r = this.ranks.get(key);
      if (r !== undefined) {
        out.push(r);
        continue;
      }
      const cached = this.cache.get(key);
      if (cached) {
        for (const id of cached) out.push(id);
        continue;
      }
      const ids = key.length <= 64 ? this.bpeSmall(key) : this.bpeLarge(key);
      if (this.cache.size >= MAX_CACHE) this.cache.clear();
      this.cache.set(key, ids);
      for (const id of ids) out.push(id);
    }
  }

  private rankOf(s: string, a: number, b: number): number {
    const r = this.ranks.get(s.slice(a, b));
    return r === undefined ? Infinity : r;
  }

  /** tiktoken's byte_pair_merge: repeatedly merge the lowest-ranked adjacent pair (leftmost on ties). */
  private bpeSmall(s: string): number[] {
    const n = s.length;
    // starts[0..len) are part boundaries, starts[len] = n; pr[i] = rank of parts i and i+1 merged
    const starts: number[] = [];
    for (let i = 0; i <= n; i++) starts.push(i);
    const pr: number[] = [];
    for (let i = 0; i < n - 1; i++) pr.push(this.rankOf(s, i, i + 2));
    pr.push(Infinity);
    for (;;) {
      let min = Infinity;
      let at = -1;
      for (let i = 0; i < pr.length - 1; i++) if (pr[i] < min) { min = pr[i]; at = i; }
      if (at < 0) break;
      starts.splice(at + 1, 1);
      pr.splice(at + 1, 1);
      const parts = starts.length - 1;
      pr[at] = at + 1 < parts ? this.rankOf(s, starts[at], starts[at + 2]) : Infinity;
      if (at > 0) pr[at - 1] = this.rankOf(s, starts[at - 1], starts[at + 1]);
    }
    const ids: number[] = [];
    for (let i = 0; i < starts.length - 1; i++) ids.push(this.ranks.get(s.slice(starts[i], starts[i + 1]))!);
    return ids;
  }

  /** The same merges in O(n log n) for long pieces: a heap of (rank, start) with lazy deletion. */
  private bpeLarge(s: string): number[] {
    const n = s.length;
    const next = new Int32Array(n + 1);
    const prev = new Int32Array(n + 1);
    const alive = new Uint8Array(n + 1);
    for (let i = 0; i <= n; i++) { next[i] = i + 1; prev[i] = i - 1; alive[i] = 1; }
    // heap entries: rank * 2^21 + start would overflow; keep two parallel arrays
    const hr: number[] = [];
    const hs: number[] = [];
    const less = (i: number, j: number) => hr[i] < hr[j] || (hr[i] === hr[j] && hs[i] < hs[j]);
    const swap = (i: number, j: number) => {
      [hr[i], hr[j]] = [hr[j], hr[i]];
      [hs[i], hs[j]] = [hs[j], hs[i]];
    };
    const pushH = (r: number, st: number) => {
      hr.push(r);
      hs.push(st);
      let i = hr.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!less(i, p)) break;
        swap(i, p);
        i = p;
      }
    };
    const popH = () => {
      const r = hr[0], st = hs[0];
      const lr = hr.pop()!, ls = hs.pop()!;
      if (hr.length > 0) {
        hr[0] = lr;
        hs[0] = ls;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, rr = l + 1;
          let m = i;
          if (l < hr.length && less(l, m)) m = l;
          if (rr < hr.length && less(rr, m)) m = rr;
          if (m === i) break;
          swap(i, m);
          i = m;
        }
      }
      return [r, st];
    };
    // rank of the pair starting at part `a` (its end is next[next[a]])
    const pairRank = (a: number) => {
      const b = next[a];
      if (b >= n) return Infinity;
      return this.rankOf(s, a, next[b]);
    };
    for (let i = 0; i < n - 1; i++) {
      const r = this.rankOf(s, i, i + 2);
      if (r !== Infinity) pushH(r, i);
    }
    while (hr.length > 0) {
      const [r, a] = popH();
      if (!alive[a]) continue;
      if (pairRank(a) !== r) continue; // stale entry
      const b = next[a];
      alive[b] = 0;
      next[a] = next[b];
      prev[next[b]] = a;
      const r1 = pairRank(a);
      if (r1 !== Infinity) pushH(r1, a);
      if (prev[a] >= 0) {
        const r0 = pairRank(prev[a]);
        if (r0 !== Infinity) pushH(r0, prev[a]);
      }
    }
    const ids: number[] = [];
    for (let a = 0; a < n; a = next[a]) ids.push(this.ranks.get(s.slice(a, next[a]))!);
    return ids;
  }

  tokenBytes(id: number): Uint8Array | undefined {
    if (id >= 0 && id < this.rankBytes.length) return this.rankBytes[id];
    return this.specialBytes.get(id);
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes(ids[i]);
      if (!b) throw new InputError(`token id ${ids[i]} at index ${i} is not in the ${this.name} vocabulary`);
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8').decode(this.decodeBytes(ids));
  }

  specialTokenId(text: string): number | undefined {
    return this.specialIds.get(text);
  }

  isSpecial(id: number): boolean {
    return this.specialNames.has(id);
  }

  /** every special token, name → id */
  specialTokens(): ReadonlyMap<string, number> {
    return this.specialIds;
  }
}

/** String.prototype.toWellFormed (Node 20 has it; the ES2022 typings don't) */
function wellFormed(s: string): string {
  return (s as unknown as { toWellFormed(): string }).toWellFormed();
}

let harmonyInstance: O200kTokenizer | null = null;
let baseInstance: O200kTokenizer | null = null;
