/** POST /v1/responses: output items (reasoning, message, function_call), streaming events. */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { generateChat, type ChatStreamEvent } from '../api/generation.js';
import type { Usage } from '../engine/engine.js';
import { HttpError } from './errors.js';
import { asBody, bool, checkModel, sampling, textFormat } from './request.js';
import { SseStream } from './sse.js';
import { gated, nowSeconds, type ServerContext } from './context.js';

type Item = Record<string, unknown> & { type: string; id: string };

/** Builds output items from chat events and says which stream events each change makes. */
class ItemBuilder {
  readonly items: Item[] = [];
  private open: Item | null = null;
  private text = '';
  constructor(private readonly emit: (type: string, payload: Record<string, unknown>) => void) {}

  private get index(): number {
    return this.items.length - 1;
  }

  private start(item: Item): void {
    this.close();
    this.items.push(item);
    this.open = item;
    this.text = '';
    this.emit('response.output_item.added', { output_index: this.index, item: { ...item } });
    if (item.type === 'message') {
      this.emit('response.content_part.added', { item_id: item.id, output_index: this.index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
    }
  }

  close(): void {
    const it = this.open;
    if (!it) return;
    const base = { item_id: it.id, output_index: this.index };
    if (it.type === 'reasoning') {
      it.content = [{ type: 'reasoning_text', text: this.text }];
      this.emit('response.reasoning_text.done', { ...base, content_index: 0, text: this.text });
    } else if (it.type === 'message') {
      const part = { type: 'output_text', text: this.text, annotations: [] };
      it.content = [part];
      it.status = 'completed';
      this.emit('response.output_text.done', { ...base, content_index: 0, text: this.text, logprobs: [] });
      this.emit('response.content_part.done', { ...base, content_index: 0, part });
    } else if (it.type === 'function_call') {
      it.arguments = this.text;
      it.status = 'completed';
      this.emit('response.function_call_arguments.done', { ...base, arguments: this.text });
    }
    this.emit('response.output_item.done', { output_index: this.index, item: { ...it } });
    this.open = null;
  }

  event(e: ChatStreamEvent): void {
    switch (e.type) {
      case 'reasoning':
        if (this.open?.type !== 'reasoning') this.start({ type: 'reasoning', id: `rs_${randomUUID()}`, summary: [], content: [] });
        this.text += e.delta;
        this.emit('response.reasoning_text.delta', { item_id: this.open!.id, output_index: this.index, content_index: 0, delta: e.delta });
        break;
      case 'content':
        if (this.open?.type !== 'message') this.start({ type: 'message', id: `msg_${randomUUID()}`, role: 'assistant', status: 'in_progress', content: [] });
        this.text += e.delta;
        this.emit('response.output_text.delta', { item_id: this.open!.id, output_index: this.index, content_index: 0, delta: e.delta, logprobs: [] });
        break;
      case 'tool_call_start':
        this.start({ type: 'function_call', id: `fc_${randomUUID()}`, call_id: e.id, name: e.name, arguments: '', status: 'in_progress' });
        break;
      case 'tool_call_arguments':
        if (this.open?.type !== 'function_call') break;
        this.text += e.delta;
        this.emit('response.function_call_arguments.delta', { item_id: this.open.id, output_index: this.index, delta: e.delta });
        break;
      case 'tool_call_end':
        this.close();
        break;
    }
  }
}

function usageBody(u: Usage, reasoningTokens: number) {
  return {
    input_tokens: u.promptTokens, input_tokens_details: { cached_tokens: u.cachedTokens },
    output_tokens: u.completionTokens, output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: u.promptTokens + u.completionTokens,
  };
}

export async function responses(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = asBody(request.body);
  checkModel(body, ctx.limits);
  if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
    throw new HttpError(400, 'previous_response_id: stored responses are not kept by this server; send the whole conversation in `input`', 'invalid_request_error', null, 'previous_response_id');
  }
  const stream = bool(body, 'stream');
  const wanted = textFormat(body.text);
  const prompt = ctx.format.renderResponses(body);
  const constraint = prompt.constraint ?? gated(ctx, wanted, prompt);
  const s = sampling(body, ctx.limits, prompt.ids.length);
  ctx.metrics.promptTokens.inc(prompt.ids.length);
  const id = `resp_${randomUUID()}`;
  const created_at = nowSeconds();
  const ac = new AbortController();
  let seq = 0;
  let sse: SseStream | null = null;
  const emit = (type: string, payload: Record<string, unknown>) => sse?.send({ type, sequence_number: seq++, ...payload }, type);
  const builder = new ItemBuilder(emit);
  const effort = (body.reasoning as { effort?: unknown } | undefined)?.effort ?? 'medium';
  const shell = (status: string, extra: Record<string, unknown> = {}) => ({
    id, object: 'response', created_at, status, model: ctx.limits.modelName, output: builder.items.map((i) => ({ ...i })),
    instructions: body.instructions ?? null, max_output_tokens: body.max_output_tokens ?? null,
    temperature: s.temperature, top_p: s.topP, tools: body.tools ?? [], tool_choice: body.tool_choice ?? 'auto',
    parallel_tool_calls: body.parallel_tool_calls ?? true, reasoning: { effort, summary: null },
    text: { format: (body.text as { format?: unknown } | undefined)?.format ?? { type: 'text' } },
    error: null, incomplete_details: null, metadata: body.metadata ?? {}, usage: null, ...extra,
  });
  if (stream) {
    reply.hijack();
    sse = new SseStream(reply.raw, () => ac.abort());
    emit('response.created', { response: shell('in_progress') });
    emit('response.in_progress', { response: shell('in_progress') });
  } else {
    reply.raw.on('close', () => { if (!reply.raw.writableEnded) ac.abort(); }); // the client went away
  }
  const timer = ctx.metrics.timer();
  let done: Extract<ChatStreamEvent, { type: 'done' }> | undefined;
  let reasoningTokens = 0;
  let inReasoning = false;
  for await (const e of generateChat(ctx.engine, ctx.format, prompt, { sampling: s, constraint, signal: ac.signal })) {
    if (e.type === 'done') done = e;
    else if (e.type === 'tokens') {
      timer.token(e.count);
      if (inReasoning) reasoningTokens += e.count;
    } else {
      inReasoning = e.type === 'reasoning';
      builder.event(e);
    }
  }
  builder.close();
  const d = done!;
  ctx.metrics.requests.inc({ endpoint: 'responses', status: ac.signal.aborted ? 'cancelled' : d.finishReason === 'error' ? 'error' : 'ok' });
  const status = d.finishReason === 'error' ? 'failed' : d.finishReason === 'length' ? 'incomplete' : 'completed';
  const final = shell(status, {
    usage: usageBody(d.usage, reasoningTokens),
    incomplete_details: d.finishReason === 'length' ? { reason: 'max_output_tokens' } : null,
    error: d.finishReason === 'error' ? { code: 'server_error', message: d.error ?? 'generation failed' } : null,
  });
  if (!sse) {
    if (d.finishReason === 'error') throw new HttpError(500, `generation failed: ${d.error}`, 'server_error');
    return final;
  }
  emit(status === 'completed' ? 'response.completed' : status === 'failed' ? 'response.failed' : 'response.incomplete', { response: final });
  sse.end();
  return reply;
}
