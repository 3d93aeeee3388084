/**
 * Token sampling: penalties, temperature, top-k, top-p, min-p, seeded randomness, logprobs.
 * Each request owns its random stream, so a seeded request samples the same tokens whatever
 * else runs beside it (with batch-invariant logits this makes seeded output reproducible
 * under load).
 */
import { InputError } from '../util/errors.js';
import { argmax } from '../util/argmax.js';

export interface SamplingParams {
  /** 0 = greedy */
  temperature: number;
  topP: number;
  /** 0 = off */
  topK: number;
  /** 0 = off */
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** 1 = off; > 1 discourages tokens already in the prompt or output */
  repetitionPenalty: number;
  /** null = a random seed */
  seed: number | null;
  /** 0 = no logprobs; otherwise also return the chosen token's logprob and `topLogprobs` alternatives */
  logprobs: boolean;
  topLogprobs: number;
  maxTokens: number;
  /** generation ends when one of these is sampled (the token is not part of the output text) */
  stopTokenIds: number[];
  /** keep going past end-of-sequence tokens */
  ignoreEos: boolean;
}

export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 1, topP: 1, topK: 0, minP: 0,
  presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1,
  seed: null, logprobs: false, topLogprobs: 0, maxTokens: 256, stopTokenIds: [], ignoreEos: false,
};

type Raw = Record<string, unknown>;

