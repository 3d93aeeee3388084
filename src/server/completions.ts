/** POST /v1/completions: raw text (or token id) prompts, no chat format. */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { generateText, type TextStreamEvent, type TokenInfo } from '../api/generation.js';
import type { Usage } from '../engine/engine.js';
import { HttpError } from './errors.js';
import { asBody, bool, checkModel, includeUsage, intIn, responseFormat, sampling, stops } from './request.js';
import { SseStream } from './sse.js';
import { nowSeconds, type ServerContext } from './context.js';
import { usageBody } from './chat-completions.js';

function promptIds(ctx: ServerContext, p: unknown): number[] {
  if (typeof p === 'string') {
    if (p.length === 0) throw new HttpError(400, 'prompt: must not be empty', 'invalid_request_error', null, 'prompt');
    return ctx.tokenizer.encode(p);
  }
  if (Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x))) {
    for (const [i, x] of (p as number[]).entries()) {
      if (x < 0 || x >= ctx.engine.info.vocabSize) throw new HttpError(400, `prompt[${i}]: token id ${x} is outside the vocabulary`, 'invalid_request_error', null, 'prompt');
    }
    return p as number[];
  }
  if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') return promptIds(ctx, p[0]);
  throw new HttpError(400, 'prompt: expected a non-empty string or an array of token ids (one prompt per request)', 'invalid_request_error', null, 'prompt');
}

function logprobsBody(tokens: TokenInfo[], offset0: number, ctx: ServerContext) {
  let off = offset0;
  const text_offset: number[] = [];
  for (const t of tokens) {
    text_offset.push(off);
    off += t.text.length;
  }
  return {
    tokens: tokens.map((t) => t.text),
    token_logprobs: tokens.map((t) => t.logprob ?? 0),
    top_logprobs: tokens.map((t) => Object.fromEntries((t.top ?? []).map((a) => [ctx.tokenizer.decode([a.id]), a.logprob]))),
    text_offset,
  };
}

export async function completions(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = asBody(request.body);
  checkModel(body, ctx.limits);
  const stream = bool(body, 'stream');
  const echo = bool(body, 'echo');
  const n = intIn(body, 'n', 1, 16, 1);
  const withUsage = includeUsage(body);
  const constraint = responseFormat(body.response_format);
  const stop = stops(body);
  const ids = promptIds(ctx, body.prompt);
  const base = sampling(body, ctx.limits, ids.length);
  ctx.metrics.promptTokens.inc(ids.length * n);
  const echoText = echo ? ctx.tokenizer.decode(ids) : '';
  const id = `cmpl-${randomUUID()}`;
  const created = nowSeconds();
  const model = ctx.limits.modelName;
  const ac = new AbortController();
  const runs = Array.from({ length: n }, (_, i) =>
    generateText(ctx.engine, ctx.tokenizer, ids, { sampling: { ...base, seed: base.seed === null ? null : base.seed + i }, stop, constraint, signal: ac.signal }));
  const sum = (us: Usage[]): Usage => ({ promptTokens: ids.length, completionTokens: us.reduce((a, u) => a + u.completionTokens, 0), cachedTokens: Math.max(0, ...us.map((u) => u.cachedTokens)) });
  const reason = (r: string) => (r === 'abort' || r === 'error' ? 'stop' : r);

  if (!stream) {
    reply.raw.on('close', () => { if (!reply.raw.writableEnded) ac.abort(); }); // the client went away
    const results = await Promise.all(runs.map(async (it) => {
      const timer = ctx.metrics.timer();
      const lps: TokenInfo[] = [];
      let done: Extract<TextStreamEvent, { type: 'done' }> | undefined;
      for await (const e of it) {
        if (e.type === 'text') {
          timer.token(Math.max(1, e.tokens.length));
          lps.push(...e.tokens);
        } else done = e;
      }
      return { done: done!, lps };
    }));
    const failed = results.find((r) => r.done.finishReason === 'error');
    ctx.metrics.requests.inc({ endpoint: 'completions', status: failed ? 'error' : 'ok' });
    if (failed) throw new HttpError(500, `generation failed: ${failed.done.error}`, 'server_error');
    return {
      id, object: 'text_completion', created, model,
      choices: results.map((r, i) => ({
        index: i, text: echoText + r.done.text,
        logprobs: base.logprobs ? logprobsBody(r.lps, echoText.length, ctx) : null,
        finish_reason: reason(r.done.finishReason),
      })),
      usage: usageBody(sum(results.map((r) => r.done.usage))),
    };
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => ac.abort());
  const usages: Usage[] = [];
  await Promise.all(runs.map(async (it, index) => {
    const timer = ctx.metrics.timer();
    let offset = 0;
    if (echo) {
      sse.send({ id, object: 'text_completion', created, model, choices: [{ index, text: echoText, logprobs: null, finish_reason: null }] });
      offset = echoText.length;
    }
    for await (const e of it) {
      if (e.type === 'text') {
        timer.token(Math.max(1, e.tokens.length));
        sse.send({ id, object: 'text_completion', created, model, choices: [{ index, text: e.delta, logprobs: base.logprobs ? logprobsBody(e.tokens, offset, ctx) : null, finish_reason: null }] });
        offset += e.delta.length;
      } else {
        usages.push(e.usage);
        sse.send({ id, object: 'text_completion', created, model, choices: [{ index, text: '', logprobs: null, finish_reason: reason(e.finishReason) }] });
      }
    }
  }));
  ctx.metrics.requests.inc({ endpoint: 'completions', status: ac.signal.aborted ? 'cancelled' : 'ok' });
  if (withUsage) sse.send({ id, object: 'text_completion', created, model, choices: [], usage: usageBody(sum(usages)) });
  sse.send('[DONE]');
  sse.end();
  return reply;
}
