/**
 * The harmony data model (openai/harmony src/chat.rs): messages with an author, optional
 * recipient/channel/content type, and ordered content parts (text, system or developer content).
 */

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';
export const ROLES: readonly Role[] = ['user', 'assistant', 'system', 'developer', 'tool'];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export type ReasoningEffort = 'low' | 'medium' | 'high';

/** One function/tool of a namespace; `parameters` is a JSON schema object kept in key order. */
export interface ToolDescription {
  name: string;
  description: string;
  parameters: unknown | null;
}

export interface ToolNamespace {
  name: string;
  description: string | null;
  tools: ToolDescription[];
}

export interface ChannelConfig {
  validChannels: string[];
  channelRequired: boolean;
}

export interface TextPart {
  type: 'text';
  text: string;
}

export interface SystemContent {
  type: 'system_content';
  modelIdentity: string | null;
  reasoningEffort: ReasoningEffort | null;
  knowledgeCutoff: string | null;
  conversationStartDate: string | null;
  channelConfig: ChannelConfig | null;
  /** in insertion order; rendering sorts by name and a later namespace replaces an earlier one */
  tools: ToolNamespace[] | null;
}

export interface DeveloperContent {
  type: 'developer_content';
  instructions: string | null;
  tools: ToolNamespace[] | null;
}

export type ContentPart = TextPart | SystemContent | DeveloperContent;

export interface Message {
  role: Role;
  /** author name; the whole header for role `tool` (e.g. `functions.get_weather`) */
  name: string | null;
  recipient: string | null;
  channel: string | null;
  contentType: string | null;
  content: ContentPart[];
}

export function textMessage(role: Role, text: string, fields: Partial<Omit<Message, 'role' | 'content'>> = {}): Message {
  return {
    role,
    name: fields.name ?? null,
    recipient: fields.recipient ?? null,
    channel: fields.channel ?? null,
    contentType: fields.contentType ?? null,
    content: [{ type: 'text', text }],
  };
}

/** The concatenated text parts of a message (parsed messages have exactly one). */
export function messageText(m: Message): string {
  return m.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** Defaults of the reference's SystemContent.new() (FORMAT.md §5.1). */
export const DEFAULT_MODEL_IDENTITY = 'You are ChatGPT, a large language model trained by OpenAI.';
export const DEFAULT_KNOWLEDGE_CUTOFF = '2024-06';
export const DEFAULT_CHANNELS: readonly string[] = ['analysis', 'commentary', 'final'];

export function defaultSystemContent(): SystemContent {
  return {
    type: 'system_content',
    modelIdentity: DEFAULT_MODEL_IDENTITY,
    reasoningEffort: 'medium',
    knowledgeCutoff: DEFAULT_KNOWLEDGE_CUTOFF,
    conversationStartDate: null,
    channelConfig: { validChannels: [...DEFAULT_CHANNELS], channelRequired: true },
    tools: null,
  };
}
