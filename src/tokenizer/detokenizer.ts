/**
 * Streaming detokenization: ids arrive one at a time, text leaves only in whole UTF-8
 * characters (a character split across tokens waits for its last byte), and nothing is lost:
 * flush() returns what is pending, invalid bytes as U+FFFD.
 */
import type { Tokenizer } from './tokenizer.js';

export class IncrementalDetokenizer {
  private readonly utf8 = new TextDecoder('utf-8');
  constructor(private readonly tokenizer: Tokenizer) {}

  /** the text completed by this token ('' while a character is incomplete) */
  push(id: number): string {
    return this.utf8.decode(this.tokenizer.decodeBytes([id]), { stream: true });
  }

  /** end of stream: pending bytes (an unfinished character becomes U+FFFD) */
  flush(): string {
    return this.utf8.decode();
  }
}
