/**
 * The OpenAI-compatible HTTP server (fastify). Routes are thin: they validate, render the prompt
 * through the model's ChatFormat, stream the engine's tokens back, and map every failure to an
 * OpenAI-style error body. The engine runs elsewhere (a worker thread), so this loop only does I/O.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { ChatFormat } from '../chat/chat-format.js';
import type { EngineClient } from '../engine/client.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { chatCompletions } from './chat-completions.js';
import { completions } from './completions.js';
import type { ServerContext } from './context.js';
import { errorBody, toHttp } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { responses } from './responses.js';

export interface ServerOptions {
  engine: EngineClient;
  tokenizer: Tokenizer;
  format: ChatFormat;
  modelName: string;
  apiKey?: string;
  /** default max tokens when a request gives none */
  defaultMaxTokens?: number;
  logger?: boolean;
}

export function buildServer(o: ServerOptions): FastifyInstance {
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: 64 * 1024 * 1024 });
  const metrics = new ServerMetrics(o.engine);
  const ctx: ServerContext = {
    engine: o.engine, tokenizer: o.tokenizer, format: o.format, metrics,
    limits: { modelName: o.modelName, maxModelLen: o.engine.maxModelLen, defaultMaxTokens: o.defaultMaxTokens ?? 4096 },
  };

  app.addHook('onRequest', async (req, reply) => {
    if (!o.apiKey || req.url === '/health') return;
    const h = req.headers.authorization ?? '';
    if (h !== `Bearer ${o.apiKey}`) {
      await reply.code(401).send(errorBody(h ? 'Incorrect API key provided' : 'Missing API key: send "Authorization: Bearer <key>"', 'invalid_request_error', 'invalid_api_key'));
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = toHttp(err);
    if (reply.raw.headersSent) {
      reply.raw.end();
      return;
    }
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(`no route ${req.method} ${req.url}`, 'invalid_request_error', 'not_found'));
  });

  const route = (h: (c: ServerContext, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>) =>
    (req: FastifyRequest, reply: FastifyReply) => h(ctx, req, reply);

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: o.modelName, object: 'model', created: 0, owned_by: 'tessera', max_model_len: ctx.limits.maxModelLen }],
  }));
  app.get('/v1/models/:id', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (id !== o.modelName) return reply.code(404).send(errorBody(`The model \`${id}\` does not exist`, 'invalid_request_error', 'model_not_found', 'model'));
    return { id: o.modelName, object: 'model', created: 0, owned_by: 'tessera' };
  });
  app.post('/v1/chat/completions', route(chatCompletions));
  app.post('/v1/completions', route(completions));
  app.post('/v1/responses', route(responses));
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return app;
}
