/**
 * HarmonyChatFormat: the ChatFormat the server uses for gpt-oss. OpenAI request bodies →
 * harmony prompt ids (ending in `<|start|>assistant`); completion tokens → events through the
 * tolerant HarmonyOutputParser; sampling stops on `<|return|>` and `<|call|>`.
 */
import type { ChatFormat, OutputParser, RenderedPrompt } from '../chat/chat-format.js';
import { enforceable } from '../constrain/json-schema-grammar.js';
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
  /** the header (or its start) of a forced tool call appended after `<|start|>assistant` (tool_choice) */
  forcedHeader?: number[];
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
    const prompt: HarmonyPrompt = { ids: r.ids, text: r.text, messages: request.messages, request };
    const choice = request.toolChoice;
    // tool_choice names a function (or requires a call and offers exactly one): the prompt opens
    // that call and its arguments are constrained to the function's parameters (a plain JSON
    // object where the schema cannot be enforced)
    const forced = choice.mode === 'function' ? choice.name : choice.mode === 'required' && request.tools.length === 1 ? request.tools[0].name : null;
    if (forced !== null) {
      const t = this.renderer.tokens;
      const head = `commentary to=functions.${forced} `;
      const ids = [t.channel, ...this.tokenizer.encode(head), t.constrain, ...this.tokenizer.encode('json'), t.message];
      prompt.ids = [...prompt.ids, ...ids];
      prompt.text += `<|channel|>${head}<|constrain|>json<|message|>`;
      prompt.forcedHeader = ids;
      const params = request.tools.find((x) => x.name === forced)?.parameters;
      prompt.constraint = params && enforceable(params as Record<string, unknown>)
        ? { type: 'json_schema', schema: params as Record<string, unknown> }
        : { type: 'json_object' };
    } else if (choice.mode === 'required' && request.tools.length > 1) {
      // a call is required and the model picks the function: the prompt opens the recipient,
      // the constraint spells one of the names, the rest of the header, then its arguments
      const t = this.renderer.tokens;
      const head = 'commentary to=functions.';
      const ids = [t.channel, ...this.tokenizer.encode(head)];
      prompt.ids = [...prompt.ids, ...ids];
      prompt.text += `<|channel|>${head}`;
      prompt.forcedHeader = ids;
      prompt.constraint = {
        type: 'tool_call',
        tools: request.tools.map((x) => {
          const params = x.parameters as Record<string, unknown> | undefined;
          return { name: x.name, schema: params && enforceable(params) ? params : null };
        }),
        tail: [...this.tokenizer.encode(' '), t.constrain, ...this.tokenizer.encode('json'), t.message],
      };
    }
    return prompt;
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

  createParser(prompt?: RenderedPrompt, opts: OutputParserOptions = {}): OutputParser {
    const parser = new HarmonyOutputParser(this.tokenizer, { newCallId: this.opts.newCallId, ...opts }, this.renderer.tokens);
    const forced = (prompt as HarmonyPrompt | undefined)?.forcedHeader;
    if (!forced) return parser;
    // the prompt opened the call: the parser reads that header first, its events lead the output
    const pending = forced.flatMap((id) => parser.push(id));
    return {
      push: (id) => [...pending.splice(0), ...parser.push(id)],
      finish: () => [...pending.splice(0), ...parser.finish()],
      result: () => parser.result(),
    };
  }
}
