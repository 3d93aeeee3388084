/**
 * `tessera bench --model DIR`: prefill, decode (at depth 0 and 4096), batched decode, time to
 * first token, load time, peak RSS and the decode roofline, on one checkpoint (real shapes,
 * synthetic weights). Depth is set by filling the KV cache positions with stand-in values
 * rather than computing them: attention reads the same number of keys either way, so decode at
 * depth costs what it would. The batched roofline counts the experts each step actually
 * touches (watchExperts).
 */
import { type Backend, type KvDtype, type KvLayerCache, bytesPerExpert } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { loadAddon, NativeBackend } from '../src/backend/native.js';
import { packBatch } from '../src/engine/batch.js';
import { argmax } from '../src/engine/runner.js';
import type { CausalLM, RepackMode } from '../src/models/model.js';
import { loadModel } from '../src/models/registry.js';
import { f32ToBf16, f32ToF16 } from '../src/weights/dtypes.js';
import { type StepProfile, formatProfile, overrideMethod, profileRows, watchOps } from './op-profile.js';

export interface BenchOptions {
  model: string;
  backend: string;
  threads?: number;
  promptTokens: number;
  decodeTokens: number;
  depth: number;
  batchSizes: number[];
  batchedSteps: number;
  /** prefill and depth-0 decode runs (as llama-bench's -r): the figures are their mean */
  repetitions?: number;
  log: (line: string) => void;
  denseWeights?: 'bf16' | 'int8';
  activations?: 'f32' | 'int8';
  kvCacheDtype?: KvDtype;
  repackExperts?: RepackMode;
  /** also time every op of one more prefill and of a few decode steps (1 sequence and the largest batch size) */
  profile?: boolean;
}

export interface BenchResult {
  model: string;
  backend: string;
  dense_weights: string;
  activations: string;
  kv_cache_dtype: string;
  /** --repack-experts as given, and the bytes of experts the backend copied into its second layout at load */
  repack_experts: string;
  repacked_expert_bytes: number;
  /** of those, bytes mapped from the prepared store on disk, and bytes this load wrote into it */
  prepared_bytes_mapped: number;
  prepared_bytes_written: number;
  threads: number;
  load_s: number;
  prefill_tokens: number;
  prefill_tokens_per_s: number;
  /** every prefill / decode run, and their standard deviation (0 for one run) */
  prefill_tokens_per_s_runs: number[];
  prefill_tokens_per_s_sd: number;
  ttft_ms: number;
  decode_tokens: number;
  decode_tokens_per_s: number;
  decode_tokens_per_s_runs: number[];
  decode_tokens_per_s_sd: number;
  decode_tokens_per_s_depth_4096: number;
  depth: number;
  batched_decode_tokens_per_s: Record<string, number>;
  /** weight bytes one batched step reads: the dense weights once, each touched expert once */
  batched_weight_bytes_per_step: Record<string, number>;
  /** sequences × read bandwidth / bytes per step, and the fraction of it reached */
  batched_roofline_tokens_per_s: Record<string, number>;
  batched_roofline_fraction: Record<string, number>;
  /** the read bandwidth both rooflines divide by (bandwidth_gb_per_s, kept for readers of older results) */
  batched_bandwidth_gb_per_s: number;
  peak_rss_bytes: number;
  /** the best of the read-bandwidth probes made through the run (bandwidth_probes_gb_per_s) */
  bandwidth_gb_per_s: number;
  bandwidth_probes_gb_per_s: number[];
  weight_bytes_per_token: number;
  roofline_tokens_per_s: number;
  roofline_fraction: number;
  /** with `profile`: where the time of one prefill of prefill_tokens goes, and of a decode step per sequence count (op-profile.ts) */
  prefill_profile?: StepProfile;
  decode_profile?: Record<string, StepProfile>;
}

function randomIds(n: number, V: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) % Math.min(V, 100000)));
}

const now = () => performance.now() / 1000;

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** the sample standard deviation (0 for fewer than two values) */
function sd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** the bandwidth probe's buffer: 16× a 32 MB L3 */
const PROBE_BYTES = 512 << 20;

/**
 * Stand-in keys and values for the positions placed at depth: written, so that attention
 * reads them from memory as it would after a real prefill (never-written pages all map to the
 * kernel's one zero page and read from cache, which made decode at depth look cheaper).
 */
