/** Which tokenizer a checkpoint folder uses. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../util/errors.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { O200kTokenizer } from './o200k.js';
import type { Tokenizer } from './tokenizer.js';

export { O200kTokenizer } from './o200k.js';
export { IncrementalDetokenizer } from './detokenizer.js';
export { HfTokenizer } from './hf-tokenizer.js';
export type { Tokenizer, EncodeOptions } from './tokenizer.js';

/** A built-in encoding by name. */
export function builtinTokenizer(name: string): Tokenizer | undefined {
  if (name === 'o200k_harmony') return O200kTokenizer.harmony();
  if (name === 'o200k_base') return O200kTokenizer.base();
  return undefined;
}

const GPT_OSS_PROBES = [
  'Hello, world! The quick brown fox jumps over the lazy dog.',
  "def f(x):\n    return x ** 2  # it's 42\n\n",
  '日本語のテキスト, Привет мир, 🙂🚀 naïve café 12345678',
  '<|start|>user<|message|>hi<|end|>',
];

/**
 * The tokenizer of a checkpoint folder. gpt-oss uses the built-in o200k_harmony; where the
 * folder ships the released tokenizer.json, it must agree (special ids and probe encodings).
 * Other families use their tokenizer.json through Hugging Face's tokenizers library.
 */
export async function loadTokenizer(modelDir: string): Promise<Tokenizer> {
  const configPath = path.join(modelDir, 'config.json');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${configPath}: cannot read the model config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const hasTokenizerJson = fs.existsSync(path.join(modelDir, 'tokenizer.json'));
  if (config.model_type === 'gpt_oss') {
    const tok = O200kTokenizer.harmony();
    if (hasTokenizerJson) checkAgreement(tok, HfTokenizer.fromDir(modelDir));
    return tok;
  }
  if (!hasTokenizerJson) {
    throw new CheckpointError(`${path.join(modelDir, 'tokenizer.json')}: missing (model_type "${String(config.model_type)}" has no built-in tokenizer)`);
  }
  return HfTokenizer.fromDir(modelDir);
}

/** A shipped tokenizer.json must tokenize as the built-in encoding does. */
export function checkAgreement(builtin: Tokenizer, shipped: Tokenizer): void {
  for (const [name, id] of (builtin as O200kTokenizer).specialTokens()) {
    const other = shipped.specialTokenId(name);
    if (other !== undefined && other !== id) {
      throw new CheckpointError(`${shipped.name}: special token ${name} has id ${other}, but ${builtin.name} has ${id}`);
    }
  }
  for (const p of GPT_OSS_PROBES) {
    const opts = p.includes('<|') ? { allowedSpecial: 'all' as const } : undefined;
    const a = shipped.encode(p, opts);
    const b = builtin.encode(p, opts);
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
      throw new CheckpointError(`${shipped.name}: encodes ${JSON.stringify(p.slice(0, 30))} as [${a.slice(0, 8)}…], ${builtin.name} as [${b.slice(0, 8)}…]`);
    }
  }
}