function num(raw: Raw, key: string, field: string, min: number, max: number, dflt: number, integer = false): number {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new InputError(`${field}: expected ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  }
  if (v < min || v > max) throw new InputError(`${field}: ${v} is outside [${min}, ${max}]`);
  return v;
}

/**
 * Sampling parameters from an OpenAI-style request body (snake_case keys), validated; errors
 * name the field. `prefix` is prepended to field names in messages.
 */
export function samplingFromRequest(raw: Raw, opts: { defaultMaxTokens: number; maxTokensCap: number; prefix?: string }): SamplingParams {
  const p = opts.prefix ?? '';
  const f = (k: string) => p + k;
  const maxKey = raw.max_completion_tokens !== undefined && raw.max_completion_tokens !== null ? 'max_completion_tokens'
    : raw.max_output_tokens !== undefined && raw.max_output_tokens !== null ? 'max_output_tokens' : 'max_tokens';
  const maxTokens = num(raw, maxKey, f(maxKey), 1, Math.max(1, opts.maxTokensCap), Math.min(opts.defaultMaxTokens, opts.maxTokensCap), true);
  let topLogprobs = num(raw, 'top_logprobs', f('top_logprobs'), 0, 20, 0, true);
  let logprobs = false;
  const lp = raw.logprobs;
  if (lp !== undefined && lp !== null) {
    if (typeof lp === 'boolean') logprobs = lp;
    else if (typeof lp === 'number' && Number.isInteger(lp) && lp >= 0 && lp <= 20) {
      // legacy Completions: logprobs = how many alternatives
      logprobs = true;
      topLogprobs = lp;
    } else throw new InputError(`${f('logprobs')}: expected a boolean (or an integer 0..20 for completions), got ${JSON.stringify(lp)}`);
  }
  if (topLogprobs > 0 && !logprobs && raw.top_logprobs !== undefined) {
    throw new InputError(`${f('top_logprobs')}: requires logprobs to be true`);
  }
  let seed: number | null = null;
  if (raw.seed !== undefined && raw.seed !== null) {
    if (typeof raw.seed !== 'number' || !Number.isInteger(raw.seed)) throw new InputError(`${f('seed')}: expected an integer, got ${JSON.stringify(raw.seed)}`);
    seed = raw.seed;
  }
  return {
    temperature: num(raw, 'temperature', f('temperature'), 0, 2, 1),
    topP: (() => {
      const v = num(raw, 'top_p', f('top_p'), 0, 1, 1);
      if (v === 0) throw new InputError(`${f('top_p')}: must be greater than 0`);
      return v;
    })(),
    topK: Math.max(0, num(raw, 'top_k', f('top_k'), -1, 1e9, 0, true)), // -1 = off (vLLM)
    minP: num(raw, 'min_p', f('min_p'), 0, 1, 0),
    presencePenalty: num(raw, 'presence_penalty', f('presence_penalty'), -2, 2, 0),
    frequencyPenalty: num(raw, 'frequency_penalty', f('frequency_penalty'), -2, 2, 0),
    repetitionPenalty: (() => {
      const v = num(raw, 'repetition_penalty', f('repetition_penalty'), 0, 10, 1);
      if (v === 0) throw new InputError(`${f('repetition_penalty')}: must be greater than 0`);
      return v;
    })(),
    seed,
    logprobs,
    topLogprobs,
    maxTokens,
    stopTokenIds: [],
    ignoreEos: raw.ignore_eos === true,
  };
}

/** sfc32: a small, fast, well-distributed 32-bit generator; the state is the request's own. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    // split the (possibly 53-bit) seed into two words and mix
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    this.a = 0x9e3779b9 ^ lo;
    this.b = 0x243f6a88 ^ hi;
    this.c = 0xb7e15162;
    this.d = 1;
    for (let i = 0; i < 16; i++) this.nextU32();
  }
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** uniform in [0, 1) with 53 bits */
  next(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface SampleResult {
  token: number;
  /** log-probability of the chosen token under the model's distribution (after penalties, before temperature/filters) */
  logprob?: number;
  top?: TokenLogprob[];
}

/** Counts of tokens seen so far in one request (prompt and output kept apart for the penalties). */
export class TokenCounts {
  readonly output = new Map<number, number>();
  readonly prompt = new Set<number>();
  constructor(prompt: ArrayLike<number>) {
    for (let i = 0; i < prompt.length; i++) this.prompt.add(prompt[i]);
  }
  add(id: number): void {
    this.output.set(id, (this.output.get(id) ?? 0) + 1);
  }
}

/** One request's sampler. `mask`, when given, says which tokens are allowed (constrained decoding). */
export class Sampler {
  private readonly rng: Rng;
  /** scratch: unnormalised probabilities */
  private w = new Float64Array(0);
  constructor(readonly params: SamplingParams, seed?: number) {
    const s = params.seed ?? seed ?? Math.floor(Math.random() * 2 ** 32);
    this.rng = new Rng(s);
  }

  sample(logits: Float32Array, counts: TokenCounts, mask?: (id: number) => boolean): SampleResult {
    const p = this.params;
    const V = logits.length;
    const x = applyPenalties(logits, counts, p);
    if (mask) for (let i = 0; i < V; i++) if (x[i] !== -Infinity && !mask(i)) x[i] = -Infinity;
    const res: SampleResult = { token: 0 };
    if (p.logprobs) {
      const lse = logSumExp(x);
      res.top = p.topLogprobs > 0 ? topN(x, p.topLogprobs).map((id) => ({ id, logprob: x[id] - lse })) : [];
      const tok = this.choose(x);
      res.token = tok;
      res.logprob = x[tok] - lse;
      return res;
    }
    res.token = this.choose(x);
    return res;
  }

  private choose(x: Float32Array): number {
    const p = this.params;
    if (p.temperature === 0) return argmax(x);
    const invT = 1 / p.temperature;
    if (p.topK > 0 && p.topK < x.length) return this.draw(x, topN(x, p.topK), invT);
    let max = -Infinity;
    for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
    if (max === -Infinity) return argmax(x);
    // unnormalised probabilities of every id (0 for masked ones), summed in id order
    if (this.w.length < x.length) this.w = new Float64Array(x.length);
    const w = this.w;
    let all = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i] === -Infinity ? 0 : Math.exp((x[i] - max) * invT);
      w[i] = v;
      all += v;
    }
    if (p.topP >= 1 && p.minP <= 0) {
      // plain temperature: draw over every id in id order, no sort
      let r = this.rng.next() * all;
      let last = -1;
      for (let i = 0; i < x.length; i++) {
        if (x[i] === -Infinity) continue;
        last = i;
        r -= w[i];
        if (r < 0) return i;
      }
      return last;
    }
    // min_p keeps ids with p ≥ min_p · p_max (w of the top id is 1); top_p keeps the shortest head
    // of the sorted distribution holding top_p of the mass that min_p left. Only the head needs
    // sorting: take the ids above a threshold, lowering it until they hold enough mass.
    const cut = p.minP > 0 ? p.minP : 0;
    let kept = all;
    if (cut > 0) {
      kept = 0;
      for (let i = 0; i < x.length; i++) if (w[i] >= cut && x[i] !== -Infinity) kept += w[i];
    }
    const need = p.topP < 1 ? p.topP * kept : kept;
    let tau = Math.max(cut, 2 ** -10);
    let head: number[];
    for (;;) {
      head = [];
      let mass = 0;
      for (let i = 0; i < x.length; i++) {
        if (x[i] !== -Infinity && w[i] >= tau) {
          head.push(i);
          mass += w[i];
        }
      }
      if (mass >= need || tau <= cut || tau === 0) break;
      tau = tau / 64 < 1e-300 ? cut : Math.max(cut, tau / 64);
    }
    head.sort((a, b) => x[b] - x[a] || a - b);
    let n = head.length;
    if (p.topP < 1) {
      let acc = 0;
      let k = 0;
      while (k < n) {
        acc += w[head[k++]];
        if (acc >= need) break;
      }
      n = Math.max(1, k);
    }
    let total = 0;
    for (let j = 0; j < n; j++) total += w[head[j]];
    let r = this.rng.next() * total;
    for (let j = 0; j < n; j++) {
      r -= w[head[j]];
      if (r < 0) return head[j];
    }
    return head[n - 1];
  }

  /** temperature draw over `cand` (sorted, largest first) */
  private draw(x: Float32Array, cand: number[], invT: number): number {
    if (cand.length === 0) return argmax(x);
    const p = this.params;
    const max = x[cand[0]];
    const probs = new Float64Array(cand.length);
    for (let j = 0; j < cand.length; j++) probs[j] = Math.exp((x[cand[j]] - max) * invT);
    let n = cand.length;
    if (p.minP > 0) {
      let k = 0;
      while (k < n && probs[k] >= p.minP) k++;
      n = Math.max(1, k);
    }
    if (p.topP < 1) {
      let kept = 0;
      for (let j = 0; j < n; j++) kept += probs[j];
      let acc = 0;
      let k = 0;
      while (k < n) {
        acc += probs[k++];
        if (acc >= p.topP * kept) break;
      }
      n = Math.max(1, k);
    }
    let total = 0;
    for (let j = 0; j < n; j++) total += probs[j];
    let r = this.rng.next() * total;
    for (let j = 0; j < n; j++) {
      r -= probs[j];
      if (r < 0) return cand[j];
    }
    return cand[n - 1];
  }
}

function applyPenalties(logits: Float32Array, counts: TokenCounts, p: SamplingParams): Float32Array {
  const x = new Float32Array(logits); // (a copy; Float32Array.from would iterate)
  if (p.repetitionPenalty !== 1) {
    const pen = (id: number) => {
      x[id] = x[id] > 0 ? x[id] / p.repetitionPenalty : x[id] * p.repetitionPenalty;
    };
    const seen = new Set<number>(counts.prompt);
    for (const id of counts.output.keys()) seen.add(id);
    for (const id of seen) if (id < x.length) pen(id);
  }
  if (p.presencePenalty !== 0 || p.frequencyPenalty !== 0) {
    for (const [id, c] of counts.output) if (id < x.length) x[id] -= p.presencePenalty + p.frequencyPenalty * c;
  }
  return x;
}


function logSumExp(x: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  if (m === -Infinity) return 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - m);
  return m + Math.log(s);
}

/** ids of the n largest values, largest first (ties: lower id first). */
export function topN(x: Float32Array, n: number): number[] {
  n = Math.min(n, x.length);
  if (n > 64) {
    const all: number[] = [];
    for (let i = 0; i < x.length; i++) if (x[i] !== -Infinity) all.push(i);
    return all.sort((a, b) => x[b] - x[a] || a - b).slice(0, n);
  }
  const ids: number[] = [];
  // insertion into a small sorted list: n is small (top_k / top_logprobs)
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v === -Infinity) continue;
    if (ids.length === n && v <= x[ids[n - 1]]) continue;
    let j = ids.length < n ? ids.length : n - 1;
    if (ids.length < n) ids.push(i);
    while (j > 0 && x[ids[j - 1]] < v) {
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = i;
  }
  return ids;
}
