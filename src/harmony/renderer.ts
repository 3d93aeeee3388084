/**
 * Harmony renderer: messages → the exact token ids (and text) OpenAI's encoder produces
 * (FORMAT.md §3–§6). Rendering goes through "pieces": special tokens, and text pieces that are
 * each encoded on their own as ordinary text (§3.3), so a user writing `<|end|>` can never inject
 * a control token and the ids match the reference piece for piece.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError } from '../util/errors.js';
import { developerContentText, hasFunctionTools, systemContentText } from './content-text.js';
import { FORMATTING_TOKENS, HarmonyTokens, type FormattingToken } from './special-tokens.js';
import type { Message, Role } from './types.js';

export type Piece = { special: FormattingToken } | { text: string };

export interface RenderOptions {
  /** adds the "Calls to these tools must go to the commentary channel" line to system content */
  conversationHasFunctionTools: boolean;
}

export interface RenderConfig {
  /** drop analysis before the first final message when the last assistant message is final (§4.3) */
  autoDropAnalysis: boolean;
}

export interface Rendered {
  ids: number[];
  /** special tokens written as their names */
  text: string;
}

const ROLE_NAMES = { system: 'System', developer: 'Developer', user: 'User', assistant: 'Assistant', tool: 'Tool' } as const;

/** The pieces of one message (§3.1). Throws InputError on the reference's rendering errors. */
export function messagePieces(message: Message, opts: RenderOptions): Piece[] {
  const out: Piece[] = [{ special: 'start' }];
  if (message.role === 'tool') {
    if (message.name === null) throw new InputError('Tools should have a name!');
    out.push({ text: message.name });
  } else {
    out.push({ text: message.role });
    if (message.name !== null) out.push({ text: `:${message.name}` });
  }
  if (message.recipient !== null && message.recipient !== 'all') out.push({ text: ` to=${message.recipient}` });
  if (message.channel !== null) out.push({ special: 'channel' }, { text: message.channel });
  if (message.contentType !== null) {
    const marker = FORMATTING_TOKENS.constrain;
    if (message.contentType.startsWith(marker)) {
      const rest = message.contentType.slice(marker.length);
      out.push({ text: ' ' }, { special: 'constrain' });
      if (rest !== '') out.push({ text: rest });
    } else {
      out.push({ text: ` ${message.contentType}` });
    }
  }
  out.push({ special: 'message' });
  for (const part of message.content) {
    if (part.type === 'text') {
      out.push({ text: part.text });
    } else if (part.type === 'system_content') {
      if (message.role !== 'system') {
        throw new InputError(`SystemContent may only appear in system messages, found in ${ROLE_NAMES[message.role]}`);
      }
      out.push({ text: systemContentText(part, opts.conversationHasFunctionTools) });
    } else {
      if (message.role !== 'developer') {
        throw new InputError(`DeveloperContent may only appear in developer messages, found in ${ROLE_NAMES[message.role]}`);
      }
      out.push({ text: developerContentText(part) });
    }
  }
  // an assistant message with any recipient (even "all", which is not printed) is a tool call
  out.push({ special: message.role === 'assistant' && message.recipient !== null ? 'call' : 'end' });
  return out;
}

/** §4.3: which messages a conversation render keeps */
export function keptMessages(messages: readonly Message[], config: RenderConfig): Message[] {
  let lastAssistantIsFinal = false;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].role === 'assistant') {
      lastAssistantIsFinal = messages[i].channel === 'final';
      break;
    }
  }
  const drop = config.autoDropAnalysis && lastAssistantIsFinal;
  const firstFinal = messages.findIndex((m) => m.channel === 'final');
  return messages.filter((m, i) => !(drop && firstFinal >= 0 && i < firstFinal && m.channel === 'analysis'));
}

export function conversationPieces(messages: readonly Message[], config: RenderConfig): Piece[] {
  // the flag looks at every message, dropped ones included (§4.4)
  const opts: RenderOptions = { conversationHasFunctionTools: hasFunctionTools(messages.flatMap((m) => m.content)) };
  return keptMessages(messages, config).flatMap((m) => messagePieces(m, opts));
}

export function completionPieces(messages: readonly Message[], nextRole: Role, config: RenderConfig): Piece[] {
  return [...conversationPieces(messages, config), { special: 'start' }, { text: nextRole }];
}

export class HarmonyRenderer {
  readonly tokens: HarmonyTokens;

  constructor(readonly tokenizer: Tokenizer) {
    this.tokens = new HarmonyTokens(tokenizer);
  }

  /** pieces → ids and text; each text piece is encoded on its own, special-token text as plain text */
  encodePieces(pieces: readonly Piece[]): Rendered {
    const ids: number[] = [];
    let text = '';
    for (const p of pieces) {
      if ('special' in p) {
        ids.push(this.tokens.idOf(p.special));
        text += FORMATTING_TOKENS[p.special];
      } else {
        for (const id of this.tokenizer.encode(p.text)) ids.push(id);
        // lone surrogates are encoded as U+FFFD (as tiktoken does): the text says the same
        text += (p.text as string & { toWellFormed(): string }).toWellFormed();
      }
    }
    return { ids, text };
  }

  renderMessage(message: Message, opts: RenderOptions = { conversationHasFunctionTools: false }): Rendered {
    return this.encodePieces(messagePieces(message, opts));
  }

  renderConversation(messages: readonly Message[], config: RenderConfig = { autoDropAnalysis: true }): Rendered {
    return this.encodePieces(conversationPieces(messages, config));
  }

  /** the conversation, then `<|start|>` and the next role: the prompt the model completes */
  renderCompletion(messages: readonly Message[], nextRole: Role = 'assistant', config: RenderConfig = { autoDropAnalysis: true }): Rendered {
    return this.encodePieces(completionPieces(messages, nextRole, config));
  }

  /** like renderConversation; a last assistant `final` message ends in <|return|> instead of <|end|> (§6) */
  renderTraining(messages: readonly Message[], config: RenderConfig = { autoDropAnalysis: true }): Rendered {
    const pieces = conversationPieces(messages, config);
    const last = messages[messages.length - 1];
    if (last && last.role === 'assistant' && last.channel === 'final' && pieces.length > 0) {
      pieces[pieces.length - 1] = { special: 'return' };
    }
    return this.encodePieces(pieces);
  }
}
