/**
 * Hugging Face `tokenizer.json` models (Nemotron) through @huggingface/tokenizers, behind our
 * Tokenizer interface. Special (added, special=true) tokens follow the same allowed/disallowed
 * rules as tiktoken: without options, special-token text stays text, so user content can never
 * inject control tokens. Token bytes come from the byte-level alphabet (GPT-2 style), byte
 * fallback tokens (<0xNN>) or the token text (▁ as a space).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { CheckpointError, InputError } from '../util/errors.js';
import { SpecialTokens } from './special-tokens.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

interface AddedTokenJson { id: number; content: string; special?: boolean }

/** GPT-2's bytes_to_unicode, inverted: the char a byte-level token uses → that byte. */
function byteLevelDecoder(): Map<string, number> {
  const m = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m.set(String.fromCharCode(printable ? b : 256 + n++), b);
  }
  return m;
}

function hasType(node: unknown, type: string): boolean {
  if (!node || typeof node !== 'object') return false;
  if ((node as { type?: unknown }).type === type) return true;
  return Object.values(node as object).some((v) => (Array.isArray(v) ? v.some((x) => hasType(x, type)) : hasType(v, type)));
}

function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v;
  } catch (e) {
    throw new CheckpointError(`${file}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export class HfTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly specials: SpecialTokens;
  /** tokenizer_config.json (chat_template, bos/eos names, …); {} when absent */
  readonly config: Record<string, unknown>;
  private readonly lib: HfLibTokenizer;
  private readonly idToToken: Map<number, string>;
  private readonly byteLevel: Map<string, number> | undefined;
  private readonly bytesCache = new Map<number, Uint8Array>();

  constructor(json: Record<string, unknown>, config: Record<string, unknown>, name: string) {
    const model = json.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || typeof model.type !== 'string' && !model.vocab) {
      throw new CheckpointError(`${name}: tokenizer.json has no "model" with a vocabulary`);
    }
    this.name = name;
    this.config = config;
    try {
      this.lib = new HfLibTokenizer(json, config);
    } catch (e) {
      throw new CheckpointError(`${name}: tokenizer.json is not usable (${(e as Error).message})`);
    }
    const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []) as AddedTokenJson[];
    const specials: Record<string, number> = {};
    for (const t of added) if (t.special && typeof t.content === 'string') specials[t.content] = t.id;
    this.specials = new SpecialTokens(specials);
    this.idToToken = new Map();
    for (const [tok, id] of this.lib.get_vocab(true)) this.idToToken.set(id, tok);
    for (const t of added) this.idToToken.set(t.id, t.content);
    this.vocabSize = Math.max(-1, ...this.idToToken.keys()) + 1;
    this.byteLevel = hasType(json.decoder, 'ByteLevel') || hasType(json.pre_tokenizer, 'ByteLevel') ? byteLevelDecoder() : undefined;
  }

  /** Loads DIR/tokenizer.json (+ tokenizer_config.json when present). */
  static fromDir(dir: string): HfTokenizer {
    const file = path.join(dir, 'tokenizer.json');
    const json = readJson(file, 'tokenizer.json');
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    const config = fs.existsSync(cfgFile) ? readJson(cfgFile, 'tokenizer_config.json') : {};
    return new HfTokenizer(json, config, file);
  }

  encode(text: string, opts?: EncodeOptions): number[] {
    if (typeof text !== 'string') throw new InputError(`encode: expected a string, got ${typeof text}`);
    const wf = (text as unknown as { toWellFormed(): string }).toWellFormed();
    const allowed = this.specials.resolve(wf, opts);
    const out: number[] = [];
    let pos = 0;
    for (const o of this.specials.occurrences(wf)) {
      this.encodeText(wf.slice(pos, o.index), out);
      if (allowed.has(o.text)) out.push(this.specials.byText.get(o.text)!);
      else {
        // special-token text as text: encode it in two parts so the library cannot match it
        this.encodeText(o.text.slice(0, 1), out);
        this.encodeText(o.text.slice(1), out);
      }
      pos = o.index + o.text.length;
    }
    this.encodeText(wf.slice(pos), out);
    return out;
  }

  private encodeText(s: string, out: number[]): void {
    if (!s) return;
    const ids = this.lib.encode(s, { add_special_tokens: false }).ids;
    for (const id of ids) out.push(id);
  }

  tokenBytes(id: number): Uint8Array | undefined {
    let b = this.bytesCache.get(id);
    if (b) return b;
    const tok = this.idToToken.get(id);
    if (tok === undefined) return undefined;
    if (this.specials.byId.has(id)) b = utf8.encode(tok);
    else if (this.byteLevel) {
      const bytes: number[] = [];
      for (const ch of tok) {
        const x = this.byteLevel.get(ch);
        if (x === undefined) bytes.push(...utf8.encode(ch));
        else bytes.push(x);
      }
      b = Uint8Array.from(bytes);
    } else {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
      b = m ? Uint8Array.of(parseInt(m[1], 16)) : utf8.encode(tok.replace(/\u2581/g, ' '));
    }
    this.bytesCache.set(id, b);
    return b;
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes(ids[i]);
      if (!b) throw new InputError(`decode: token id ${ids[i]} (at index ${i}) is not in ${this.name} (vocab size ${this.vocabSize})`);
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) { out.set(p, off); off += p.length; }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  specialTokenId(text: string): number | undefined {
    return this.specials.byText.get(text);
  }

  isSpecial(id: number): boolean {
    return this.specials.byId.has(id);
  }

  /** id of a token by its exact vocabulary text (special or not) */
  tokenId(text: string): number | undefined {
    return this.specials.byText.get(text) ?? this.lib.token_to_id(text);
  }
}
