/**
 * HarmonyChatFormat: the ChatFormat the server uses for gpt-oss. OpenAI request bodies →
 * harmony prompt ids (ending in `<|start|>assistant`); completion tokens → events through the
 * tolerant HarmonyOutputParser; sampling stops on `<|return|>` and `<|call|>`.
 */
import type { ChatFormat, OutputParser, RenderedPrompt } from '../chat/chat-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { mapChatCompletion, type MappedRequest } from './api-chat.js';
import { isoDate, type Obj } from './api-common.js';
import { mapResponses } from './api-responses.js';
import { HarmonyOutputParser, type OutputParserOptions } from './output-parser.js';
import { HarmonyRenderer } from './renderer.js';
import type { Message } from './types.js';

export interface HarmonyChatFormatOptions {
  /** today's date for the system message (default: the clock); injectable for tests */
  now?: () => Date;
  /** default "You are ChatGPT, a large language model trained by OpenAI." */
  modelIdentity?: string;
  /** default "2024-06" */
  knowledgeCutoff?: string;
  /** tool-call id generator for parsers (default `call_…`) */
  newCallId?: () => string;
}

export interface HarmonyPrompt extends RenderedPrompt {
  /** the harmony messages the prompt was rendered from */
  messages: Message[];
  request: MappedRequest;
}

export class HarmonyChatFormat implements ChatFormat {
  readonly name = 'harmony';
  readonly renderer: HarmonyRenderer;
  readonly stopTokenIds: readonly number[];

  constructor(readonly tokenizer: Tokenizer, private readonly opts: HarmonyChatFormatOptions = {}) {
    this.renderer = new HarmonyRenderer(tokenizer);
    const t = this.renderer.tokens;
    this.stopTokenIds = [t.return, t.call];
  }

  private mapping() {
    return {
      currentDate: isoDate((this.opts.now ?? (() => new Date()))()),
      modelIdentity: this.opts.modelIdentity,
      knowledgeCutoff: this.opts.knowledgeCutoff,
    };
  }

  private render(request: MappedRequest): HarmonyPrompt {
    const r = this.renderer.renderCompletion(request.messages, 'assistant', { autoDropAnalysis: true });
    return { ids: r.ids, text: r.text, messages: request.messages, request };
  }

  renderChatCompletion(body: Record<string, unknown>): HarmonyPrompt {
    return this.render(mapChatCompletion(body as Obj, this.mapping()));
  }

  renderResponses(body: Record<string, unknown>): HarmonyPrompt {
    return this.render(mapResponses(body as Obj, this.mapping()));
  }

  /** JSON output constraints start at the final answer: `<|channel|>final<|message|>` */
  constrainedContentGate(): number[] {
    const t = this.renderer.tokens;
    return [t.channel, ...this.tokenizer.encode('final'), t.message];
  }

  createParser(_prompt?: RenderedPrompt, opts: OutputParserOptions = {}): OutputParser {
    return new HarmonyOutputParser(this.tokenizer, { newCallId: this.opts.newCallId, ...opts }, this.renderer.tokens);
  }
}
