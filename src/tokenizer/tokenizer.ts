/**
 * What every tokenizer offers the engine, the chat formats and the server. Implementations:
 * the built-in o200k_harmony (gpt-oss) and Hugging Face tokenizer.json models (Nemotron).
 */

/** tiktoken's encode() semantics for special-token text (see ../shared/fixtures/tokenizer/README.md). */
export interface EncodeOptions {
  /** special tokens whose text becomes their id; default none */
  allowedSpecial?: 'all' | readonly string[];
  /** special tokens whose text is an error when not allowed; default 'all' when allowedSpecial is given, else none */
  disallowedSpecial?: 'all' | readonly string[];
}

export interface Tokenizer {
  readonly name: string;
  /** number of ids, special tokens included */
  readonly vocabSize: number;
  /**
   * Text → ids. Without options, special-token text is ordinary text (tiktoken's encode_ordinary):
   * user content can never inject control tokens.
   */
  encode(text: string, opts?: EncodeOptions): number[];
  /** ids → bytes, exactly (special tokens as their names); throws InputError on an unknown id */
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** ids → text, invalid UTF-8 replaced by U+FFFD */
  decode(ids: ArrayLike<number>): string;
  /** the bytes of one id (undefined for an unknown id); used by constrained decoding */
  tokenBytes(id: number): Uint8Array | undefined;
  /** id of a special token by its text, e.g. '<|end|>' */
  specialTokenId(text: string): number | undefined;
  isSpecial(id: number): boolean;
}
