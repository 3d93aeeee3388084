/**
 * One request's generation as the API layers see it: engine tokens → (chat) the format's parser
 * → events, with stop strings, cancellation and usage. The server, the CLI chat and the library
 * API all consume these streams.
 */
import type { ChatFormat, OutputEvent, ParsedOutput, RenderedPrompt } from '../chat/chat-format.js';
import type { ConstraintSpec, EngineClient } from '../engine/client.js';
import type { GeneratedToken, Usage } from '../engine/engine.js';
import type { SamplingParams } from '../engine/sampling.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StopStringFilter } from './stop-strings.js';
import { generatedBytes, generatedText } from '../tokenizer/detokenizer.js';

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'abort' | 'error';

export interface GenerationOptions {
  sampling: SamplingParams;
  /** stop strings (on content) */
  stop?: string[];
  constraint?: ConstraintSpec;
  signal?: AbortSignal;
}

/** A generated token with its logprob data, for `logprobs` in responses. */
export interface TokenInfo extends GeneratedToken {
  text: string;
}

export type ChatStreamEvent =
  | OutputEvent
  /** how many tokens this engine step generated, with their logprobs when asked for */
  | { type: 'tokens'; count: number; logprobs: TokenInfo[] }
  | { type: 'done'; finishReason: FinishReason; error?: string; usage: Usage; output: ParsedOutput };

function linkSignal(signal?: AbortSignal): AbortController {
  const ac = new AbortController();
  if (signal) {
    if (signal.aborted) ac.abort();
    else signal.addEventListener('abort', () => ac.abort(), { once: true });
  }
  return ac;
}

const EMPTY_USAGE: Usage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };

/** Chat generation: the format's parser splits reasoning, content and tool calls. */
export async function* generateChat(engine: EngineClient, format: ChatFormat, rendered: RenderedPrompt, o: GenerationOptions): AsyncGenerator<ChatStreamEvent> {
  const prompt = rendered.ids;
  const ac = linkSignal(o.signal);
  const sampling = { ...o.sampling, stopTokenIds: [...new Set([...o.sampling.stopTokenIds, ...format.stopTokenIds])] };
  const parser = format.createParser(rendered);
  const filter = new StopStringFilter(o.stop ?? []);
  let usage: Usage = { ...EMPTY_USAGE, promptTokens: prompt.length };
  let reason: FinishReason = 'stop';
  let error: string | undefined;
  let stoppedByString = false;
  let contentSoFar = '';
  const emit = function* (events: OutputEvent[]): Generator<OutputEvent> {
    for (const e of events) {
      if (e.type !== 'content') {
        yield e;
        continue;
      }
      if (stoppedByString) continue;
      const d = filter.push(e.delta);
      if (filter.stopped) stoppedByString = true;
      if (d) {
        contentSoFar += d;
        yield { type: 'content', delta: d };
      }
    }
  };
  for await (const out of engine.generate({ prompt, sampling, constraint: o.constraint }, ac.signal)) {
    const infos: TokenInfo[] = [];
    for (const t of out.tokens) {
      yield* emit(parser.push(t.id));
      if (o.sampling.logprobs) infos.push({ ...t, text: generatedText(format.tokenizer, t.id) });
      if (stoppedByString && !ac.signal.aborted) ac.abort();
    }
    if (out.tokens.length > 0) yield { type: 'tokens', count: out.tokens.length, logprobs: infos };
    if (out.finishReason) {
      if (out.stopToken !== undefined) yield* emit(parser.push(out.stopToken));
      usage = out.usage ?? usage;
      reason = stoppedByString ? 'stop' : out.finishReason;
      error = out.error;
    }
  }
  yield* emit(parser.finish());
  if (!stoppedByString) {
    const rest = filter.flush();
    if (rest) {
      contentSoFar += rest;
      yield { type: 'content', delta: rest };
    }
  }
  const parsed = parser.result();
  const output: ParsedOutput = { ...parsed, content: stoppedByString ? contentSoFar : parsed.content };
  if (reason === 'stop' && output.toolCalls.length > 0) reason = 'tool_calls';
  if (reason === 'abort' && o.signal?.aborted !== true) reason = 'stop'; // our own abort (stop string)
  yield { type: 'done', finishReason: reason, error, usage, output };
}

export type TextStreamEvent =
  | { type: 'text'; delta: string; tokens: TokenInfo[] }
  | { type: 'done'; finishReason: FinishReason; error?: string; usage: Usage; text: string };

/** Plain text completion: tokens decoded incrementally (whole UTF-8 characters only). */
export async function* generateText(engine: EngineClient, tokenizer: Tokenizer, prompt: number[], o: GenerationOptions): AsyncGenerator<TextStreamEvent> {
  const ac = linkSignal(o.signal);
  const filter = new StopStringFilter(o.stop ?? []);
  const utf8 = new TextDecoder('utf-8');
  let usage: Usage = { ...EMPTY_USAGE, promptTokens: prompt.length };
  let reason: FinishReason = 'stop';
  let error: string | undefined;
  let text = '';
  for await (const out of engine.generate({ prompt, sampling: o.sampling, constraint: o.constraint }, ac.signal)) {
    const infos: TokenInfo[] = [];
    let piece = '';
    for (const t of out.tokens) {
      if (filter.stopped) break;
      const raw = utf8.decode(generatedBytes(tokenizer, t.id), { stream: true });
      piece += filter.push(raw);
      if (o.sampling.logprobs) infos.push({ ...t, text: generatedText(tokenizer, t.id) });
    }
    if (filter.stopped && !ac.signal.aborted) ac.abort();
    if (piece || infos.length > 0) {
      text += piece;
      yield { type: 'text', delta: piece, tokens: infos };
    }
    if (out.finishReason) {
      usage = out.usage ?? usage;
      reason = filter.stopped ? 'stop' : out.finishReason;
      error = out.error;
    }
  }
  if (!filter.stopped) {
    const rest = filter.push(utf8.decode()) + filter.flush();
    if (rest) {
      text += rest;
      yield { type: 'text', delta: rest, tokens: [] };
    }
  }
  if (reason === 'abort' && o.signal?.aborted !== true) reason = 'stop';
  yield { type: 'done', finishReason: reason, error, usage, text };
}
