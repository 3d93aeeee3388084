/** Which tokenizer a checkpoint folder uses. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../util/errors.js';
import { O200kTokenizer } from './o200k.js';
import type { Tokenizer } from './tokenizer.js';

export { O200kTokenizer } from './o200k.js';
export { IncrementalDetokenizer } from './detokenizer.js';
export type { Tokenizer, EncodeOptions } from './tokenizer.js';

/** A built-in encoding by name. */
export function builtinTokenizer(name: string): Tokenizer | undefined {
  if (name === 'o200k_harmony') return O200kTokenizer.harmony();
  if (name === 'o200k_base') return O200kTokenizer.base();
  return undefined;
}

/**
 * The tokenizer of a checkpoint folder: gpt-oss uses the built-in o200k_harmony (its released
 * tokenizer.json, where present, must agree on the special tokens).
 */
export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  const configPath = path.join(modelDir, 'config.json');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${configPath}: cannot read the model config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (config.model_type === 'gpt_oss') {
    const tok = O200kTokenizer.harmony();
    const tj = path.join(modelDir, 'tokenizer.json');
    if (fs.existsSync(tj)) checkAgainstTokenizerJson(tok, tj);
    return tok;
  }
  throw new CheckpointError(`${modelDir}: no tokenizer for model_type "${String(config.model_type)}" (tokenizer.json models are not supported yet)`);
}

/** The released gpt-oss tokenizer.json lists the harmony special tokens in added_tokens. */
function checkAgainstTokenizerJson(tok: O200kTokenizer, file: string): void {
  let j: { added_tokens?: { id: number; content: string }[] };
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  for (const t of j.added_tokens ?? []) {
    const id = tok.specialTokenId(t.content);
    if (id !== undefined && id !== t.id) {
      throw new CheckpointError(`${file}: special token ${t.content} has id ${t.id}, but o200k_harmony has ${id}`);
    }
  }
}