export function fillKv(layers: KvLayerCache[]): void {
  let s = 12345;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) - 0.5;
  for (const L of layers) {
    const enc = L.dtype === 'f16' ? f32ToF16 : L.dtype === 'bf16' ? f32ToBf16 : null;
    for (const a of [L.k, L.v]) for (let i = 0; i < a.length; i++) a[i] = enc ? enc(rnd()) : rnd();
  }
}

/**
 * Counts, over the MoE calls made until `stop`, the expert bytes read beyond the single-token
 * figure (decodeBytesPerToken counts k experts per MoE layer): one pass over an expert serves
 * every token routed to it, so a batch of tokens reads each expert it touches once.
 */
function watchExperts(backend: Backend): { stop(): number } {
  const orig = backend.moeExperts;
  let extra = 0;
  const restore = overrideMethod(backend, 'moeExperts', function (this: Backend, ...args: Parameters<Backend['moeExperts']>) {
    const [, , routing, bank] = args;
    extra += (new Set(routing.experts).size - routing.k) * bytesPerExpert(bank);
    return orig.apply(this, args);
  });
  return {
    stop() {
      restore();
      return extra;
    },
  };
}

/** tokens/s of `steps` decode steps (after one warm-up step, before which `warmed` is called) */
function decodeRun(model: CausalLM, depth: number, steps: number, seqs: number, warmed?: () => void): number {
  const cache = model.createCache({ numBlocks: seqs * (Math.ceil((depth + steps + 1) / 16) + 1), blockSize: 16, maxSeqs: seqs });
  const caches = Array.from({ length: seqs }, () => cache.newSequence());
  // a one-token prompt per sequence, placed after `depth` already-cached positions
  for (const c of caches) {
    c.reserve(depth);
    c.length = depth;
    // recurrent models: accept the (zero) state as the state at that depth
    (cache as Partial<{ assumeState(s: typeof c): void }>).assumeState?.(c);
  }
  if (depth > 0) fillKv(cache.kvLayers());
  let next = caches.map((_, i) => [randomIds(1, model.vocabSize, 7 + i)[0]]);
  let t0 = 0;
  // one step's logits, reused from step to step as the engine does (Engine.logitsBuf)
  const buf = new Float32Array(seqs * model.vocabSize);
  for (let s = 0; s <= steps; s++) {
    if (s === 1) {
      warmed?.();
      t0 = now(); // step 0 warms up
    }
    const logits = model.forward(packBatch(caches.map((c, i) => ({ cache: c, tokens: next[i], logits: 'last' as const }))), cache, buf);
    next = caches.map((_, i) => [argmax(logits, i * model.vocabSize, model.vocabSize)]);
  }
  const dt = now() - t0;
  caches.forEach((c) => c.free());
  return (steps * seqs) / dt;
}

