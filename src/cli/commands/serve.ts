/** `tessera serve`: the OpenAI-compatible server. */
import type { Command } from 'commander';
import { Tessera } from '../../api/tessera.js';
import { buildServer } from '../../server/app.js';
import { InputError } from '../../util/errors.js';
import { checkActivations, checkDenseWeights, checkKvCacheDtype, checkRepackExperts, REPACK_EXPERTS_HELP, parseIntArg } from '../args.js';
import { parseByteSize } from './sizes.js';

export function register(program: Command): void {
  program.command('serve')
    .description('serve the OpenAI API (chat completions, completions, responses) for one model')
    .requiredOption('--model <dir>', 'checkpoint folder')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port', parseIntArg('--port', 0), 8000)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on every route but /health')
    .option('--served-model-name <name>', 'model name in the API (default: the folder name)')
    .option('--max-num-seqs <n>', 'sequences running at once', parseIntArg('--max-num-seqs', 1), 16)
    .option('--max-model-len <n>', 'longest prompt + output (default: the model\'s context)', parseIntArg('--max-model-len', 2))
    .option('--max-num-batched-tokens <n>', 'token budget of one engine step (chunked prefill)', parseIntArg('--max-num-batched-tokens', 1), 256)
    .option('--kv-cache-size <bytes>', 'KV cache memory, e.g. 4GiB (default: a quarter of free memory)')
    .option('--no-prefix-caching', 'do not reuse cached prompt prefixes')
    .option('--backend <name>', 'compute backend: auto, reference or native', 'auto')
    .option('--threads <n>', 'native threads (default: physical cores)', parseIntArg('--threads', 1))
    .option('--dense-weights <fmt>', 'bf16 (as stored) or int8 (re-quantised)', 'bf16')
    .option('--activations <fmt>', 'f32 (exact) or int8 (q8 activations for MXFP4/int8 weights, as llama.cpp)', 'f32')
    .option('--kv-cache-dtype <type>', 'KV cache elements: f32 (exact), f16 or bf16 (half the memory)', 'f32')
    .option('--repack-experts <mode>', REPACK_EXPERTS_HELP, 'auto')
    .action(async (o) => {
      const t = await Tessera.load(o.model, {
        backend: o.backend, threads: o.threads, denseWeights: checkDenseWeights(o.denseWeights), activations: checkActivations(o.activations), modelName: o.servedModelName,
        kvCacheDtype: checkKvCacheDtype(o.kvCacheDtype),
        repackExperts: checkRepackExperts(o.repackExperts),
        maxNumSeqs: o.maxNumSeqs, maxModelLen: o.maxModelLen, maxBatchedTokens: o.maxNumBatchedTokens,
        kvCacheBytes: o.kvCacheSize === undefined ? undefined : parseByteSize(o.kvCacheSize, '--kv-cache-size'),
        prefixCaching: o.prefixCaching,
      });
      const app = buildServer({ engine: t.engine, tokenizer: t.tokenizer, format: t.format, modelName: t.modelName, apiKey: o.apiKey });
      try {
        await app.listen({ host: o.host, port: o.port });
      } catch (e) {
        await t.close();
        throw new InputError(`--port: cannot listen on ${o.host}:${o.port} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      process.stderr.write(`tessera: serving ${t.modelName} on http://${o.host}:${port}/v1 (max ${t.engine.maxModelLen} tokens per sequence)\n`);
      const stop = async () => {
        await app.close();
        await t.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
