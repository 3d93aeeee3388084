/**
 * Parsed model output → OpenAI API objects: reasoning kept apart from content, tool calls with
 * their JSON arguments as generated. For the server (Chat Completions and Responses, whole or
 * streamed); `id` makes item ids.
 */
import type { OutputEvent, ParsedOutput } from '../chat/chat-format.js';

export interface ChatCompletionMessage {
  role: 'assistant';
  content: string | null;
  reasoning_content?: string;
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
}

export function toChatCompletionMessage(p: ParsedOutput): ChatCompletionMessage {
  const m: ChatCompletionMessage = { role: 'assistant', content: p.content === '' && p.toolCalls.length > 0 ? null : p.content };
  if (p.reasoning !== '') m.reasoning_content = p.reasoning;
  if (p.toolCalls.length > 0) {
    m.tool_calls = p.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
  return m;
}

/** `stoppedBy`: why generation ended (a stop token, or the length limit) */
export function chatFinishReason(p: ParsedOutput, stoppedBy: 'stop' | 'length'): 'stop' | 'length' | 'tool_calls' {
  if (p.toolCalls.length > 0 && stoppedBy === 'stop') return 'tool_calls';
  return stoppedBy;
}

/** one streamed event → the `delta` of a chat.completion.chunk choice */
export function chatDelta(e: OutputEvent): Record<string, unknown> | null {
  switch (e.type) {
    case 'reasoning':
      return { reasoning_content: e.delta };
    case 'content':
      return { content: e.delta };
    case 'tool_call_start':
      return { tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }] };
    case 'tool_call_arguments':
      return { tool_calls: [{ index: e.index, function: { arguments: e.delta } }] };
    case 'tool_call_end':
      return null;
  }
}

/** Responses API `output` items, in order: reasoning, function calls, the message */
export function toResponsesOutput(p: ParsedOutput, id: (prefix: string) => string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  if (p.reasoning !== '') {
    out.push({ type: 'reasoning', id: id('rs'), summary: [], content: [{ type: 'reasoning_text', text: p.reasoning }] });
  }
  for (const c of p.toolCalls) {
    out.push({ type: 'function_call', id: id('fc'), call_id: c.id, name: c.name, arguments: c.arguments, status: 'completed' });
  }
  if (p.content !== '' || p.toolCalls.length === 0) {
    out.push({
      type: 'message', id: id('msg'), role: 'assistant', status: 'completed',
      content: [{ type: 'output_text', text: p.content, annotations: [] }],
    });
  }
  return out;
}
