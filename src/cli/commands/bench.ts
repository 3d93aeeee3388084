/** `tessera bench`: throughput, latency, memory and roofline figures for one checkpoint. */
import type { Command } from 'commander';
import { runBench } from '../../../bench/model-bench.js';
import { checkActivations, checkDenseWeights, checkKvCacheDtype, checkRepackExperts, REPACK_EXPERTS_HELP, parseIntArg } from '../args.js';

export function register(program: Command): void {
  program.command('bench')
    .description('measure prefill, decode, batched decode, TTFT, load time, peak RSS and the decode roofline')
    .requiredOption('--model <dir>', 'checkpoint folder (e.g. from `tessera synth`)')
    .option('--backend <name>', 'compute backend', 'auto')
    .option('--threads <n>', 'native threads (default: physical cores)', parseIntArg('--threads', 1))
    .option('--prompt-tokens <n>', 'prefill prompt length', parseIntArg('--prompt-tokens', 1), 512)
    .option('--decode-tokens <n>', 'decoded tokens', parseIntArg('--decode-tokens', 1), 128)
    .option('--depth <n>', 'context depth for the second decode figure', parseIntArg('--depth', 0), 4096)
    .option('--batch <list>', 'batched decode sizes', '1,4,16')
    .option('--batched-steps <n>', 'decode steps per batched run', parseIntArg('--batched-steps', 1), 16)
    .option('--repetitions <n>', 'prefill and decode runs; their mean is reported, with each run and the standard deviation', parseIntArg('--repetitions', 1), 1)
    .option('--dense-weights <fmt>', 'bf16 (as stored, exact) or int8 (re-quantised, ≈ q8_0 bytes)', 'bf16')
    .option('--activations <fmt>', 'f32 (exact) or int8 (q8 activations for MXFP4/int8 weights, as llama.cpp)', 'f32')
    .option('--kv-cache-dtype <type>', 'KV cache elements: f32 (exact), f16 or bf16 (half the memory)', 'f32')
    .option('--repack-experts <mode>', REPACK_EXPERTS_HELP, 'auto')
    .option('--profile', 'also time each op of one more prefill and of a few decode steps (1 sequence and the largest --batch): ms, weight bytes and GB/s, multiply-adds and GMAC/s per op')
    .option('--json', 'print one JSON object')
    .action((o) => {
      const denseWeights = checkDenseWeights(o.denseWeights);
      const activations = checkActivations(o.activations);
      const kvCacheDtype = checkKvCacheDtype(o.kvCacheDtype);
      const repackExperts = checkRepackExperts(o.repackExperts);
      const log = o.json ? (l: string) => process.stderr.write(l + '\n') : (l: string) => process.stdout.write(l + '\n');
      const res = runBench({
        model: o.model, backend: o.backend, threads: o.threads, promptTokens: o.promptTokens,
        decodeTokens: o.decodeTokens, depth: o.depth,
        batchSizes: String(o.batch).split(',').map((s: string) => parseIntArg('--batch', 1)(s)),
        batchedSteps: o.batchedSteps, repetitions: o.repetitions, log, denseWeights, activations, kvCacheDtype, repackExperts,
        profile: Boolean(o.profile),
      });
      if (o.json) process.stdout.write(JSON.stringify(res) + '\n');
    });
}
