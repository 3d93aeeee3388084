/**
 * A forced tool call whose function the model chooses (tool_choice "required" with several
 * tools): the completion must spell one of the tool names, then the header's tail (ordinary text
 * and special tokens, e.g. harmony's ` <|constrain|>json<|message|>`), then JSON arguments under
 * that tool's schema. One alternative per tool runs side by side; a token is allowed when some
 * alternative can take it, so the name is free to be tokenized any way the vocabulary allows.
 */
import type { TokenConstraint } from '../engine/engine.js';
import { canFinish, initialState, type Node, type State } from './json-schema-grammar.js';
import { advance, computeMask, type Vocabulary } from './token-mask.js';

type Part = { kind: 'bytes'; bytes: Uint8Array } | { kind: 'special'; id: number } | { kind: 'json'; root: Node };

/** One tool's path through the parts: `off` bytes into a bytes part, or the JSON states. */
interface Alt {
  parts: readonly Part[];
  part: number;
  off: number;
  states: State[];
}

const enc = new TextEncoder();

export class ToolCallConstraint implements TokenConstraint {
  private alts: Alt[];
  private mask: Uint8Array | null = null;

  /** `tail`: the token ids between the name and the arguments (special ids kept as such) */
  constructor(private readonly vocab: Vocabulary, tools: { name: string; root: Node }[], tail: readonly number[]) {
    this.alts = tools.map((t) => {
      const parts: Part[] = [];
      let text: number[] = [...enc.encode(t.name)];
      for (const id of tail) {
        const b = vocab.bytes[id];
        if (b && b.length > 0) text.push(...b);
        else {
          if (text.length > 0) parts.push({ kind: 'bytes', bytes: Uint8Array.from(text) });
          text = [];
          parts.push({ kind: 'special', id });
        }
      }
      if (text.length > 0) parts.push({ kind: 'bytes', bytes: Uint8Array.from(text) });
      parts.push({ kind: 'json', root: t.root });
      return enter({ parts, part: 0, off: 0, states: [] });
    });
  }

  allowed(id: number): boolean {
    if (!this.mask) this.mask = this.computeMask();
    return this.mask[id] === 1;
  }

  accept(id: number): void {
    this.alts = this.alts.map((a) => feed(a, id, this.vocab)).filter((a): a is Alt => a !== null);
    this.mask = null;
  }

  isComplete(): boolean {
    return this.alts.some((a) => a.part === a.parts.length - 1 && a.states.some(canFinish));
  }

  private computeMask(): Uint8Array {
    const mask = new Uint8Array(this.vocab.size);
    for (const a of this.alts) {
      if (a.parts[a.part].kind === 'json') {
        const m = computeMask(this.vocab, a.states);
        for (let i = 0; i < m.length; i++) mask[i] |= m[i];
      } else {
        // the header: few steps, each id tried on its own
        for (let id = 0; id < this.vocab.size; id++) if (!mask[id] && feed(a, id, this.vocab)) mask[id] = 1;
      }
    }
    return mask;
  }
}

/** Entering a JSON part starts its recognizer. */
function enter(a: Alt): Alt {
  const p = a.parts[a.part];
  return p.kind === 'json' && a.states.length === 0 ? { ...a, states: [initialState(p.root)] } : a;
}

/** The alternative after token `id`, or null if it cannot take it. */
function feed(a: Alt, id: number, vocab: Vocabulary): Alt | null {
  const bytes = vocab.bytes[id];
  const p = a.parts[a.part];
  if (!bytes || bytes.length === 0) {
    // a special token: only where the header has it
    return p.kind === 'special' && p.id === id ? enter({ ...a, part: a.part + 1, off: 0 }) : null;
  }
  let cur = a;
  let i = 0;
  while (i < bytes.length) {
    const q = cur.parts[cur.part];
    if (q.kind === 'special') return null;
    if (q.kind === 'json') {
      const states = advance(cur.states, bytes.subarray(i));
      return states.length > 0 ? { ...cur, states } : null;
    }
    if (bytes[i] !== q.bytes[cur.off]) return null;
    i++;
    cur = cur.off + 1 === q.bytes.length ? enter({ ...cur, part: cur.part + 1, off: 0 }) : { ...cur, off: cur.off + 1 };
  }
  return cur;
}
