/**
 * Shared pieces of the OpenAI API → harmony mapping: request-field validation (errors name the
 * field, e.g. `messages[2].role: unknown role "foo"`), function-tool validation, the system and
 * developer messages, and the history rule for chain of thought.
 */
import { Ajv } from 'ajv';
import { InputError } from '../util/errors.js';
import {
  DEFAULT_CHANNELS, DEFAULT_KNOWLEDGE_CUTOFF, DEFAULT_MODEL_IDENTITY,
  type Message, type ReasoningEffort, type ToolDescription,
} from './types.js';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function reqObj(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new InputError(`${field}: expected an object, got ${describe(v)}`);
  return v;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `a ${typeof v}`;
}

export function reqString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new InputError(`${field}: expected a string, got ${describe(v)}`);
  return v;
}

export function optString(v: unknown, field: string): string | null {
  return v === undefined || v === null ? null : reqString(v, field);
}

export function reqArray(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw new InputError(`${field}: expected an array, got ${describe(v)}`);
  return v;
}

/**
 * Text content: a string, or an array of text parts. `partTypes` are the part types that carry
 * text (`text` for Chat Completions; `input_text`/`output_text` for Responses).
 */
export function textContent(v: unknown, field: string, partTypes: readonly string[], textKeyOf: (type: string) => string = () => 'text'): string {
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw new InputError(`${field}: expected a string or an array of text parts, got ${describe(v)}`);
  return v.map((p, i) => {
    const f = `${field}[${i}]`;
    const part = reqObj(p, f);
    const type = part.type;
    if (typeof type !== 'string' || !partTypes.includes(type)) {
      throw new InputError(`${f}.type: unsupported content part type ${JSON.stringify(type)} (expected ${partTypes.map((t) => `"${t}"`).join(' or ')})`);
    }
    const key = textKeyOf(type);
    return reqString(part[key], `${f}.${key}`);
  }).join('');
}

const EFFORTS: readonly ReasoningEffort[] = ['low', 'medium', 'high'];

export function reasoningEffort(v: unknown, field: string): ReasoningEffort {
  if (v === undefined || v === null) return 'medium';
  if (typeof v !== 'string' || !(EFFORTS as readonly string[]).includes(v)) {
    throw new InputError(`${field}: must be one of ${EFFORTS.join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v) : describe(v)}`);
  }
  return v as ReasoningEffort;
}

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

let ajv: Ajv | null = null;

