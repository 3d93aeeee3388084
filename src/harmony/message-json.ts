/**
 * Messages as JSON in the shape of the harmony fixtures and the reference's Python dicts
 * (snake_case fields, `null` = absent), both ways, with errors naming the field.
 */
import { InputError } from '../util/errors.js';
import type { ChannelConfig, ContentPart, Message, ReasoningEffort, ToolDescription, ToolNamespace } from './types.js';
import { isRole } from './types.js';

type Obj = Record<string, unknown>;

function obj(v: unknown, where: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${where}: expected an object`);
  return v as Obj;
}

function optStr(o: Obj, key: string, where: string): string | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new InputError(`${where}.${key}: expected a string or null`);
  return v;
}

function arr(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new InputError(`${where}: expected an array`);
  return v;
}

function namespaceFromJson(v: unknown, where: string): ToolNamespace {
  const o = obj(v, where);
  const name = optStr(o, 'name', where);
  if (name === null) throw new InputError(`${where}.name: missing`);
  const tools: ToolDescription[] = arr(o.tools ?? [], `${where}.tools`).map((t, i) => {
    const w = `${where}.tools[${i}]`;
    const to = obj(t, w);
    const tn = optStr(to, 'name', w);
    if (tn === null) throw new InputError(`${w}.name: missing`);
    return { name: tn, description: optStr(to, 'description', w) ?? '', parameters: to.parameters ?? null };
  });
  return { name, description: optStr(o, 'description', where), tools };
}

function toolsFromJson(v: unknown, where: string): ToolNamespace[] | null {
  if (v === undefined || v === null) return null;
  return arr(v, where).map((ns, i) => namespaceFromJson(ns, `${where}[${i}]`));
}

const EFFORTS = ['low', 'medium', 'high'];

function partFromJson(v: unknown, where: string): ContentPart {
  const o = obj(v, where);
  switch (o.type) {
    case 'text': {
      if (typeof o.text !== 'string') throw new InputError(`${where}.text: expected a string`);
      return { type: 'text', text: o.text };
    }
    case 'system_content': {
      const effort = optStr(o, 'reasoning_effort', where);
      if (effort !== null && !EFFORTS.includes(effort.toLowerCase())) throw new InputError(`${where}.reasoning_effort: unknown effort "${effort}"`);
      let channelConfig: ChannelConfig | null = null;
      if (o.channel_config !== undefined && o.channel_config !== null) {
        const cc = obj(o.channel_config, `${where}.channel_config`);
        channelConfig = {
          validChannels: arr(cc.valid_channels ?? [], `${where}.channel_config.valid_channels`).map(String),
          channelRequired: cc.channel_required === true,
        };
      }
      return {
        type: 'system_content',
        modelIdentity: optStr(o, 'model_identity', where),
        reasoningEffort: effort === null ? null : (effort.toLowerCase() as ReasoningEffort),
        knowledgeCutoff: optStr(o, 'knowledge_cutoff', where),
        conversationStartDate: optStr(o, 'conversation_start_date', where),
        channelConfig,
        tools: toolsFromJson(o.tools, `${where}.tools`),
      };
    }
    case 'developer_content':
      return { type: 'developer_content', instructions: optStr(o, 'instructions', where), tools: toolsFromJson(o.tools, `${where}.tools`) };
    default:
      throw new InputError(`${where}.type: unknown content type ${JSON.stringify(o.type)}`);
  }
}

export function messageFromJson(v: unknown, where = 'message'): Message {
  const o = obj(v, where);
  if (!('content' in o)) throw new InputError(`${where}: missing field \`content\` (not a message)`);
  const role = o.role;
  if (typeof role !== 'string' || !isRole(role)) throw new InputError(`${where}.role: unknown role ${JSON.stringify(role)}`);
  const content = typeof o.content === 'string'
    ? [{ type: 'text' as const, text: o.content }]
    : arr(o.content, `${where}.content`).map((p, i) => partFromJson(p, `${where}.content[${i}]`));
  return {
    role,
    name: optStr(o, 'name', where),
    recipient: optStr(o, 'recipient', where),
    channel: optStr(o, 'channel', where),
    contentType: optStr(o, 'content_type', where),
    content,
  };
}

/** a parsed message in the fixtures' shape (content: one text part) */
export function messageToJson(m: Message): Obj {
  return {
    role: m.role,
    name: m.name,
    recipient: m.recipient,
    channel: m.channel,
    content_type: m.contentType,
    content: m.content.map((c) => (c.type === 'text' ? { type: 'text', text: c.text } : { type: c.type })),
  };
}
