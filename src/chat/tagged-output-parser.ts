/**
 * The output parser for template-driven models (Nemotron 3, Qwen-style): reasoning between
 * `<think>` and `</think>`, tool calls in `<tool_call>…</tool_call>` blocks, the rest is content.
 * It works on decoded text, so the tags may be special tokens or ordinary text. A tool-call body
 * is either Nemotron 3's XML form
 *   <function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n</function>
 * or a JSON object {"name": …, "arguments": {…}}. Like the harmony parser it never throws on
 * model output: an unparseable call or an unclosed tag ends up as content, flagged malformed.
 */
import type { OutputEvent, OutputParser, ParsedOutput, ToolCall } from './chat-format.js';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export interface TaggedOutputOptions {
  /** the prompt ended inside an open `<think>`: output starts as reasoning */
  startsInReasoning: boolean;
  /** parameter name → JSON schema type, per function (string parameters stay raw text) */
  parameterTypes?: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  newCallId?: () => string;
  /** ids that end the completion (e.g. `<|im_end|>`): the engine hands over the stop token, it is not text */
  endIds?: readonly number[];
  thinkOpen?: string;
  thinkClose?: string;
  toolOpen?: string;
  toolClose?: string;
}

let counter = 0;
const defaultCallId = () => `call_${Math.random().toString(36).slice(2, 10)}${(counter++).toString(36)}`;

type Mode = 'reasoning' | 'content' | 'tool';

/** length of the longest suffix of `s` that is a proper prefix of one of `tags` */
function partialTagAtEnd(s: string, tags: readonly string[]): number {
  let best = 0;
  for (const t of tags) {
    for (let n = Math.min(t.length - 1, s.length); n > best; n--) {
      if (s.endsWith(t.slice(0, n))) { best = n; break; }
    }
  }
  return best;
}

export class TaggedOutputParser implements OutputParser {
  private readonly detok: IncrementalDetokenizer;
  private readonly thinkOpen: string;
  private readonly thinkClose: string;
  private readonly toolOpen: string;
  private readonly toolClose: string;
  private readonly newCallId: () => string;
  private mode: Mode;
  private pending = '';
  /** content so far is only whitespace (a `<think>` may still open, leading blanks are dropped) */
  private contentStarted = false;
  private reasoningStarted = false;
  private reasoning = '';
  private content = '';
  private readonly calls: ToolCall[] = [];
  private malformed = false;

  constructor(tokenizer: Tokenizer, private readonly opts: TaggedOutputOptions) {
    this.detok = new IncrementalDetokenizer(tokenizer);
    this.thinkOpen = opts.thinkOpen ?? '<think>';
    this.thinkClose = opts.thinkClose ?? '</think>';
    this.toolOpen = opts.toolOpen ?? '<tool_call>';
    this.toolClose = opts.toolClose ?? '</tool_call>';
    this.newCallId = opts.newCallId ?? defaultCallId;
    this.mode = opts.startsInReasoning ? 'reasoning' : 'content';
  }

  push(id: number): OutputEvent[] {
    if (this.opts.endIds?.includes(id)) return [];
    this.pending += this.detok.push(id);
    return this.drain(false);
  }

  finish(): OutputEvent[] {
    this.pending += this.detok.flush();
    const out = this.drain(true);
    if (this.mode === 'tool') {
      // an unclosed call: parse what is there, else keep it as content
      out.push(...this.closeTool(this.pending, true));
      this.pending = '';
      this.mode = 'content';
    } else if (this.pending) {
      out.push(...this.emit(this.pending));
      this.pending = '';
    }
    return out;
  }

  result(): ParsedOutput {
    return { reasoning: this.reasoning, content: this.content, toolCalls: this.calls.map((c) => ({ ...c })), malformed: this.malformed };
  }

