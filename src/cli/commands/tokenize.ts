/** `tessera tokenize`: text on stdin → JSON ids (or ids → text with --decode). */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { builtinTokenizer, loadTokenizer } from '../../tokenizer/index.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { InputError } from '../../util/errors.js';

export function register(program: Command): void {
  program.command('tokenize')
    .description('encode text from stdin to a JSON array of ids (or decode ids with --decode)')
    .option('--model <dir>', "use the checkpoint's tokenizer")
    .option('--encoding <name>', 'a built-in encoding: o200k_harmony or o200k_base')
    .option('--allow-special', 'turn special-token text (e.g. <|start|>) into special tokens')
    .option('--decode', 'read a JSON array of ids and print the text')
    .action(async (o) => {
      if (!o.model === !o.encoding) throw new InputError('tokenize: give exactly one of --model or --encoding');
      let tok: Tokenizer;
      if (o.model) tok = await loadTokenizer(o.model);
      else {
        const t = builtinTokenizer(o.encoding);
        if (!t) throw new InputError(`--encoding: unknown encoding "${o.encoding}" (known: o200k_harmony, o200k_base)`);
        tok = t;
      }
      const input = fs.readFileSync(0, 'utf8');
      if (o.decode) {
        let ids: unknown;
        try {
          ids = JSON.parse(input);
        } catch {
          throw new InputError('--decode: stdin must be a JSON array of token ids');
        }
        if (!Array.isArray(ids) || ids.some((x) => !Number.isInteger(x))) throw new InputError('--decode: stdin must be a JSON array of integer token ids');
        process.stdout.write(tok.decode(ids as number[]));
        return;
      }
      const ids = tok.encode(input, o.allowSpecial ? { allowedSpecial: 'all' } : undefined);
      process.stdout.write(JSON.stringify(ids) + '\n');
    });
}
