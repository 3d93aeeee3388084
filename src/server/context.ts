/** What every route handler needs. */
import type { ChatFormat, RenderedPrompt } from '../chat/chat-format.js';
import type { EngineClient } from '../engine/client.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerLimits } from './request.js';

export interface ServerContext {
  engine: EngineClient;
  tokenizer: Tokenizer;
  format: ChatFormat;
  limits: ServerLimits;
  metrics: ServerMetrics;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A response-format constraint starts where the format's answer starts (after reasoning). */
export function gated<T extends object | undefined>(ctx: ServerContext, c: T, prompt: RenderedPrompt): T {
  if (!c) return c;
  const gate = ctx.format.constrainedContentGate?.(prompt);
  return gate && gate.length > 0 ? { ...c, gate } : c;
}
