/** What every route handler needs. */
import type { ChatFormat } from '../chat/chat-format.js';
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
