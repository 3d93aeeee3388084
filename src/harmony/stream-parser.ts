/**
 * The reference's StreamableParser (FORMAT.md §8–§9; encoding.rs): a token-by-token state
 * machine ExpectStart → Header → Content, strict or not. Malformed input is an InputError here;
 * the engine-facing layer that never throws is output-parser.ts.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError } from '../util/errors.js';
import { parseHeader, parseHeaderString, type ParsedHeader } from './header.js';
import { HarmonyTokens } from './special-tokens.js';
import { textMessage, type Message, type Role } from './types.js';
import { decodeUtf8Strict, Utf8Stream } from './utf8.js';

export type StreamState = 'ExpectStart' | 'Header' | 'Content';

export interface StreamParserOptions {
  /** the role whose `<|start|>role` ended the prompt: the tokens begin inside its header */
  role?: Role | null;
  strict?: boolean;
}

export class StreamParser {
  readonly tokens: HarmonyTokens;
  readonly strict: boolean;
  private _state: StreamState;
  private nextRole: Role | null;
  private headerTokens: number[] = [];
  private header: ParsedHeader | null = null;
  private content = '';
  private utf8 = new Utf8Stream();
  /** an unknown id was seen: the rest of the message stays undecoded (one U+FFFD at its end) */
  private poisoned = false;
  private delta: string | null = null;
  readonly messages: Message[] = [];

  constructor(readonly tokenizer: Tokenizer, opts: StreamParserOptions = {}, tokens?: HarmonyTokens) {
    this.tokens = tokens ?? new HarmonyTokens(tokenizer);
    this.strict = opts.strict ?? true;
    this.nextRole = opts.role ?? null;
    this._state = this.nextRole !== null ? 'Header' : 'ExpectStart';
  }

  get state(): StreamState {
    return this._state;
  }
  get currentRole(): Role | null {
    return this._state === 'Content' ? this.header!.role : this.nextRole;
  }
  get currentChannel(): string | null {
    return this._state === 'Content' ? this.header!.channel : null;
  }
  get currentRecipient(): string | null {
    return this._state === 'Content' ? this.header!.recipient : null;
  }
  get currentContentType(): string | null {
    return this._state === 'Content' ? this.header!.contentType : null;
  }
  /** text of the open message emitted so far */
  get currentContent(): string {
    return this._state === 'Content' ? this.content : '';
  }
  /** text produced by the last input, null when it produced none */
  get lastContentDelta(): string | null {
    return this.delta;
  }

  private decodeHeader(): string {
    try {
      return decodeUtf8Strict(this.tokenizer.decodeBytes(this.headerTokens));
    } catch {
      throw new InputError('could not decode header');
    }
  }

  process(id: number): this {
    this.delta = null;
    switch (this._state) {
      case 'ExpectStart':
        if (id !== this.tokens.start) throw new InputError(`Unexpected token ${id} while expecting start token ${this.tokens.start}`);
        this._state = 'Header';
        this.headerTokens = [];
        break;
      case 'Header':
        if (id === this.tokens.message) {
          const header = parseHeader(this.decodeHeader(), this.nextRole);
          this.nextRole = null;
          this.openContent(header);
        } else if (!this.strict && this.tokens.stopTokens.has(id)) {
          // the model skipped <|message|>: with the first message's role known, its header words are the content
          if (this.nextRole !== null && this.headerTokens.length > 0) {
            const { header, remaining } = parseHeaderString(this.decodeHeader(), this.nextRole, false);
            this.messages.push(textMessage(header.role, remaining ?? '', { name: header.name, channel: header.channel }));
          }
          this._state = 'ExpectStart';
          this.nextRole = null;
        } else {
          this.headerTokens.push(id);
        }
        break;
      case 'Content':
        if (this.tokens.stopTokens.has(id)) {
          this.closeContent();
        } else if (!this.poisoned) {
          const bytes = this.tokenizer.tokenBytes(id);
          if (bytes === undefined) {
            this.poisoned = true;
          } else {
            const s = this.utf8.push(bytes);
            if (s !== '') {
              this.content += s;
              this.delta = s;
            }
          }
        }
        break;
    }
    return this;
  }

  /** end of input */
  processEos(): this {
    this.delta = null;
    if (this._state === 'Header') throw new InputError('Unexpected EOS while waiting for message header to complete');
    if (this._state === 'Content') this.closeContent();
    return this;
  }

  private openContent(header: ParsedHeader): void {
    this.header = header;
    this.content = '';
    this.utf8 = new Utf8Stream();
    this.poisoned = false;
    this._state = 'Content';
  }

  private closeContent(): void {
    const h = this.header!;
    // pending bytes never leak into the next message: they end this one, lossily
    const text = this.content + (this.poisoned ? '\uFFFD' : '') + this.utf8.flush();
    this.messages.push(textMessage(h.role, text, { name: h.name, recipient: h.recipient, channel: h.channel, contentType: h.contentType }));
    this._state = 'ExpectStart';
    this.header = null;
    this.content = '';
  }
}

/** parse_messages_from_completion_tokens: every token, then end of input */
export function parseCompletionTokens(tokenizer: Tokenizer, ids: readonly number[], role: Role | null, strict = true): Message[] {
  const p = new StreamParser(tokenizer, { role, strict });
  for (const id of ids) p.process(id);
  p.processEos();
  return p.messages;
}
