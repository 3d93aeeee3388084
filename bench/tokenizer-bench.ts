/**
 * Encode throughput of the built-in o200k tokenizer against @dqbd/tiktoken (the WASM build of
 * OpenAI's tiktoken), measured in the same process on the same inputs: many short chat turns, and
 * one 1 MB document. Both must produce the same ids.
 */
import { O200kTokenizer } from '../src/tokenizer/o200k.js';

export interface TokenizerBenchResult {
  short_turns: { count: number; bytes: number; tessera_mb_per_s: number; tiktoken_mb_per_s: number | null };
  document_1mb: { bytes: number; tessera_mb_per_s: number; tiktoken_mb_per_s: number | null };
  load_ms: number;
}

/** A deterministic mixed document: prose, code, numbers, URLs, non-Latin scripts. */
export function benchDocument(bytes: number): string {
  const words = 'the of and to in is was for on that with as by at from his her which an are this be had it not have were but they one all their there been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people'.split(' ');
  const extras = ['function f(x) { return x * 2; }', 'https://example.com/path?q=1&r=2', '3.14159 2026-11-24 42,000', '日本語のテキストです。', 'Ünïcödé naïve café', 'Привет, мир!', '🙂🚀', "it's they're we'll I'd"];
  let s = '';
  let k = 12345;
  while (Buffer.byteLength(s) < bytes) {
    k = (k * 1103515245 + 12345) >>> 0;
    s += k % 29 === 0 ? ` ${extras[k % extras.length]}` : k % 17 === 0 ? '.\n' : ` ${words[k % words.length]}`;
  }
  return s;
}

function mbps(bytes: number, ms: number): number {
  return Math.round((bytes / 1e6 / (ms / 1000)) * 100) / 100;
}

function time(fn: () => void, minMs = 1000): number {
  fn(); // warm up
  let runs = 0;
  const t0 = performance.now();
  do {
    fn();
    runs++;
  } while (performance.now() - t0 < minMs);
  return (performance.now() - t0) / runs;
}

export async function runTokenizerBench(log: (s: string) => void = () => {}): Promise<TokenizerBenchResult> {
  const t0 = performance.now();
  const ours = O200kTokenizer.harmony();
  ours.encode('warm');
  const loadMs = Math.round(performance.now() - t0);
  let tk: { encode_ordinary(s: string): Uint32Array } | null = null;
  try {
    const mod = (await import('@dqbd/tiktoken')) as unknown as { get_encoding(n: string): { encode_ordinary(s: string): Uint32Array } };
    tk = mod.get_encoding('o200k_base');
  } catch {
    log('@dqbd/tiktoken is not installed: reporting Tessera only');
  }
  const doc = benchDocument(1 << 20);
  // distinct turns: slices of the document at spread-out offsets
  const turns = Array.from({ length: 2000 }, (_, i) => doc.slice(i * 499, i * 499 + 40 + ((i * 37) % 300)));
  const turnBytes = turns.reduce((a, t) => a + Buffer.byteLength(t), 0);
  const docBytes = Buffer.byteLength(doc);
  if (tk) {
    const a = ours.encode(doc);
    const b = Array.from(tk.encode_ordinary(doc));
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) throw new Error('Tessera and tiktoken disagree on the benchmark document');
  }
  const ourDoc = time(() => ours.encode(doc));
  const ourTurns = time(() => { for (const t of turns) ours.encode(t); });
  const tkDoc = tk ? time(() => tk!.encode_ordinary(doc)) : null;
  const tkTurns = tk ? time(() => { for (const t of turns) tk!.encode_ordinary(t); }) : null;
  const res: TokenizerBenchResult = {
    short_turns: { count: turns.length, bytes: turnBytes, tessera_mb_per_s: mbps(turnBytes, ourTurns), tiktoken_mb_per_s: tkTurns === null ? null : mbps(turnBytes, tkTurns) },
    document_1mb: { bytes: docBytes, tessera_mb_per_s: mbps(docBytes, ourDoc), tiktoken_mb_per_s: tkDoc === null ? null : mbps(docBytes, tkDoc) },
    load_ms: loadMs,
  };
  log(`short turns: Tessera ${res.short_turns.tessera_mb_per_s} MB/s, tiktoken ${res.short_turns.tiktoken_mb_per_s ?? '-'} MB/s`);
  log(`1 MB document: Tessera ${res.document_1mb.tessera_mb_per_s} MB/s, tiktoken ${res.document_1mb.tiktoken_mb_per_s ?? '-'} MB/s`);
  return res;
}
