/**
 * OpenAI request bodies (Chat Completions and Responses) → the plain message list that Hugging
 * Face chat templates take (`role`, `content`, `reasoning_content`, `tool_calls`, `tool_call_id`),
 * validated with field-named errors. Harmony has its own mapping (src/harmony/api-*.ts); this one
 * serves template-driven families such as Nemotron.
 */
import {
  argumentsText, describe, functionTool, isObj, optString, reasoningEffort, reqArray, reqObj, reqString, textContent,
  toolChoice, type Obj, type ToolChoice,
} from '../harmony/api-common.js';
import { InputError } from '../util/errors.js';
import type { ReasoningEffort } from './chat-format.js';

export interface TemplateToolCall {
  id: string;
  type: 'function';
  /** arguments as an object where they parse to one (templates iterate over them), else the text */
  function: { name: string; arguments: Obj | string };
}

export interface TemplateMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  reasoning_content?: string;
  tool_calls?: TemplateToolCall[];
  tool_call_id?: string;
  /** the function a tool result answers */
  name?: string;
}

export interface TemplateTool {
  type: 'function';
  function: { name: string; description: string; parameters: Obj };
}

export interface TemplateRequest {
  messages: TemplateMessage[];
  /** the tools offered in the prompt (none when tool_choice is "none") */
  tools: TemplateTool[];
  toolChoice: ToolChoice;
  effort: ReasoningEffort;
  /** extra template variables from `chat_template_kwargs` (e.g. enable_thinking) */
  kwargs: Obj;
}

function templateTool(t: ReturnType<typeof functionTool>): TemplateTool {
  return { type: 'function', function: { name: t.name, description: t.description, parameters: (t.parameters ?? { type: 'object', properties: {} }) as Obj } };
}

function toolCall(id: unknown, name: unknown, args: unknown, f: { id: string; name: string; args: string }): TemplateToolCall {
  if (typeof id !== 'string' || id === '') throw new InputError(`${f.id}: a tool call needs an id (string)`);
  const n = reqString(name, f.name);
  if (n === '') throw new InputError(`${f.name}: must not be empty`);
  const text = argumentsText(args, f.args);
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  return { id, type: 'function', function: { name: n, arguments: isObj(parsed) ? parsed : text } };
}

function kwargs(v: unknown): Obj {
  if (v === undefined || v === null) return {};
  return reqObj(v, 'chat_template_kwargs');
}

const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

export function chatCompletionToTemplate(body: Obj): TemplateRequest {
  const raw = reqArray(body.messages, 'messages');
  if (raw.length === 0) throw new InputError('messages: must contain at least one message');
  const seen = new Set<string>();
  const tools = body.tools === undefined || body.tools === null ? [] : reqArray(body.tools, 'tools').map((t, i) => {
    const f = `tools[${i}]`;
    const o = reqObj(t, f);
    if (o.type !== 'function') throw new InputError(`${f}.type: unsupported tool type ${JSON.stringify(o.type)} (expected "function")`);
    const fn = reqObj(o.function, `${f}.function`);
    return templateTool(functionTool(fn.name, fn.description, fn.parameters, `${f}.function`, seen));
  });
  const choice = toolChoice(body.tool_choice, 'tool_choice', seen, (o) => (isObj(o.function) ? o.function.name : undefined));
  const effort = reasoningEffort(body.reasoning_effort, 'reasoning_effort');
  const callNames = new Map<string, string>();
  const messages = raw.map((r, i): TemplateMessage => {
    const f = `messages[${i}]`;
    const m = reqObj(r, f);
    const role = m.role;
    if (typeof role !== 'string' || !CHAT_ROLES.includes(role)) {
      throw new InputError(`${f}.role: unknown role ${typeof role === 'string' ? JSON.stringify(role) : `(${role === undefined ? 'missing' : typeof role})`}`);
    }
    if (role === 'system' || role === 'developer') return { role: 'system', content: textContent(m.content, `${f}.content`, ['text']) };
    if (role === 'user') return { role: 'user', content: textContent(m.content, `${f}.content`, ['text']) };
    if (role === 'tool') {
      const id = reqString(m.tool_call_id, `${f}.tool_call_id`);
      const name = callNames.get(id);
      if (name === undefined) throw new InputError(`${f}.tool_call_id: unknown tool call id ${JSON.stringify(id)} (no earlier assistant tool call has it)`);
      return { role: 'tool', content: textContent(m.content, `${f}.content`, ['text']), tool_call_id: id, name };
    }
    const out: TemplateMessage = {
      role: 'assistant',
      content: m.content === undefined || m.content === null ? '' : textContent(m.content, `${f}.content`, ['text', 'refusal'], (t) => (t === 'refusal' ? 'refusal' : 'text')),
    };
    const rf = m.reasoning_content !== undefined && m.reasoning_content !== null ? 'reasoning_content' : 'reasoning';
    const reasoning = optString(m[rf], `${f}.${rf}`);
    if (reasoning !== null && reasoning !== '') out.reasoning_content = reasoning;
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      out.tool_calls = reqArray(m.tool_calls, `${f}.tool_calls`).map((c, j) => {
        const cf = `${f}.tool_calls[${j}]`;
        const call = reqObj(c, cf);
        if (call.type !== undefined && call.type !== 'function') throw new InputError(`${cf}.type: unsupported tool call type ${JSON.stringify(call.type)}`);
        const fn = reqObj(call.function, `${cf}.function`);
        const tc = toolCall(call.id, fn.name, fn.arguments, { id: `${cf}.id`, name: `${cf}.function.name`, args: `${cf}.function.arguments` });
        callNames.set(tc.id, tc.function.name);
        return tc;
      });
    }
    return out;
  });
  return { messages, tools: choice.mode === 'none' ? [] : tools, toolChoice: choice, effort, kwargs: kwargs(body.chat_template_kwargs) };
}

