/**
 * Chat Completions request → harmony messages (the prompt before `<|start|>assistant`).
 *
 * - system/developer messages before the first other message → developer `# Instructions`
 *   (joined by a blank line); later ones → a developer message at their place
 * - user → user; assistant → `reasoning_content` (or `reasoning`) as analysis, content as final
 *   (as a commentary preamble when the message also calls tools), each tool call as
 *   `assistant to=functions.NAME<|channel|>commentary <|constrain|>json … <|call|>`
 * - tool (tool_call_id) → a `functions.NAME to=assistant` commentary message, the name found
 *   from the earlier call with that id
 */
import { InputError } from '../util/errors.js';
import {
  argumentsText, dropCompletedReasoning, functionTool, isObj, preamble, reasoningEffort, reqArray, reqObj, reqString,
  textContent, toolChoice, type Obj, type ToolChoice,
} from './api-common.js';
import { textMessage, type Message, type ToolDescription } from './types.js';

export interface ApiMappingOptions {
  modelIdentity?: string;
  knowledgeCutoff?: string;
  /** YYYY-MM-DD */
  currentDate: string;
}

export interface MappedRequest {
  messages: Message[];
  toolChoice: ToolChoice;
  /** the function tools offered in the prompt */
  tools: ToolDescription[];
}

const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

function chatTools(v: unknown): ToolDescription[] {
  if (v === undefined || v === null) return [];
  const seen = new Set<string>();
  return reqArray(v, 'tools').map((t, i) => {
    const f = `tools[${i}]`;
    const o = reqObj(t, f);
    if (o.type !== 'function') throw new InputError(`${f}.type: unsupported tool type ${JSON.stringify(o.type)} (expected "function")`);
    const fn = reqObj(o.function, `${f}.function`);
    return functionTool(fn.name, fn.description, fn.parameters, `${f}.function`, seen);
  });
}

function optionalText(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  return textContent(v, field, ['text', 'refusal'], (t) => (t === 'refusal' ? 'refusal' : 'text'));
}

export function mapChatCompletion(body: Obj, opts: ApiMappingOptions): MappedRequest {
  const rawMessages = reqArray(body.messages, 'messages');
  if (rawMessages.length === 0) throw new InputError('messages: must contain at least one message');
  const tools = chatTools(body.tools);
  const choice = toolChoice(body.tool_choice, 'tool_choice', new Set(tools.map((t) => t.name)), (o) => (isObj(o.function) ? o.function.name : undefined));
  const effort = reasoningEffort(body.reasoning_effort, 'reasoning_effort');

  const instructions: string[] = [];
  const history: Message[] = [];
  const callNames = new Map<string, string>();
  let leading = true;
  rawMessages.forEach((raw, i) => {
    const f = `messages[${i}]`;
    const m = reqObj(raw, f);
    const role = m.role;
    if (typeof role !== 'string' || !CHAT_ROLES.includes(role)) {
      throw new InputError(`${f}.role: unknown role ${typeof role === 'string' ? JSON.stringify(role) : `(${role === undefined ? 'missing' : typeof role})`}`);
    }
    if (role === 'system' || role === 'developer') {
      const text = textContent(m.content, `${f}.content`, ['text']);
      if (leading) instructions.push(text);
      else history.push({ role: 'developer', name: null, recipient: null, channel: null, contentType: null, content: [{ type: 'developer_content', instructions: text, tools: null }] });
      return;
    }
    leading = false;
    if (role === 'user') {
      history.push(textMessage('user', textContent(m.content, `${f}.content`, ['text'])));
    } else if (role === 'assistant') {
      const reasoningField = m.reasoning_content !== undefined && m.reasoning_content !== null ? 'reasoning_content' : 'reasoning';
      const reasoning = m[reasoningField];
      if (reasoning !== undefined && reasoning !== null) {
        const r = reqString(reasoning, `${f}.${reasoningField}`);
        if (r !== '') history.push(textMessage('assistant', r, { channel: 'analysis' }));
      }
      const content = optionalText(m.content, `${f}.content`);
      const calls = m.tool_calls === undefined || m.tool_calls === null ? [] : reqArray(m.tool_calls, `${f}.tool_calls`);
      if (content !== '') history.push(textMessage('assistant', content, { channel: calls.length > 0 ? 'commentary' : 'final' }));
      calls.forEach((c, j) => {
        const cf = `${f}.tool_calls[${j}]`;
        const call = reqObj(c, cf);
        const id = call.id;
        if (typeof id !== 'string' || id === '') throw new InputError(`${cf}.id: a tool call needs an id (string)`);
        if (call.type !== undefined && call.type !== 'function') throw new InputError(`${cf}.type: unsupported tool call type ${JSON.stringify(call.type)}`);
        const fn = reqObj(call.function, `${cf}.function`);
        const name = reqString(fn.name, `${cf}.function.name`);
        if (name === '') throw new InputError(`${cf}.function.name: must not be empty`);
        callNames.set(id, name);
        history.push(textMessage('assistant', argumentsText(fn.arguments, `${cf}.function.arguments`), {
          channel: 'commentary', recipient: `functions.${name}`, contentType: '<|constrain|>json',
        }));
      });
    } else {
      const id = reqString(m.tool_call_id, `${f}.tool_call_id`);
      const name = callNames.get(id);
      if (name === undefined) throw new InputError(`${f}.tool_call_id: unknown tool call id ${JSON.stringify(id)} (no earlier assistant tool call has it)`);
      history.push(textMessage('tool', textContent(m.content, `${f}.content`, ['text']), {
        name: `functions.${name}`, recipient: 'assistant', channel: 'commentary',
      }));
    }
  });

  const offered = choice.mode === 'none' ? [] : tools;
  return {
    messages: [
      ...preamble({ ...opts, effort, instructions: instructions.length > 0 ? instructions.join('\n\n') : null, tools: offered }),
      ...dropCompletedReasoning(history),
    ],
    toolChoice: choice,
    tools: offered,
  };
}
