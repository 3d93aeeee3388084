/**
 * The engine-facing harmony output parser: completion tokens → reasoning / content / tool-call
 * events while they stream. It never throws and never drops model text: malformed headers,
 * missing channels, stray special tokens and truncation all become content of the most
 * plausible message, and the result is flagged `malformed`.
 *
 * Routing: channel `analysis` → reasoning; a recipient `functions.NAME` (any channel) → a tool
 * call; built-in tool recipients (browser.*, python, container.*) → reasoning; everything else
 * (final, commentary preambles, no channel, hallucinated non-assistant messages) → content.
 */
import type { OutputEvent, OutputParser, ParsedOutput, ToolCall } from '../chat/chat-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { HarmonyTokens } from './special-tokens.js';
import { parseTolerantHeader, type TolerantHeader } from './tolerant-header.js';
import type { Role } from './types.js';
import { Utf8Stream } from './utf8.js';

/** a header longer than this without `<|message|>` is taken to be content the model wrote too early */
export const MAX_HEADER_TOKENS = 64;

type Sink = { kind: 'reasoning' } | { kind: 'content' } | { kind: 'tool'; index: number };

export interface OutputParserOptions {
  /** tool-call ids; default `call_` + a random suffix and a counter */
  newCallId?: () => string;
  /** the role the prompt's last `<|start|>` opened (default assistant); null when the prompt did not open a header */
  role?: Role | null;
}

let callCounter = 0;
function defaultCallId(): string {
  callCounter = (callCounter + 1) % 1e9;
  return `call_${Math.random().toString(36).slice(2, 10)}${callCounter.toString(36)}`;
}

const BUILTIN_RECIPIENT = /^(browser|python|container)(\.|$)/;
const SELF_RECIPIENTS = new Set(['assistant', 'all', 'user']);

export class HarmonyOutputParser implements OutputParser {
  readonly tokens: HarmonyTokens;
  private state: 'start' | 'header' | 'content';
  private knownRole: Role | null;
  private headerIds: number[] = [];
  private sink: Sink = { kind: 'content' };
  /** the last message ended before its `<|message|>`: a `<|message|>` now continues it */
  private salvagedHeader: TolerantHeader | null = null;
  private utf8 = new Utf8Stream();
  private reasoning = '';
  private content = '';
  private calls: ToolCall[] = [];
  private malformed = false;
  private finished = false;
  private readonly newCallId: () => string;

  constructor(readonly tokenizer: Tokenizer, opts: OutputParserOptions = {}, tokens?: HarmonyTokens) {
    this.tokens = tokens ?? new HarmonyTokens(tokenizer);
    this.newCallId = opts.newCallId ?? defaultCallId;
    this.knownRole = opts.role === undefined ? 'assistant' : opts.role;
    this.state = this.knownRole !== null ? 'header' : 'start';
  }

  push(id: number): OutputEvent[] {
    const ev: OutputEvent[] = [];
    try {
      this.step(id, ev);
    } catch {
      // a bug must not fail the request: keep what the token said as content
      this.malformed = true;
      this.emit(ev, this.textOf(id), { kind: 'content' });
    }
    return ev;
  }

  finish(): OutputEvent[] {
    const ev: OutputEvent[] = [];
    if (this.finished) return ev;
    this.finished = true;
    try {
      if (this.state === 'header') {
        if (this.headerIds.length > 0) {
          this.malformed = true; // cut off inside a header
          this.salvageHeader(ev, false);
        }
      } else if (this.state === 'content') {
        this.malformed = true; // cut off inside a message (length limit or cancellation)
        this.closeMessage(ev);
      }
    } catch {
      this.malformed = true;
    }
    this.state = 'start';
    return ev;
  }

  result(): ParsedOutput {
    return { reasoning: this.reasoning, content: this.content, toolCalls: this.calls.map((c) => ({ ...c })), malformed: this.malformed };
  }

  private textOf(id: number): string {
    const b = this.tokenizer.tokenBytes(id);
    return b === undefined ? '\uFFFD' : new TextDecoder().decode(b);
  }

