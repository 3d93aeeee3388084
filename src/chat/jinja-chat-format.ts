/**
 * JinjaChatFormat: the ChatFormat of models that ship a Hugging Face chat template (Nemotron).
 * OpenAI request bodies → template messages (openai-messages.ts) → the model's own jinja
 * template (@huggingface/jinja) → ids; completion tokens → events through TaggedOutputParser.
 *
 * Special-token text inside user-supplied strings never becomes a control token: those strings
 * carry placeholders through the template and are encoded as plain text afterwards, while the
 * template's own markup (e.g. `<|im_start|>`) is encoded with its special tokens.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import type { ChatFormat, OutputParser, RenderedPrompt } from './chat-format.js';
import type { ConstraintSpec } from '../engine/client.js';
import { enforceable } from '../constrain/json-schema-grammar.js';
import { chatCompletionToTemplate, responsesToTemplate, type TemplateRequest } from './openai-messages.js';
import { TaggedOutputParser } from './tagged-output-parser.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { CheckpointError, InputError } from '../util/errors.js';

export interface JinjaChatFormatOptions {
  bosToken?: string;
  eosToken?: string;
  /** ids that end a completion besides the model's eos */
  stopTokenIds?: number[];
  newCallId?: () => string;
}

export interface JinjaPrompt extends RenderedPrompt {
  /** the prompt ends inside an open `<think>` */
  startsInReasoning: boolean;
  request: TemplateRequest;
}

type Obj = Record<string, unknown>;

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Obj).content === 'string') return (v as Obj).content as string;
  return undefined;
}

function readJson(file: string): Obj | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Obj;
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

export class JinjaChatFormat implements ChatFormat {
  readonly name = 'jinja';
  readonly stopTokenIds: readonly number[];
  private readonly template: Template;
  private readonly specials: string[];
  private readonly specialPattern: RegExp | null;

