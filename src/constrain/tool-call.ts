/**
 * A forced tool call: the completion must spell `head` (e.g. a chat template's
 * `<tool_call>\n{"name": "`), one of the tool names, `tail` (the rest of the call's header,
 * e.g. harmony's ` <|constrain|>json<|message|>`), JSON arguments under that tool's schema, then
 * `trailer` (e.g. `}\n</tool_call>`). One alternative per tool runs side by side; a token is
 * allowed when some alternative can take it, so every part is free to be tokenized any way the
 * vocabulary allows, and a token may straddle the end of the arguments. With a `gate`, the
 * constraint starts once those tokens were generated (reasoning runs free before).
 */
import type { TokenConstraint } from '../engine/engine.js';
import { canFinish, initialState, type Node, type State } from './json-schema-grammar.js';
import { advance, computeMask, type Vocabulary } from './token-mask.js';

type Part = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'special'; id: number } | { kind: 'json'; root: Node };

/** One tool's path through the parts: `off` bytes into a bytes part, or the JSON states; part = parts.length: done. */
interface Alt {
  parts: readonly Part[];
  part: number;
  off: number;
  states: State[];
}

export interface ToolCallShape {
  /** token ids before the name (special ids kept as such) */
  head?: readonly number[];
  /** token ids between the name and the arguments */
  tail: readonly number[];
  /** token ids after the arguments */
  trailer?: readonly number[];
  /** the constraint starts after these tokens */
  gate?: readonly number[];
}

const enc = new TextEncoder();

export class ToolCallConstraint implements TokenConstraint {
  private alts: Alt[];
  private mask: Uint8Array | null = null;
  private active: boolean;
  private recent: number[] = [];
  private readonly gate: readonly number[];

  constructor(private readonly vocab: Vocabulary, tools: { name: string; root: Node }[], shape: ToolCallShape) {
    this.gate = shape.gate ?? [];
    this.active = this.gate.length === 0;
    this.alts = tools.map((t) => {
      const parts: Part[] = [];
      let text: number[] = [];
      const flush = () => {
        if (text.length > 0) parts.push({ kind: 'bytes', bytes: Uint8Array.from(text) });
        text = [];
      };
      const ids = (list: readonly number[]) => {
        for (const id of list) {
          const b = vocab.bytes[id];
          if (b && b.length > 0) text.push(...b);
          else {
            flush();
            parts.push({ kind: 'special', id });
          }
        }
      };
      ids(shape.head ?? []);
      text.push(...enc.encode(t.name));
      ids(shape.tail);
      flush();
      parts.push({ kind: 'json', root: t.root });
      ids(shape.trailer ?? []);
      flush();
      return enter({ parts, part: 0, off: 0, states: [] });
    });
  }

  allowed(id: number): boolean {
    if (!this.active) return true;
    if (!this.mask) this.mask = this.computeMask();
    return this.mask[id] === 1;
  }

  accept(id: number): void {
    if (!this.active) {
      this.recent.push(id);
      if (this.recent.length > this.gate.length) this.recent.shift();
      this.active = this.recent.length === this.gate.length && this.recent.every((t, i) => t === this.gate[i]);
      return;
    }
    this.alts = this.alts.map((a) => feed(a, id, this.vocab)).filter((a): a is Alt => a !== null);
    this.mask = null;
  }

  isComplete(): boolean {
    return this.active && this.alts.some(done);
  }

  private computeMask(): Uint8Array {
    const mask = new Uint8Array(this.vocab.size);
    for (const a of this.alts) {
      if (a.part >= a.parts.length) continue;
      const p = a.parts[a.part];
      if (p.kind === 'json') {
        const m = computeMask(this.vocab, a.states);
        for (let i = 0; i < m.length; i++) mask[i] |= m[i];
        if (a.part === a.parts.length - 1) continue;
        if (!a.states.some(canFinish)) {
          // tokens that close the arguments and go on into the trailer (e.g. `}}`)
          for (const id of closingTokens(this.vocab)) if (!mask[id] && feed(a, id, this.vocab)) mask[id] = 1;
          continue;
        }
      }
      // a header or trailer step (or the arguments may end here): few steps, each id tried on its own
      for (let id = 0; id < this.vocab.size; id++) if (!mask[id] && feed(a, id, this.vocab)) mask[id] = 1;
    }
    return mask;
  }
}

const closers = new WeakMap<Vocabulary, number[]>();

/** Ids of tokens with a JSON value's closing byte (`}`, `]`, `"`) before their last byte. */
function closingTokens(vocab: Vocabulary): number[] {
  let ids = closers.get(vocab);
  if (!ids) {
    ids = [];
    for (let id = 0; id < vocab.size; id++) {
      const b = vocab.bytes[id];
      if (!b) continue;
      for (let i = 0; i + 1 < b.length; i++) {
        if (b[i] === 0x7d || b[i] === 0x5d || b[i] === 0x22) {
          ids.push(id);
          break;
        }
      }
    }
    closers.set(vocab, ids);
  }
  return ids;
}

/** Every part spelled (or the arguments, when they end the call, can end here). */
function done(a: Alt): boolean {
  if (a.part >= a.parts.length) return true;
  return a.part === a.parts.length - 1 && a.parts[a.part].kind === 'json' && a.states.some(canFinish);
}

/** Entering a JSON part starts its recognizer. */
function enter(a: Alt): Alt {
  const p = a.parts[a.part];
  return p && p.kind === 'json' && a.states.length === 0 ? { ...a, states: [initialState(p.root)] } : a;
}

/** The next part, after the current one is complete. */
function next(a: Alt): Alt {
  return enter({ ...a, part: a.part + 1, off: 0, states: [] });
}

/** The alternative after token `id`, or null if it cannot take it. */
function feed(a: Alt, id: number, vocab: Vocabulary): Alt | null {
  const bytes = vocab.bytes[id];
  if (a.part >= a.parts.length) return null;
  const p = a.parts[a.part];
  if (!bytes || bytes.length === 0) {
    // a special token: only where the call has it (possibly right after finished arguments)
    if (p.kind === 'special') return p.id === id ? next(a) : null;
    if (p.kind === 'json' && a.states.some(canFinish)) return feed(next(a), id, vocab);
    return null;
  }
  return feedBytes(a, bytes);
}

function feedBytes(a: Alt, bytes: Uint8Array): Alt | null {
  let cur = a;
  let i = 0;
  while (i < bytes.length) {
    if (cur.part >= cur.parts.length) return null;
    const q = cur.parts[cur.part];
    if (q.kind === 'special') return null;
    if (q.kind === 'json') {
      const rest = bytes.subarray(i);
      const states = advance(cur.states, rest);
      if (states.length > 0) return { ...cur, states };
      if (cur.part === cur.parts.length - 1) return null;
      // the arguments may end inside this token: the rest goes to the trailer
      for (let j = rest.length - 1; j >= 0; j--) {
        const s = j === 0 ? cur.states : advance(cur.states, rest.subarray(0, j));
        if (!s.some(canFinish)) continue;
        const after = feedBytes(next({ ...cur, states: s }), rest.subarray(j));
        if (after) return after;
      }
      return null;
    }
    if (bytes[i] !== q.bytes[cur.off]) return null;
    i++;
    cur = cur.off + 1 === q.bytes.length ? next(cur) : { ...cur, off: cur.off + 1 };
  }
  return cur;
}
