/** The built-in o200k_harmony tokenizer (gpt-oss), loaded once. */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { TesseraError } from '../util/errors.js';

export function harmonyTokenizer(_modelDir?: string): Tokenizer {
  throw new TesseraError('the o200k_harmony tokenizer is not built in yet');
}