export function runBench(o: BenchOptions): BenchResult {
  const backend = createBackend(o.backend, { threads: o.threads, activations: o.activations });
  const addon = loadAddon();
  const t0 = now();
  const model = loadModel(o.model, backend, { denseWeights: o.denseWeights, kvCacheDtype: o.kvCacheDtype, repackExperts: o.repackExperts });
  const loadS = now() - t0;
  const repacked = backend instanceof NativeBackend ? backend.repackedBytes : 0;
  const preparedMapped = backend instanceof NativeBackend ? backend.preparedBytesMapped : 0;
  const preparedWritten = backend instanceof NativeBackend ? backend.preparedBytesWritten : 0;
  const where = preparedMapped ? `, ${(preparedMapped / 1e9).toFixed(2)} GB mapped from the prepared store` : '';
  const wrote = preparedWritten ? `, ${(preparedWritten / 1e9).toFixed(2)} GB written to the prepared store` : '';
  o.log(`loaded ${o.model} on ${backend.name} in ${loadS.toFixed(2)} s (${(model.weightBytes() / 1e9).toFixed(2)} GB of weights` +
    `${repacked ? `; ${(repacked / 1e9).toFixed(2)} GB of experts repacked${where}${wrote}` : ''}; --repack-experts ${o.repackExperts ?? 'auto'})`);
  // the read-bandwidth probe (the rooflines): a buffer far past the caches, held for the rest
  // of the run and probed between its parts; the rooflines divide by the best probe, what the
  // machine could give. (On a shared host the bandwidth moves from minute to minute: one run on
  // a Zen 5 VM probed 25-62 GB/s, and the mean of the probes around a decode put it at 67% of
  // its roofline in one run and 127% in the next.) Its bytes are taken out of the peak RSS.
  // Made after the load: made before it, its 512 MB slowed the load's page allocation (huge
  // pages for the re-quantised weights) from 4.8-6.6 s to 8.4-10.3 s for gpt-oss-20b.
  const probeBuf = addon && backend instanceof NativeBackend ? new Uint8Array(PROBE_BYTES).fill(1) : null;
  const probes: number[] = [];
  const probe = () => {
    if (probeBuf) probes.push(addon!.readBandwidth(probeBuf, 4));
  };
  if (probeBuf) addon!.readBandwidth(probeBuf, 1);

  // prefill: one prompt of promptTokens, logits for the last position (this is also TTFT)
  const prompt = randomIds(o.promptTokens, model.vocabSize, 1);
  const cache = model.createCache({ numBlocks: Math.ceil((o.promptTokens + 1) / 16) + 1, blockSize: 16 });
  const warm = cache.newSequence();
  model.forward(packBatch([{ cache: warm, tokens: prompt.slice(0, 8), logits: 'last' }]), cache);
  warm.free();
  const reps = Math.max(1, o.repetitions ?? 1);
  const prefills: number[] = [], ttfts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const seq = cache.newSequence();
    const tp = now();
    const logits = model.forward(packBatch([{ cache: seq, tokens: prompt, logits: 'last' }]), cache);
    argmax(logits);
    const prefillS = now() - tp;
    seq.free();
    prefills.push(o.promptTokens / prefillS);
    ttfts.push(prefillS * 1000);
  }
  const prefill = mean(prefills), ttftMs = mean(ttfts);
  o.log(`prefill ${o.promptTokens} tokens: ${prefill.toFixed(2)} tokens/s${reps > 1 ? ` ± ${sd(prefills).toFixed(2)} over ${reps} runs` : ''} (time to first token ${ttftMs.toFixed(0)} ms)`);

  // each decode run is bracketed by bandwidth probes
  probe();
  const decodes: number[] = [];
  for (let r = 0; r < reps; r++) {
    decodes.push(decodeRun(model, 0, o.decodeTokens, 1));
    probe();
  }
  const decode = mean(decodes);
  o.log(`decode ${o.decodeTokens} tokens at depth 0: ${decode.toFixed(2)} tokens/s${reps > 1 ? ` ± ${sd(decodes).toFixed(2)} over ${reps} runs` : ''}`);
  const decodeDeep = decodeRun(model, o.depth, Math.max(8, Math.floor(o.decodeTokens / 4)), 1);
  o.log(`decode at depth ${o.depth}: ${decodeDeep.toFixed(2)} tokens/s`);
  const bytesPerToken = model.decodeBytesPerToken?.() ?? model.weightBytes();
  // batched: each step reads the dense weights once and every expert its tokens touch once
  const batched: Record<string, number> = {}, stepBytes: Record<string, number> = {};
  probe();
  for (const b of o.batchSizes) {
    const watch = watchExperts(backend);
    let extra = 0;
    try {
      batched[String(b)] = decodeRun(model, 128, o.batchedSteps, b);
    } finally {
      extra = watch.stop();
    }
    stepBytes[String(b)] = bytesPerToken + extra / (o.batchedSteps + 1); // decodeRun runs steps + 1 forwards
    o.log(`batched decode, ${b} sequences: ${batched[String(b)].toFixed(2)} tokens/s (${(stepBytes[String(b)] / 1e9).toFixed(3)} GB of weights per step)`);
  }
  if (o.batchSizes.length) probe();
  // the rooflines: sequences × the best read bandwidth probed, over the weight bytes a step reads
  const bw = probes.length ? Math.max(...probes) : 0;
  const roofline = bw > 0 ? bw / bytesPerToken : 0;
  const batchedRoof: Record<string, number> = {}, batchedFrac: Record<string, number> = {};
  for (const b of o.batchSizes) {
    batchedRoof[String(b)] = bw > 0 ? (b * bw) / stepBytes[String(b)] : 0;
    batchedFrac[String(b)] = batchedRoof[String(b)] > 0 ? batched[String(b)] / batchedRoof[String(b)] : 0;
  }

  const peakRss = process.resourceUsage().maxRSS * 1024 - (probeBuf ? probeBuf.byteLength : 0);
  // --profile, after every figure above: the ops of one more prefill and of a few decode steps
  let prefillProfile: StepProfile | undefined;
  let decodeProfile: Record<string, StepProfile> | undefined;
  if (o.profile) {
    // run() times `steps` steps (resetting the watch after any warm-up) and returns ms per step
    const profiled = (sequences: number, tokens: number, steps: number, run: (watch: ReturnType<typeof watchOps>) => number): StepProfile => {
      const watch = watchOps(backend);
      let ms = 0, groups: ReturnType<typeof watch.stop>;
      try {
        ms = run(watch);
      } finally {
        groups = watch.stop(); // the backend's own methods back, whatever happened
      }
      const ops = profileRows(groups, steps);
      const p: StepProfile = { sequences, tokens_per_step: tokens, steps, step_ms: ms, ops_ms: ops.reduce((a, r) => a + r.ms_per_step, 0), ops };
      for (const l of formatProfile(p)) o.log(l);
      return p;
    };
    prefillProfile = profiled(1, o.promptTokens, 1, () => {
      const seq = cache.newSequence();
      const tp = now();
      model.forward(packBatch([{ cache: seq, tokens: prompt, logits: 'last' }]), cache);
      seq.free();
      return (now() - tp) * 1000;
    });
    const steps = 8;
    decodeProfile = {};
    for (const seqs of [...new Set([1, Math.max(1, ...o.batchSizes)])]) {
      decodeProfile[String(seqs)] = profiled(seqs, seqs, steps, (watch) => {
        const rate = decodeRun(model, 0, steps, seqs, () => watch.reset());
        return rate > 0 ? (1000 * seqs) / rate : 0;
      });
    }
  }
  const res: BenchResult = {
    model: o.model, backend: backend.name, dense_weights: o.denseWeights ?? 'bf16', activations: o.activations ?? 'f32', kv_cache_dtype: o.kvCacheDtype ?? 'f32',
    repack_experts: o.repackExperts ?? 'auto', repacked_expert_bytes: repacked, prepared_bytes_mapped: preparedMapped, prepared_bytes_written: preparedWritten, threads: backend instanceof NativeBackend ? backend.threads : 1,
    load_s: loadS, prefill_tokens: o.promptTokens, prefill_tokens_per_s: prefill,
    prefill_tokens_per_s_runs: prefills, prefill_tokens_per_s_sd: sd(prefills), ttft_ms: ttftMs,
    decode_tokens: o.decodeTokens, decode_tokens_per_s: decode, decode_tokens_per_s_runs: decodes, decode_tokens_per_s_sd: sd(decodes),
    decode_tokens_per_s_depth_4096: decodeDeep, depth: o.depth,
    batched_decode_tokens_per_s: batched, batched_weight_bytes_per_step: stepBytes,
    batched_roofline_tokens_per_s: batchedRoof, batched_roofline_fraction: batchedFrac, batched_bandwidth_gb_per_s: bw / 1e9,
    peak_rss_bytes: peakRss,
    bandwidth_gb_per_s: bw / 1e9, bandwidth_probes_gb_per_s: probes.map((p) => p / 1e9), weight_bytes_per_token: bytesPerToken,
    roofline_tokens_per_s: roofline, roofline_fraction: roofline > 0 ? decode / roofline : 0,
    ...(prefillProfile ? { prefill_profile: prefillProfile } : {}),
    ...(decodeProfile ? { decode_profile: decodeProfile } : {}),
  };
  o.log(`read bandwidth ${(bw / 1e9).toFixed(1)} GB/s (best of ${probes.length} probes: ${probes.map((p) => (p / 1e9).toFixed(1)).join(', ')}); ${(bytesPerToken / 1e9).toFixed(3)} GB of weights per token; roofline ${roofline.toFixed(2)} tokens/s; reached ${(100 * res.roofline_fraction).toFixed(0)}%`);
  if (o.batchSizes.length) {
    o.log('batched roofline: ' +
      o.batchSizes.map((b) => `${b}: ${batchedRoof[String(b)].toFixed(2)} tokens/s, reached ${(100 * batchedFrac[String(b)]).toFixed(0)}%`).join('; '));
  }
  return res;
}
