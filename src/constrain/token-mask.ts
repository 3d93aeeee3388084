/**
 * Constrained decoding over a tokenizer's whole vocabulary: which tokens keep the output a valid
 * prefix of the grammar. The vocabulary is sorted by bytes once, so tokens that share a prefix
 * share the recognizer work for it, and a rejected prefix skips every token below it. Inside a
 * free JSON string (most of the output) the answer is precomputed: any token without '"', '\' or
 * control bytes continues the string.
 */
import type { TokenConstraint } from '../engine/engine.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { canFinish, initialState, inFreeString, step, type Node, type State } from './json-schema-grammar.js';

export class Vocabulary {
  /** ordinary token ids sorted by their bytes */
  readonly sorted: Int32Array;
  /** bytes of each id (empty for special or unknown ids) */
  readonly bytes: (Uint8Array | null)[];
  /** length of the common prefix of sorted[i] with sorted[i-1] */
  readonly lcp: Int32Array;
  /** ids that continue a free string whatever its state (no quote, backslash or control byte) */
  readonly plainString: Uint8Array;
  /** ids with a quote, backslash or control byte (the only ones a free string must check) */
  readonly special: Int32Array;

  constructor(readonly size: number, tokenBytes: (id: number) => Uint8Array | null) {
    this.bytes = new Array(size);
    const ids: number[] = [];
    for (let id = 0; id < size; id++) {
      const b = tokenBytes(id);
      this.bytes[id] = b && b.length > 0 ? b : null;
      if (this.bytes[id]) ids.push(id);
    }
    const cmp = (a: Uint8Array, b: Uint8Array) => {
      const n = Math.min(a.length, b.length);
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
      return a.length - b.length;
    };
    ids.sort((x, y) => cmp(this.bytes[x]!, this.bytes[y]!));
    this.sorted = Int32Array.from(ids);
    this.lcp = new Int32Array(ids.length);
    for (let i = 1; i < ids.length; i++) {
      const a = this.bytes[ids[i - 1]]!;
      const b = this.bytes[ids[i]]!;
      let k = 0;
      while (k < a.length && k < b.length && a[k] === b[k]) k++;
      this.lcp[i] = k;
    }
    this.plainString = new Uint8Array(size);
    const special: number[] = [];
    for (const id of ids) {
      const b = this.bytes[id]!;
      let plain = true;
      for (const x of b) if (x === 0x22 || x === 0x5c || x < 0x20) { plain = false; break; }
      if (plain) this.plainString[id] = 1;
      else special.push(id);
    }
    this.special = Int32Array.from(special);
  }

  static fromTokenizer(tok: Tokenizer): Vocabulary {
    return new Vocabulary(tok.vocabSize, (id) => (tok.isSpecial(id) ? null : tok.tokenBytes(id) ?? null));
  }
}

/** Feed bytes to a set of states (anyOf branches); returns the surviving states. */
export function advance(states: State[], bytes: Uint8Array): State[] {
  let cur = states;
  for (const b of bytes) {
    const next: State[] = [];
    for (const s of cur) step(s, b, next);
    if (next.length === 0) return next;
    cur = next.length > 8 ? dedupe(next) : next;
  }
  return cur;
}

function dedupe(states: State[]): State[] {
  // identical stacks (same objects) come from identical branches
  const seen = new Set<unknown>();
  return states.filter((s) => (seen.has(s.stack) ? false : (seen.add(s.stack), true)));
}

/** The allowed-token mask for a set of recognizer states. */
export function computeMask(v: Vocabulary, states: State[]): Uint8Array {
  const mask = new Uint8Array(v.size);
  if (states.length === 1 && inFreeString(states[0])) {
    mask.set(v.plainString);
    for (const id of v.special) if (advance(states, v.bytes[id]!).length > 0) mask[id] = 1;
    return mask;
  }
  // walk the sorted vocabulary, reusing the states of the shared prefix
  const ids = v.sorted;
  const stack: State[][] = [states]; // stack[d] = states after d bytes of the current token
  for (let i = 0; i < ids.length; i++) {
    const b = v.bytes[ids[i]]!;
    let d = Math.min(v.lcp[i], stack.length - 1);
    stack.length = d + 1;
    let alive = stack[d].length > 0;
    while (alive && d < b.length) {
      const next: State[] = [];
      for (const s of stack[d]) step(s, b[d], next);
      stack.push(next.length > 8 ? dedupe(next) : next);
      d++;
      alive = next.length > 0;
    }
    if (alive) {
      mask[ids[i]] = 1;
      continue;
    }
    // dead at depth d-1..: every following token sharing those d bytes dies too
    const deadAt = d; // bytes [0, d) lead to no state
    while (i + 1 < ids.length && v.lcp[i + 1] >= deadAt) i++;
  }
  return mask;
}

/**
 * A TokenConstraint for JSON output. With `gate`, the constraint starts once that token sequence
 * has been generated (e.g. harmony's `<|channel|>final<|message|>`, so reasoning runs free).
 */
export class JsonConstraint implements TokenConstraint {
  private states: State[];
  private mask: Uint8Array | null = null;
  private active: boolean;
  private recent: number[] = [];

  constructor(private readonly vocab: Vocabulary, root: Node, private readonly gate: number[] = []) {
    this.states = [initialState(root)];
    this.active = gate.length === 0;
  }

  allowed(id: number): boolean {
    if (!this.active) return true;
    if (!this.mask) this.mask = computeMask(this.vocab, this.states);
    return this.mask[id] === 1;
  }

  accept(id: number): void {
    if (!this.active) {
      this.recent.push(id);
      if (this.recent.length > this.gate.length) this.recent.shift();
      this.active = this.recent.length === this.gate.length && this.recent.every((t, i) => t === this.gate[i]);
      return;
    }
    const b = this.vocab.bytes[id];
    this.states = b ? advance(this.states, b) : [];
    this.mask = null;
  }

  isComplete(): boolean {
    return this.active && this.states.some(canFinish);
  }
}
