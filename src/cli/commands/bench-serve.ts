/** `tessera bench-serve`: concurrent streaming clients against a running server. */
import type { Command } from 'commander';
import { runServeBench } from '../../../bench/serve-bench.js';
import { parseIntArg } from '../args.js';
import { InputError } from '../../util/errors.js';

export function register(program: Command): void {
  program.command('bench-serve')
    .description('serving benchmark: N concurrent streaming clients; requests/s, tokens/s, TTFT and ITL percentiles')
    .option('--url <url>', 'server base URL', 'http://127.0.0.1:8000')
    .option('--model <name>', 'model name to send')
    .option('--api-key <key>', 'bearer token')
    .option('--clients <list>', 'concurrent clients, one run each', '1,4,16')
    .option('--requests <n>', 'requests per client', parseIntArg('--requests', 1), 2)
    .option('--prompt-tokens <n>', 'approximate prompt length', parseIntArg('--prompt-tokens', 1), 128)
    .option('--output-tokens <n>', 'tokens per response', parseIntArg('--output-tokens', 1), 64)
    .option('--endpoint <name>', 'completions (raw text: every token streams) or chat (through the chat parser)', 'completions')
    .option('--json', 'print one JSON object per run')
    .action(async (o) => {
      if (o.endpoint !== 'completions' && o.endpoint !== 'chat') throw new InputError(`--endpoint: expected completions or chat, got "${o.endpoint}"`);
      for (const c of String(o.clients).split(',').map((s: string) => parseIntArg('--clients', 1)(s))) {
        const r = await runServeBench({
          url: o.url.replace(/\/$/, ''), model: o.model, apiKey: o.apiKey, clients: c, requestsPerClient: o.requests,
          promptTokens: o.promptTokens, outputTokens: o.outputTokens, endpoint: o.endpoint,
          log: o.json ? undefined : (l) => process.stderr.write(l + '\n'),
        });
        process.stdout.write(o.json ? JSON.stringify(r) + '\n'
          : `${c} clients: ${r.requests_per_s} req/s, ${r.output_tokens_per_s} output tok/s, TTFT p50 ${r.ttft_ms.p50} ms p90 ${r.ttft_ms.p90} ms, ITL p50 ${r.itl_ms.p50} ms p90 ${r.itl_ms.p90} ms\n`);
      }
    });
}