  /** Moves complete text out of `pending`, holding back a possible partial tag at its end. */
  private drain(final: boolean): OutputEvent[] {
    const out: OutputEvent[] = [];
    for (;;) {
      if (this.mode === 'tool') {
        const end = this.pending.indexOf(this.toolClose);
        if (end < 0) return out;
        out.push(...this.closeTool(this.pending.slice(0, end), false));
        this.pending = this.pending.slice(end + this.toolClose.length);
        this.mode = 'content';
        continue;
      }
      const tags = this.mode === 'reasoning' ? [this.thinkClose, this.toolOpen] : this.contentStarted ? [this.toolOpen] : [this.thinkOpen, this.toolOpen];
      let at = -1;
      let tag = '';
      for (const t of tags) {
        const i = this.pending.indexOf(t);
        if (i >= 0 && (at < 0 || i < at)) { at = i; tag = t; }
      }
      if (at < 0) {
        const keep = final ? 0 : partialTagAtEnd(this.pending, tags);
        const text = this.pending.slice(0, this.pending.length - keep);
        this.pending = this.pending.slice(text.length);
        out.push(...this.emit(text));
        return out;
      }
      out.push(...this.emit(this.pending.slice(0, at)));
      this.pending = this.pending.slice(at + tag.length);
      if (tag === this.thinkClose) this.mode = 'content';
      else if (tag === this.thinkOpen) this.mode = 'reasoning';
      else {
        // a tool call inside reasoning closes the reasoning (the model forgot </think>)
        if (this.mode === 'reasoning') this.malformed = true;
        this.mode = 'tool';
      }
    }
  }

  private emit(text: string): OutputEvent[] {
    if (!text) return [];
    if (this.mode === 'reasoning') {
      if (!this.reasoningStarted) {
        text = text.replace(/^\s+/, '');
        if (!text) return [];
        this.reasoningStarted = true;
      }
      this.reasoning += text;
      return [{ type: 'reasoning', delta: text }];
    }
    if (!this.contentStarted) {
      text = text.replace(/^\s+/, '');
      if (!text) return [];
      this.contentStarted = true;
    }
    // blank text between or after tool calls is layout, not an answer
    if (this.calls.length > 0 && !text.trim()) return [];
    this.content += text;
    return [{ type: 'content', delta: text }];
  }

  private closeTool(body: string, unclosed: boolean): OutputEvent[] {
    const call = this.parseCall(body);
    if (!call) {
      this.malformed = true;
      this.mode = 'content';
      return this.emit(this.toolOpen + body + (unclosed ? '' : this.toolClose));
    }
    if (unclosed) this.malformed = true;
    const index = this.calls.length;
    const tc: ToolCall = { id: this.newCallId(), name: call.name, arguments: call.arguments };
    this.calls.push(tc);
    return [
      { type: 'tool_call_start', index, id: tc.id, name: tc.name },
      { type: 'tool_call_arguments', index, delta: tc.arguments },
      { type: 'tool_call_end', index },
    ];
  }

  private parseCall(body: string): { name: string; arguments: string } | null {
    const xml = /<function=([^>\s]+)>([\s\S]*?)(?:<\/function>|$)/.exec(body);
    if (xml) {
      const name = xml[1];
      const types = this.opts.parameterTypes?.get(name);
      const args: Record<string, unknown> = {};
      const re = /<parameter=([^>\s]+)>\n?([\s\S]*?)\n?<\/parameter>/g;
      for (let m = re.exec(xml[2]); m; m = re.exec(xml[2])) args[m[1]] = parameterValue(m[2], types?.get(m[1]));
      return { name, arguments: JSON.stringify(args) };
    }
    try {
      const v = JSON.parse(body.trim()) as { name?: unknown; arguments?: unknown; parameters?: unknown };
      if (typeof v?.name !== 'string' || !v.name) return null;
      const a = v.arguments ?? v.parameters ?? {};
      return { name: v.name, arguments: typeof a === 'string' ? a : JSON.stringify(a) };
    } catch {
      return null;
    }
  }
}

/** A parameter's text: raw for string parameters, else JSON where it parses. */
function parameterValue(text: string, type: unknown): unknown {
  if (type === 'string') return text;
  try {
    return JSON.parse(text.trim());
  } catch {
    return text;
  }
}
