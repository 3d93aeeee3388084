/** `tessera bench-tokenizer`: o200k encode throughput vs @dqbd/tiktoken. */
import type { Command } from 'commander';
import { runTokenizerBench } from '../../../bench/tokenizer-bench.js';

export function register(program: Command): void {
  program.command('bench-tokenizer')
    .description('encode throughput (MB/s) of the o200k tokenizer vs @dqbd/tiktoken: short chat turns and a 1 MB document')
    .option('--json', 'print one JSON object')
    .action(async (o) => {
      const res = await runTokenizerBench(o.json ? () => {} : (l) => process.stdout.write(l + '\n'));
      if (o.json) process.stdout.write(JSON.stringify(res) + '\n');
    });
}