const TEXT_PARTS = ['input_text', 'output_text', 'text', 'refusal'];
const textKey = (t: string) => (t === 'refusal' ? 'refusal' : 'text');

/** the chain of thought of a reasoning item: its `content` texts, else its summary */
function reasoningText(item: Obj, f: string): string {
  const parts = item.content !== undefined && item.content !== null ? reqArray(item.content, `${f}.content`) : [];
  const key = parts.length > 0 ? 'content' : 'summary';
  const list = parts.length > 0 ? parts : item.summary === undefined || item.summary === null ? [] : reqArray(item.summary, `${f}.summary`);
  return list.map((p, j) => reqString(reqObj(p, `${f}.${key}[${j}]`).text, `${f}.${key}[${j}].text`)).join(key === 'summary' ? '\n\n' : '');
}

export function responsesToTemplate(body: Obj): TemplateRequest {
  const seen = new Set<string>();
  const tools = body.tools === undefined || body.tools === null ? [] : reqArray(body.tools, 'tools').map((t, i) => {
    const f = `tools[${i}]`;
    const o = reqObj(t, f);
    if (o.type !== 'function') throw new InputError(`${f}.type: unsupported tool type ${JSON.stringify(o.type)} (expected "function")`);
    return templateTool(functionTool(o.name, o.description, o.parameters, f, seen));
  });
  const choice = toolChoice(body.tool_choice, 'tool_choice', seen, (o) => o.name);
  const reasoning = body.reasoning === undefined || body.reasoning === null ? {} : reqObj(body.reasoning, 'reasoning');
  const effort = reasoningEffort(reasoning.effort, 'reasoning.effort');
  const messages: TemplateMessage[] = [];
  const instructions = optString(body.instructions, 'instructions');
  if (instructions !== null) messages.push({ role: 'system', content: instructions });

  let items: unknown[];
  if (typeof body.input === 'string') items = [{ type: 'message', role: 'user', content: body.input }];
  else if (Array.isArray(body.input)) items = body.input;
  else throw new InputError(`input: expected a string or an array of items, got ${body.input === undefined ? 'nothing' : describe(body.input)}`);

  const callNames = new Map<string, string>();
  /** reasoning and calls attach to the assistant turn they belong to */
  let assistant: TemplateMessage | null = null;
  const openAssistant = (): TemplateMessage => {
    if (!assistant) {
      assistant = { role: 'assistant', content: '' };
      messages.push(assistant);
    }
    return assistant;
  };
  items.forEach((raw, i) => {
    const f = `input[${i}]`;
    const item = reqObj(raw, f);
    const type = item.type ?? (item.role !== undefined ? 'message' : undefined);
    switch (type) {
      case 'message': {
        const role = item.role;
        if (role !== 'user' && role !== 'assistant' && role !== 'system' && role !== 'developer') {
          throw new InputError(`${f}.role: unknown role ${typeof role === 'string' ? JSON.stringify(role) : `(${role === undefined ? 'missing' : typeof role})`}`);
        }
        const text = textContent(item.content, `${f}.content`, TEXT_PARTS, textKey);
        if (role === 'assistant') {
          const a = assistant && !assistant.tool_calls ? assistant : openAssistant();
          a.content += text;
        } else {
          assistant = null;
          messages.push({ role: role === 'user' ? 'user' : 'system', content: text });
        }
        return;
      }
      case 'reasoning': {
        const a = openAssistant();
        const text = reasoningText(item, f);
        if (text !== '') a.reasoning_content = (a.reasoning_content ?? '') + text;
        return;
      }
      case 'function_call': {
        const tc = toolCall(item.call_id, item.name, item.arguments, { id: `${f}.call_id`, name: `${f}.name`, args: `${f}.arguments` });
        callNames.set(tc.id, tc.function.name);
        (openAssistant().tool_calls ??= []).push(tc);
        return;
      }
      case 'function_call_output': {
        const id = reqString(item.call_id, `${f}.call_id`);
        const name = callNames.get(id);
        if (name === undefined) throw new InputError(`${f}.call_id: unknown call id ${JSON.stringify(id)} (no earlier function_call has it)`);
        assistant = null;
        messages.push({ role: 'tool', content: textContent(item.output, `${f}.output`, TEXT_PARTS, textKey), tool_call_id: id, name });
        return;
      }
      default:
        throw new InputError(`${f}.type: unsupported input item type ${JSON.stringify(type)}`);
    }
  });
  if (messages.length === 0) throw new InputError('input: must contain at least one item');
  return { messages, tools: choice.mode === 'none' ? [] : tools, toolChoice: choice, effort, kwargs: kwargs(body.chat_template_kwargs) };
}
