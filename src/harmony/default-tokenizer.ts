/** The built-in o200k_harmony tokenizer (gpt-oss), loaded once. */
import { O200kTokenizer } from '../tokenizer/o200k.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

export function harmonyTokenizer(_modelDir?: string): Tokenizer {
  return O200kTokenizer.harmony();
}
