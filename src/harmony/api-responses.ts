/**
 * Responses API request → harmony messages. `instructions` and leading system/developer
 * message items → developer instructions; message items by role (assistant → final channel);
 * `reasoning` items → analysis; `function_call` → a commentary call to functions.NAME;
 * `function_call_output` → a `functions.NAME` tool message (NAME found by call_id).
 */
import { InputError } from '../util/errors.js';
import {
  argumentsText, dropCompletedReasoning, functionTool, optString, preamble, reasoningEffort, reqArray, reqObj, reqString,
  textContent, toolChoice, type Obj,
} from './api-common.js';
import type { ApiMappingOptions, MappedRequest } from './api-chat.js';
import { textMessage, type Message, type ToolDescription } from './types.js';

const TEXT_PARTS = ['input_text', 'output_text', 'text', 'refusal'];
const textKey = (t: string) => (t === 'refusal' ? 'refusal' : 'text');

function responsesTools(v: unknown): ToolDescription[] {
  if (v === undefined || v === null) return [];
  const seen = new Set<string>();
  return reqArray(v, 'tools').map((t, i) => {
    const f = `tools[${i}]`;
    const o = reqObj(t, f);
    if (o.type !== 'function') throw new InputError(`${f}.type: unsupported tool type ${JSON.stringify(o.type)} (expected "function")`);
    return functionTool(o.name, o.description, o.parameters, f, seen);
  });
}

/** the raw chain of thought of a reasoning item: its `content` texts, else its summary */
function reasoningText(item: Obj, f: string): string {
  const parts = item.content !== undefined && item.content !== null ? reqArray(item.content, `${f}.content`) : [];
  const key = parts.length > 0 ? 'content' : 'summary';
  const list = parts.length > 0 ? parts : item.summary === undefined || item.summary === null ? [] : reqArray(item.summary, `${f}.summary`);
  return list.map((p, j) => reqString(reqObj(p, `${f}.${key}[${j}]`).text, `${f}.${key}[${j}].text`)).join(key === 'summary' ? '\n\n' : '');
}

export function mapResponses(body: Obj, opts: ApiMappingOptions): MappedRequest {
  const tools = responsesTools(body.tools);
  const choice = toolChoice(body.tool_choice, 'tool_choice', new Set(tools.map((t) => t.name)), (o) => o.name);
  const reasoning = body.reasoning === undefined || body.reasoning === null ? {} : reqObj(body.reasoning, 'reasoning');
  const effort = reasoningEffort(reasoning.effort, 'reasoning.effort');

  const instructions: string[] = [];
  const top = optString(body.instructions, 'instructions');
  if (top !== null) instructions.push(top);
  const history: Message[] = [];
  const callNames = new Map<string, string>();

  let items: unknown[];
  if (typeof body.input === 'string') items = [{ type: 'message', role: 'user', content: body.input }];
  else if (Array.isArray(body.input)) items = body.input;
  else throw new InputError(`input: expected a string or an array of items, got ${body.input === undefined ? 'nothing' : typeof body.input}`);

  let leading = true;
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
        if (role === 'system' || role === 'developer') {
          if (leading) instructions.push(text);
          else history.push({ role: 'developer', name: null, recipient: null, channel: null, contentType: null, content: [{ type: 'developer_content', instructions: text, tools: null }] });
          return;
        }
        leading = false;
        history.push(role === 'user' ? textMessage('user', text) : textMessage('assistant', text, { channel: 'final' }));
        return;
      }
      case 'reasoning': {
        leading = false;
        const text = reasoningText(item, f);
        if (text !== '') history.push(textMessage('assistant', text, { channel: 'analysis' }));
        return;
      }
      case 'function_call': {
        leading = false;
        const id = item.call_id;
        if (typeof id !== 'string' || id === '') throw new InputError(`${f}.call_id: a function call needs a call_id (string)`);
        const name = reqString(item.name, `${f}.name`);
        if (name === '') throw new InputError(`${f}.name: must not be empty`);
        callNames.set(id, name);
        history.push(textMessage('assistant', argumentsText(item.arguments, `${f}.arguments`), {
          channel: 'commentary', recipient: `functions.${name}`, contentType: '<|constrain|>json',
        }));
        return;
      }
      case 'function_call_output': {
        leading = false;
        const id = reqString(item.call_id, `${f}.call_id`);
        const name = callNames.get(id);
        if (name === undefined) throw new InputError(`${f}.call_id: unknown call id ${JSON.stringify(id)} (no earlier function_call has it)`);
        const output = textContent(item.output, `${f}.output`, TEXT_PARTS, textKey);
        history.push(textMessage('tool', output, { name: `functions.${name}`, recipient: 'assistant', channel: 'commentary' }));
        return;
      }
      default:
        throw new InputError(`${f}.type: unsupported input item type ${JSON.stringify(type)}`);
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