  constructor(readonly tokenizer: Tokenizer & { specials?: { byText: ReadonlyMap<string, number> } }, readonly source: string, private readonly opts: JinjaChatFormatOptions = {}) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new CheckpointError(`chat template: cannot parse (${(e as Error).message})`);
    }
    this.specials = [...(tokenizer.specials?.byText.keys() ?? [])].sort((a, b) => b.length - a.length);
    this.specialPattern = this.specials.length
      ? new RegExp(this.specials.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g')
      : null;
    const stops = new Set(opts.stopTokenIds ?? []);
    const eos = opts.eosToken !== undefined ? tokenizer.specialTokenId(opts.eosToken) : undefined;
    if (eos !== undefined) stops.add(eos);
    this.stopTokenIds = [...stops];
  }

  /**
   * The chat template of a checkpoint folder: chat_template.jinja, else tokenizer_config.json's
   * `chat_template` (a string, or a list of named templates: "default").
   */
  static fromDir(dir: string, tokenizer: Tokenizer, opts: Omit<JinjaChatFormatOptions, 'bosToken' | 'eosToken' | 'stopTokenIds'> = {}): JinjaChatFormat {
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const cfg = readJson(cfgFile) ?? {};
    let source: string | undefined;
    const jinjaFile = path.join(dir, 'chat_template.jinja');
    if (fs.existsSync(jinjaFile)) source = fs.readFileSync(jinjaFile, 'utf8');
    else if (typeof cfg.chat_template === 'string') source = cfg.chat_template;
    else if (Array.isArray(cfg.chat_template)) {
      const named = cfg.chat_template as { name?: unknown; template?: unknown }[];
      const t = named.find((x) => x?.name === 'default') ?? named[0];
      if (typeof t?.template === 'string') source = t.template;
    }
    if (source === undefined) {
      throw new CheckpointError(`${dir}: no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json)`);
    }
    const stopTokenIds: number[] = [];
    const gen = readJson(path.join(dir, 'generation_config.json'));
    const genEos = gen?.eos_token_id;
    for (const id of Array.isArray(genEos) ? genEos : genEos === undefined ? [] : [genEos]) {
      if (Number.isInteger(id)) stopTokenIds.push(id as number);
    }
    return new JinjaChatFormat(tokenizer, source, {
      ...opts, bosToken: tokenText(cfg.bos_token), eosToken: tokenText(cfg.eos_token), stopTokenIds,
    });
  }

  renderChatCompletion(body: Record<string, unknown>): JinjaPrompt {
    return this.render(chatCompletionToTemplate(body));
  }

  renderResponses(body: Record<string, unknown>): JinjaPrompt {
    return this.render(responsesToTemplate(body));
  }

  /** JSON output constraints start after the reasoning closes; at once where there is none */
  constrainedContentGate(prompt?: RenderedPrompt): number[] {
    if (!(prompt as JinjaPrompt | undefined)?.startsInReasoning) return [];
    return this.tokenizer.encode('</think>', { allowedSpecial: 'all' });
  }

  createParser(prompt?: RenderedPrompt): OutputParser {
    const p = prompt as JinjaPrompt | undefined;
    const parameterTypes = new Map<string, Map<string, unknown>>();
    for (const t of p?.request.tools ?? []) {
      const props = (t.function.parameters.properties ?? {}) as Record<string, { type?: unknown }>;
      parameterTypes.set(t.function.name, new Map(Object.entries(props).map(([k, v]) => [k, v?.type])));
    }
    return new TaggedOutputParser(this.tokenizer, {
      startsInReasoning: p?.startsInReasoning ?? false, parameterTypes, newCallId: this.opts.newCallId, endIds: this.stopTokenIds,
    });
  }

  private render(req: TemplateRequest): JinjaPrompt {
    const literals: string[] = [];
    const protect = (v: unknown): unknown => {
      if (typeof v === 'string') {
        if (!this.specialPattern) return v;
        return v.replace(this.specialPattern, (m) => `\uE000${literals.push(m) - 1}\uE001`);
      }
      if (Array.isArray(v)) return v.map(protect);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, protect(x)]));
      return v;
    };
    let text: string;
    try {
      text = this.template.render({
        messages: protect(req.messages),
        tools: req.tools.length ? protect(req.tools) : undefined,
        add_generation_prompt: true,
        bos_token: this.opts.bosToken ?? '',
        eos_token: this.opts.eosToken ?? '',
        reasoning_effort: req.effort,
        ...(protect(req.kwargs) as Obj),
      });
    } catch (e) {
      throw new InputError(`messages: the model's chat template rejected the conversation (${(e as Error).message})`);
    }
    const ids: number[] = [];
    let plain = '';
    const parts = text.split(/\uE000(\d+)\uE001/);
    for (let i = 0; i < parts.length; i++) {
      if (i % 2 === 0) {
        if (parts[i]) ids.push(...this.tokenizer.encode(parts[i], { allowedSpecial: 'all' }));
        plain += parts[i];
      } else {
        const lit = literals[Number(parts[i])];
        ids.push(...this.tokenizer.encode(lit));
        plain += lit;
      }
    }
    const open = plain.lastIndexOf('<think>');
    const startsInReasoning = open >= 0 && open > plain.lastIndexOf('</think>') && /^\s*$/.test(plain.slice(open + 7));
    const prompt: JinjaPrompt = { ids, text: plain, startsInReasoning, request: req };
    const forced = this.forcedCall(req, startsInReasoning);
    if (forced) prompt.constraint = forced;
    return prompt;
  }

  /**
   * tool_choice "required" or a named function: after the reasoning (if the prompt opened it) the
   * completion must be one call in the `<tool_call>` JSON form the parser reads, to one of the
   * offered tools, with arguments under its schema (vLLM likewise forces JSON calls whatever the
   * model's native call syntax).
   */
  private forcedCall(req: TemplateRequest, startsInReasoning: boolean): ConstraintSpec | null {
    const choice = req.toolChoice;
    const tools = choice.mode === 'function' ? req.tools.filter((t) => t.function.name === choice.name)
      : choice.mode === 'required' ? req.tools : [];
    if (tools.length === 0) return null;
    const ids = (s: string) => this.tokenizer.encode(s, { allowedSpecial: 'all' });
    const spec: ConstraintSpec = {
      type: 'tool_call',
      tools: tools.map((t) => ({ name: t.function.name, schema: enforceable(t.function.parameters) ? t.function.parameters : null })),
      head: ids(`${startsInReasoning ? '\n\n' : ''}<tool_call>\n{"name": "`),
      tail: ids('", "arguments": '),
      trailer: ids('}\n</tool_call>'),
    };
    if (startsInReasoning) spec.gate = ids('</think>');
    return spec;
  }
}
