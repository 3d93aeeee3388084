/**
 * The harmony formatting tokens, resolved to ids through the tokenizer (special_tokens.json:
 * `<|start|>` 200006 ... in o200k_harmony), so nothing here depends on one vocabulary's numbers.
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { InputError } from '../util/errors.js';

export const FORMATTING_TOKENS = {
  start: '<|start|>',
  message: '<|message|>',
  end: '<|end|>',
  return: '<|return|>',
  call: '<|call|>',
  channel: '<|channel|>',
  constrain: '<|constrain|>',
} as const;

export type FormattingToken = keyof typeof FORMATTING_TOKENS;

export class HarmonyTokens {
  readonly start: number;
  readonly message: number;
  readonly end: number;
  readonly return: number;
  readonly call: number;
  readonly channel: number;
  readonly constrain: number;
  /** tokens that end a message while parsing: <|return|>, <|end|>, <|call|> */
  readonly stopTokens: ReadonlySet<number>;
  /** tokens that end sampling: <|return|> (answer done) and <|call|> (tool call) */
  readonly stopTokensForAssistantActions: ReadonlySet<number>;

  constructor(readonly tokenizer: Tokenizer) {
    const id = (t: FormattingToken): number => {
      const v = tokenizer.specialTokenId(FORMATTING_TOKENS[t]);
      if (v === undefined) throw new InputError(`tokenizer ${tokenizer.name}: no special token ${FORMATTING_TOKENS[t]} (not a harmony vocabulary)`);
      return v;
    };
    this.start = id('start');
    this.message = id('message');
    this.end = id('end');
    this.return = id('return');
    this.call = id('call');
    this.channel = id('channel');
    this.constrain = id('constrain');
    this.stopTokens = new Set([this.return, this.end, this.call]);
    this.stopTokensForAssistantActions = new Set([this.return, this.call]);
  }

  idOf(t: FormattingToken): number {
    return this[t];
  }
}
