/**
 * Streaming detokenization: ids arrive one at a time, text leaves only in whole UTF-8
 * characters (a character split across tokens waits for its last byte), and nothing is lost:
 * flush() returns what is pending, invalid bytes as U+FFFD.
 */
import type { Tokenizer } from './tokenizer.js';

const REPLACEMENT = new Uint8Array([0xef, 0xbf, 0xbd]);

/**
 * The bytes of a generated id. Models often have more ids than their tokenizer (padded
 * embeddings); such an id is model output, not bad input, so it reads as U+FFFD instead of
 * failing the request.
 */
export function generatedBytes(tokenizer: Tokenizer, id: number): Uint8Array {
  return tokenizer.tokenBytes(id) ?? REPLACEMENT;
}

/** The text of one generated id (logprobs), U+FFFD for an id the tokenizer lacks. */
export function generatedText(tokenizer: Tokenizer, id: number): string {
  return tokenizer.tokenBytes(id) ? tokenizer.decode([id]) : '\ufffd';
}

export class IncrementalDetokenizer {
  private readonly utf8 = new TextDecoder('utf-8');
  constructor(private readonly tokenizer: Tokenizer) {}

  /** the text completed by this token ('' while a character is incomplete) */
  push(id: number): string {
    return this.utf8.decode(generatedBytes(this.tokenizer, id), { stream: true });
  }

  /** end of stream: pending bytes (an unfinished character becomes U+FFFD) */
  flush(): string {
    return this.utf8.decode();
  }
}
