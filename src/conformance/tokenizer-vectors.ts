/**
 * Tokenizer vector fixtures (../shared/fixtures/tokenizer/README.md): JSON lines with a text, the
 * expected ids (or an expected error), the encoding and tiktoken's special-token arguments.
 * One result per line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinTokenizer } from '../tokenizer/index.js';
import type { EncodeOptions } from '../tokenizer/tokenizer.js';
import type { CaseResult, ConformanceSuite, SuiteOptions } from './suite.js';

interface Vector {
  text: string;
  ids?: number[];
  encoding?: string;
  allowed_special?: 'all' | string[];
  disallowed_special?: 'all' | string[];
  error?: string;
  decoded?: string;
  category?: string;
}

const vectorFiles = (dir: string) => {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
  } catch {
    return [];
  }
};

export function checkVector(v: Vector): { ok: boolean; detail: string } {
  const tok = builtinTokenizer(v.encoding ?? 'o200k_harmony');
  if (!tok) return { ok: false, detail: `unknown encoding ${v.encoding}` };
  const opts: EncodeOptions | undefined = v.encoding === undefined ? undefined : { allowedSpecial: v.allowed_special ?? [], disallowedSpecial: v.disallowed_special ?? 'all' };
  let ids: number[];
  try {
    ids = tok.encode(v.text, opts);
  } catch (e) {
    return v.error ? { ok: true, detail: `rejected: ${(e as Error).message}` } : { ok: false, detail: `threw ${(e as Error).message}` };
  }
  if (v.error) return { ok: false, detail: `expected error ${v.error}, got ${ids.length} ids` };
  const want = v.ids ?? [];
  if (ids.length !== want.length || ids.some((x, i) => x !== want[i])) {
    const at = ids.findIndex((x, i) => x !== want[i]);
    return { ok: false, detail: `ids differ at ${at}: got ${JSON.stringify(ids.slice(at, at + 5))}, want ${JSON.stringify(want.slice(at, at + 5))}` };
  }
  const text = tok.decode(want);
  const expectText = v.decoded ?? v.text;
  if (text !== expectText) return { ok: false, detail: `decode gives ${JSON.stringify(text.slice(0, 40))}` };
  return { ok: true, detail: `${ids.length} ids` };
}

export const tokenizerVectorSuite: ConformanceSuite = {
  name: 'tokenizer',
  claims(dir: string): boolean {
    for (const f of vectorFiles(dir)) {
      const first = fs.readFileSync(path.join(dir, f), 'utf8').split('\n', 1)[0];
      try {
        const v = JSON.parse(first);
        if (typeof v.text === 'string' && ('ids' in v || 'error' in v)) return true;
      } catch {
        // not a vector file
      }
    }
    return false;
  },
  async *run(dir: string, opts: SuiteOptions): AsyncIterable<CaseResult> {
    for (const f of vectorFiles(dir)) {
      const lines = fs.readFileSync(path.join(dir, f), 'utf8').split('\n');
      for (let i = 0; i < lines.length; i++) {
        if (!lines[i].trim()) continue;
        const name = `${opts.label}/${f}:${i + 1}`;
        let v: Vector;
        try {
          v = JSON.parse(lines[i]);
        } catch (e) {
          yield { name, ok: false, detail: `bad JSON line: ${(e as Error).message}` };
          continue;
        }
        const r = checkVector(v);
        yield { name: `${name} ${v.category ?? ''}`.trim(), ...r };
      }
    }
  },
};
