/** `tessera synth`: a synthetic checkpoint at real shapes, in the released layout. */
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { readJsonFile } from '../../weights/checkpoint.js';
import { PRESETS, synthSpecFor, writeSynthetic } from '../../weights/synth.js';
import { InputError } from '../../util/errors.js';
import { parseIntArg } from '../args.js';

export function register(program: Command): void {
  program.command('synth')
    .description(`write a checkpoint with random weights at real shapes (presets: ${Object.keys(PRESETS).join(', ')})`)
    .option('--preset <name>', 'model shape preset')
    .option('--config <file>', 'a config.json to use instead of a preset')
    .option('--quant <format>', `Nemotron-H only: bf16 (default) or nvfp4 (routed and shared experts in ModelOpt's NVFP4 layout, the rest BF16)`)
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'random seed', parseIntArg('--seed', 0), 1234)
    .option('--shard-gb <n>', 'maximum shard size in GB', parseIntArg('--shard-gb', 1), 4)
    .action((o) => {
      if (!o.preset === !o.config) throw new InputError('synth: give exactly one of --preset or --config');
      const spec = synthSpecFor(o.preset ?? readJsonFile(o.config), o.quant);
      const bar = new SingleBar({ format: 'synth [{bar}] {percentage}% | {value}/{total} MB | eta {eta}s', hideCursor: true, noTTYOutput: false }, Presets.shades_classic);
      let started = false;
      writeSynthetic(spec, o.out, {
        seed: o.seed,
        shardBytes: o.shardGb * 1024 ** 3,
        progress: (done, total) => {
          if (!started) {
            bar.start(Math.round(total / 1e6), 0);
            started = true;
          }
          bar.update(Math.round(done / 1e6));
        },
      });
      bar.stop();
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
