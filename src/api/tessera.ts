/**
 * The library API: what the server and the CLI are built on, for TypeScript programs that want
 * the same in-process.
 *
 *   const t = await Tessera.load('/models/gpt-oss-20b');
 *   for await (const e of t.chat({ messages: [{ role: 'user', content: 'Hi' }] })) { ... }
 *   await t.close();
 */
import * as path from 'node:path';
import type { ChatFormat, OutputEvent, RenderedPrompt } from '../chat/chat-format.js';
import { createChatFormat } from '../chat/index.js';
import type { EngineClient } from '../engine/client.js';
import { DEFAULT_SAMPLING, samplingFromRequest, type SamplingParams } from '../engine/sampling.js';
import { WorkerEngine, type WorkerEngineOptions } from '../engine/worker-engine.js';
import { loadTokenizer } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError } from '../util/errors.js';
import { generateChat, generateText, type ChatStreamEvent, type TextStreamEvent } from './generation.js';
import { parseStop } from './stop-strings.js';
import { responseFormat } from '../server/request.js';

export interface LoadOptions extends Omit<WorkerEngineOptions, 'modelDir'> {
  /** name reported by the server; default the folder's name */
  modelName?: string;
}

export interface ChatOptions {
  signal?: AbortSignal;
}

export type ChatEvent = ChatStreamEvent;

export class Tessera {
  private constructor(
    readonly engine: EngineClient,
    readonly tokenizer: Tokenizer,
    readonly format: ChatFormat,
    readonly modelName: string,
  ) {}

  /** Load a checkpoint folder: the model on its own thread, the tokenizer and chat format here. */
  static async load(modelDir: string, opts: LoadOptions = {}): Promise<Tessera> {
    const engine = await WorkerEngine.start({ ...opts, modelDir });
    try {
      const tokenizer = await loadTokenizer(modelDir);
      const format = await createChatFormat(modelDir, engine.info.family, tokenizer);
      return new Tessera(engine, tokenizer, format, opts.modelName ?? path.basename(path.resolve(modelDir)));
    } catch (e) {
      await engine.close();
      throw e;
    }
  }

  /** Wrap an engine that is already running (tests, custom engines). */
  static fromEngine(engine: EngineClient, tokenizer: Tokenizer, format: ChatFormat, modelName: string): Tessera {
    return new Tessera(engine, tokenizer, format, modelName);
  }

  /**
   * Stream a chat: `request` is a Chat Completions body (messages, tools, reasoning_effort,
   * response_format, temperature, max_tokens, stop, seed, ...). Yields reasoning / content /
   * tool-call events, token counts, and one final `done` event with the parsed output and usage.
   */
  chat(request: Record<string, unknown>, opts: ChatOptions = {}): AsyncGenerator<ChatEvent> {
    const prompt = this.format.renderChatCompletion(request);
    const room = this.engine.maxModelLen - prompt.ids.length;
    if (room < 1) throw new InputError(`messages: the prompt has ${prompt.ids.length} tokens, more than the context allows (${this.engine.maxModelLen})`);
    const sampling = samplingFromRequest(request, { defaultMaxTokens: Math.min(4096, room), maxTokensCap: room });
    const constraint = responseFormat(request.response_format);
    return generateChat(this.engine, this.format, prompt, {
      sampling, stop: parseStop(request.stop), constraint: prompt.constraint ?? (constraint && this.gated(constraint, prompt)), signal: opts.signal,
    });
  }

  /** Chat and wait for the whole answer. */
  async chatOnce(request: Record<string, unknown>, opts: ChatOptions = {}) {
    let done: Extract<ChatEvent, { type: 'done' }> | undefined;
    for await (const e of this.chat(request, opts)) if (e.type === 'done') done = e;
    return done!;
  }

  /** Plain text completion of a prompt (text or token ids). */
  complete(prompt: string | number[], sampling: Partial<SamplingParams> = {}, opts: ChatOptions & { stop?: string[] } = {}): AsyncGenerator<TextStreamEvent> {
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt) : prompt;
    return generateText(this.engine, this.tokenizer, ids, { sampling: { ...DEFAULT_SAMPLING, ...sampling }, stop: opts.stop, signal: opts.signal });
  }

  /** A response-format constraint starts where the format's answer starts (after reasoning). */
  private gated<T extends object>(c: T, prompt: RenderedPrompt): T {
    const gate = this.format.constrainedContentGate?.(prompt);
    return gate && gate.length > 0 ? { ...c, gate } : c;
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}

export type { OutputEvent };