  private step(id: number, ev: OutputEvent[]): void {
    const t = this.tokens;
    switch (this.state) {
      case 'start':
        if (id === t.start) {
          this.beginHeader(null);
        } else if (t.stopTokens.has(id)) {
          this.malformed = true; // a repeated end marker carries no text
        } else if (id === t.message) {
          // `<|message|>` without a header: continue a header cut short, else an assistant message
          this.malformed = true;
          const h = this.salvagedHeader ?? parseTolerantHeader('', 'assistant', true);
          this.salvagedHeader = null;
          this.openMessage(h, ev);
        } else {
          // the model skipped `<|start|>`: read what follows as an assistant header (text stays content)
          this.malformed = true;
          this.beginHeader('assistant');
          this.headerIds.push(id);
        }
        break;
      case 'header':
        if (id === t.message) {
          const h = parseTolerantHeader(this.decodeHeader(), this.knownRole, true);
          this.knownRole = null;
          this.openMessage(h, ev);
          if (h.leftover !== '') this.emit(ev, h.leftover, this.sink);
        } else if (t.stopTokens.has(id)) {
          this.malformed = true; // `<|message|>` missing: the header words are the content
          this.salvageHeader(ev, false);
          this.state = 'start';
        } else if (id === t.start) {
          if (this.headerIds.length > 0) {
            this.malformed = true;
            this.salvageHeader(ev, false);
          }
          this.beginHeader(null);
        } else {
          this.headerIds.push(id);
          if (this.headerIds.length > MAX_HEADER_TOKENS) {
            this.malformed = true;
            this.salvageHeader(ev, true);
          }
        }
        break;
      case 'content':
        if (t.stopTokens.has(id)) {
          this.closeMessage(ev);
          this.state = 'start';
        } else if (id === t.start) {
          this.malformed = true; // `<|end|>` missing
          this.closeMessage(ev);
          this.beginHeader(null);
        } else if (id === t.channel) {
          // `<|end|><|start|>assistant` missing before the next header
          this.malformed = true;
          this.closeMessage(ev);
          this.beginHeader('assistant');
          this.headerIds.push(id);
        } else {
          const bytes = this.tokenizer.tokenBytes(id);
          if (bytes === undefined) {
            this.malformed = true;
            this.emit(ev, this.utf8.flush() + '\uFFFD', this.sink);
          } else {
            this.emit(ev, this.utf8.push(bytes), this.sink);
          }
        }
        break;
    }
  }

  private beginHeader(role: Role | null): void {
    this.salvagedHeader = null;
    this.state = 'header';
    this.knownRole = role;
    this.headerIds = [];
  }

  /** header text, lossy: unknown ids become U+FFFD rather than an error */
  private decodeHeader(): string {
    const dec = new Utf8Stream();
    let s = '';
    for (const id of this.headerIds) {
      const b = this.tokenizer.tokenBytes(id);
      s += b === undefined ? dec.flush() + '\uFFFD' : dec.push(b);
    }
    return s + dec.flush();
  }

  /**
   * A header that never reached `<|message|>`: its structure is kept and its other words become
   * the message content. `keepOpen` (the header ran too long) continues the message as content.
   */
  private salvageHeader(ev: OutputEvent[], keepOpen: boolean): void {
    const h = parseTolerantHeader(this.decodeHeader(), this.knownRole, false);
    this.knownRole = null;
    this.headerIds = [];
    this.openMessage(h, ev);
    if (h.leftover !== '') this.emit(ev, h.leftover, this.sink);
    if (!keepOpen) {
      this.closeMessage(ev);
      this.salvagedHeader = h.leftover === '' ? h : null;
      this.state = 'start';
    }
  }

  private openMessage(h: TolerantHeader, ev: OutputEvent[]): void {
    if (h.malformed) this.malformed = true;
    this.utf8 = new Utf8Stream();
    this.state = 'content';
    this.salvagedHeader = null;
    this.sink = this.route(h);
    if (this.sink.kind === 'tool') {
      const c = this.calls[this.sink.index];
      ev.push({ type: 'tool_call_start', index: this.sink.index, id: c.id, name: c.name });
    }
  }

  private route(h: TolerantHeader): Sink {
    if (h.role !== 'assistant') {
      this.malformed = true; // the model wrote another author's message: keep it visible
      return { kind: 'content' };
    }
    const r = h.recipient;
    if (r !== null && !SELF_RECIPIENTS.has(r)) {
      if (BUILTIN_RECIPIENT.test(r)) return { kind: 'reasoning' };
      let name = r;
      if (r.startsWith('functions.')) name = r.slice('functions.'.length);
      else this.malformed = true;
      const index = this.calls.length;
      this.calls.push({ id: this.newCallId(), name, arguments: '' });
      return { kind: 'tool', index };
    }
    return h.channel === 'analysis' ? { kind: 'reasoning' } : { kind: 'content' };
  }

  private emit(ev: OutputEvent[], text: string, sink: Sink): void {
    if (text === '') return;
    if (sink.kind === 'reasoning') {
      this.reasoning += text;
      ev.push({ type: 'reasoning', delta: text });
    } else if (sink.kind === 'content') {
      this.content += text;
      ev.push({ type: 'content', delta: text });
    } else {
      this.calls[sink.index].arguments += text;
      ev.push({ type: 'tool_call_arguments', index: sink.index, delta: text });
    }
  }

  private closeMessage(ev: OutputEvent[]): void {
    this.emit(ev, this.utf8.flush(), this.sink);
    if (this.sink.kind === 'tool') ev.push({ type: 'tool_call_end', index: this.sink.index });
    this.sink = { kind: 'content' };
  }
}
