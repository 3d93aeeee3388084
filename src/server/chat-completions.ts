/** POST /v1/chat/completions, streaming and not; `n` choices run as concurrent sequences. */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { generateChat, type ChatStreamEvent, type TokenInfo } from '../api/generation.js';
import type { ParsedOutput } from '../chat/chat-format.js';
import type { Usage } from '../engine/engine.js';
import { HttpError, toHttp } from './errors.js';
import { asBody, bool, checkModel, includeUsage, intIn, responseFormat, sampling, stops } from './request.js';
import { SseStream } from './sse.js';
import { gated, nowSeconds, type ServerContext } from './context.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** One entry of `logprobs.content` (token text, its bytes and the top alternatives). */
export function logprobEntry(t: TokenInfo, tok: Tokenizer) {
  const one = (id: number, text: string, logprob: number) => ({ token: text, logprob, bytes: [...(tok.tokenBytes(id) ?? Buffer.from(text))] });
  return { ...one(t.id, t.text, t.logprob ?? 0), top_logprobs: (t.top ?? []).map((a) => one(a.id, tok.decode([a.id]), a.logprob)) };
}

export function usageBody(u: Usage) {
  return {
    prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

function sumUsage(us: Usage[]): Usage {
  return us.reduce((a, u) => ({ promptTokens: u.promptTokens, completionTokens: a.completionTokens + u.completionTokens, cachedTokens: Math.max(a.cachedTokens, u.cachedTokens) }), { promptTokens: 0, completionTokens: 0, cachedTokens: 0 });
}

function messageBody(o: ParsedOutput) {
  const m: Record<string, unknown> = { role: 'assistant', content: o.content.length > 0 || o.toolCalls.length === 0 ? o.content : null };
  if (o.reasoning) m.reasoning_content = o.reasoning;
  if (o.toolCalls.length > 0) {
    m.tool_calls = o.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
  return m;
}

export async function chatCompletions(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = asBody(request.body);
  checkModel(body, ctx.limits);
  const stream = bool(body, 'stream');
  const n = intIn(body, 'n', 1, 16, 1);
  const withUsage = includeUsage(body);
  const wanted = responseFormat(body.response_format);
  const stop = stops(body);
  const prompt = ctx.format.renderChatCompletion(body);
  const constraint = prompt.constraint ?? gated(ctx, wanted, prompt);
  const base = sampling(body, ctx.limits, prompt.ids.length);
  ctx.metrics.promptTokens.inc(prompt.ids.length * n);
  const id = `chatcmpl-${randomUUID()}`;
  const created = nowSeconds();
  const model = ctx.limits.modelName;
  const ac = new AbortController();
  const runs = Array.from({ length: n }, (_, i) => {
    const s = { ...base, seed: base.seed === null ? null : base.seed + i };
    return generateChat(ctx.engine, ctx.format, prompt, { sampling: s, stop, constraint, signal: ac.signal });
  });

  if (!stream) {
    reply.raw.on('close', () => { if (!reply.raw.writableEnded) ac.abort(); }); // the client went away
    const results = await Promise.all(runs.map(async (it) => {
      const timer = ctx.metrics.timer();
      const lps: TokenInfo[] = [];
      let done: Extract<ChatStreamEvent, { type: 'done' }> | undefined;
      for await (const e of it) {
        if (e.type === 'tokens') {
          timer.token(e.count);
          lps.push(...e.logprobs);
        }
        if (e.type === 'done') done = e;
      }
      return { done: done!, lps };
    }));
    const failed = results.find((r) => r.done.finishReason === 'error');
    ctx.metrics.requests.inc({ endpoint: 'chat', status: failed ? 'error' : 'ok' });
    if (failed) throw new HttpError(500, `generation failed: ${failed.done.error}`, 'server_error');
    return {
      id, object: 'chat.completion', created, model,
      choices: results.map((r, i) => ({
        index: i, message: messageBody(r.done.output),
        logprobs: base.logprobs ? { content: r.lps.map((t) => logprobEntry(t, ctx.tokenizer)) } : null,
        finish_reason: r.done.finishReason === 'abort' ? 'stop' : r.done.finishReason,
      })),
      usage: usageBody(sumUsage(results.map((r) => r.done.usage))),
    };
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => ac.abort());
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sse.send({ id, object: 'chat.completion.chunk', created, model, choices, ...extra, ...(withUsage ? { usage: null } : {}) });
  const usages: Usage[] = [];
  let anyError: string | undefined;
  await Promise.all(runs.map(async (it, index) => {
    const timer = ctx.metrics.timer();
    chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    try {
      for await (const e of it) {
        switch (e.type) {
          case 'reasoning':
            chunk([{ index, delta: { reasoning_content: e.delta }, logprobs: null, finish_reason: null }]);
            break;
          case 'content':
            chunk([{ index, delta: { content: e.delta }, logprobs: null, finish_reason: null }]);
            break;
          case 'tool_call_start':
            chunk([{ index, delta: { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] }, logprobs: null, finish_reason: null }]);
            break;
          case 'tool_call_arguments':
            chunk([{ index, delta: { tool_calls: [{ index: e.index, function: { arguments: e.delta } }] }, logprobs: null, finish_reason: null }]);
            break;
          case 'tool_call_end':
            break;
          case 'tokens':
            timer.token(e.count);
            if (base.logprobs) chunk([{ index, delta: {}, logprobs: { content: e.logprobs.map((t) => logprobEntry(t, ctx.tokenizer)) }, finish_reason: null }]);
            break;
          case 'done':
            usages.push(e.usage);
            if (e.finishReason === 'error') anyError = e.error;
            chunk([{ index, delta: {}, logprobs: null, finish_reason: e.finishReason === 'abort' || e.finishReason === 'error' ? 'stop' : e.finishReason }]);
            break;
        }
      }
    } catch (e) {
      anyError = (e as Error).message;
    }
  }));
  ctx.metrics.requests.inc({ endpoint: 'chat', status: ac.signal.aborted ? 'cancelled' : anyError ? 'error' : 'ok' });
  if (anyError) sse.send({ error: toHttp(new HttpError(500, `generation failed: ${anyError}`, 'server_error')).body.error });
  if (withUsage) sse.send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: usageBody(sumUsage(usages)) });
  sse.send('[DONE]');
  sse.end();
  return reply;
}