/** a function's `parameters`: a JSON object schema that is valid JSON Schema (draft-07 meta-schema) */
export function validateParameters(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new InputError(`${field}: expected a JSON schema object, got ${describe(v)}`);
  if (v.type !== undefined && v.type !== 'object') {
    throw new InputError(`${field}.type: function parameters must be a schema of type "object", got ${JSON.stringify(v.type)}`);
  }
  ajv ??= new Ajv({ strict: false, validateSchema: true, allErrors: false });
  const { $schema: _ignored, ...schema } = v;
  let ok: boolean;
  try {
    ok = ajv.validateSchema(schema) as boolean;
  } catch (e) {
    throw new InputError(`${field}: invalid JSON schema: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!ok) {
    const err = ajv.errors?.[0];
    const at = err?.instancePath ? err.instancePath.split('/').slice(1).map((k) => (/^\d+$/.test(k) ? `[${k}]` : `.${k.replace(/~1/g, '/').replace(/~0/g, '~')}`)).join('') : '';
    throw new InputError(`${field}${at}: invalid JSON schema: ${err?.message ?? 'rejected by the meta-schema'}`);
  }
  return v;
}

/** one function tool → a harmony ToolDescription; names must be unique */
export function functionTool(name: unknown, description: unknown, parameters: unknown, field: string, seen: Set<string>): ToolDescription {
  const n = reqString(name, `${field}.name`);
  if (!FUNCTION_NAME.test(n)) throw new InputError(`${field}.name: ${JSON.stringify(n)} is not a valid function name (letters, digits, _ and -, at most 64)`);
  if (seen.has(n)) throw new InputError(`${field}.name: duplicate function name ${JSON.stringify(n)}`);
  seen.add(n);
  return {
    name: n,
    description: optString(description, `${field}.description`) ?? '',
    parameters: parameters === undefined || parameters === null ? null : validateParameters(parameters, `${field}.parameters`),
  };
}

export type ToolChoice = { mode: 'auto' | 'none' | 'required' } | { mode: 'function'; name: string };

/**
 * tool_choice. Rendering effect: `none` leaves the tools out of the prompt (the model is not
 * offered them); `auto`, `required` and a named function render every tool (forcing a call is
 * a decoding matter, not a prompt one).
 */
export function toolChoice(v: unknown, field: string, toolNames: ReadonlySet<string>, nameOf: (o: Obj) => unknown): ToolChoice {
  if (v === undefined || v === null) return { mode: 'auto' };
  if (v === 'required' && toolNames.size === 0) throw new InputError(`${field}: "required" needs at least one tool in tools`);
  if (v === 'auto' || v === 'none' || v === 'required') return { mode: v };
  if (typeof v === 'string') throw new InputError(`${field}: must be "auto", "none", "required" or a function, got ${JSON.stringify(v)}`);
  const o = reqObj(v, field);
  if (o.type !== 'function') throw new InputError(`${field}.type: expected "function", got ${JSON.stringify(o.type)}`);
  const name = nameOf(o);
  if (typeof name !== 'string') throw new InputError(`${field}: the function name is missing`);
  if (!toolNames.has(name)) throw new InputError(`${field}: function ${JSON.stringify(name)} is not among the tools`);
  return { mode: 'function', name };
}

export interface PreambleOptions {
  modelIdentity?: string;
  knowledgeCutoff?: string;
  /** YYYY-MM-DD */
  currentDate: string;
  effort: ReasoningEffort;
  instructions: string | null;
  tools: ToolDescription[];
}

/**
 * The harmony system message (identity, dates, effort, channels) and, when there are
 * instructions or tools, the developer message: the API's system/developer text goes to the
 * developer message, as OpenAI's gpt-oss guidance does.
 */
export function preamble(o: PreambleOptions): Message[] {
  const out: Message[] = [{
    role: 'system', name: null, recipient: null, channel: null, contentType: null,
    content: [{
      type: 'system_content',
      modelIdentity: o.modelIdentity ?? DEFAULT_MODEL_IDENTITY,
      reasoningEffort: o.effort,
      knowledgeCutoff: o.knowledgeCutoff ?? DEFAULT_KNOWLEDGE_CUTOFF,
      conversationStartDate: o.currentDate,
      channelConfig: { validChannels: [...DEFAULT_CHANNELS], channelRequired: true },
      tools: null,
    }],
  }];
  if (o.instructions !== null || o.tools.length > 0) {
    out.push({
      role: 'developer', name: null, recipient: null, channel: null, contentType: null,
      content: [{
        type: 'developer_content',
        instructions: o.instructions,
        tools: o.tools.length > 0 ? [{ name: 'functions', description: null, tools: o.tools }] : null,
      }],
    });
  }
  return out;
}

/**
 * Chain of thought across turns: the reasoning of every turn that has ended in a final answer
 * is dropped (analysis before the last assistant `final` message); the reasoning of the turn in
 * progress (tool calls after the last final answer) is kept. Rendering then applies harmony's
 * own auto_drop_analysis rule on top, which this already satisfies.
 */
export function dropCompletedReasoning(messages: readonly Message[]): Message[] {
  let lastFinal = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'assistant' && messages[i].channel === 'final') {
      lastFinal = i;
      break;
    }
  }
  return messages.filter((m, i) => !(i < lastFinal && m.channel === 'analysis'));
}

export function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** tool-call arguments: the JSON text as sent; an object is accepted and serialised */
export function argumentsText(v: unknown, field: string): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) return '';
  if (isObj(v)) return JSON.stringify(v);
  throw new InputError(`${field}: expected a JSON string, got ${describe(v)}`);
}
