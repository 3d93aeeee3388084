/**
 * `tessera` command line. Every command is a thin layer over the library; errors end with one
 * line naming what is wrong and a non-zero exit.
 */
import * as fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { createBackend, BackendName } from '../backend/index.js';
import { runConformance } from '../conformance/runner.js';
import { greedyGenerate, promptLogits } from '../engine/runner.js';
import { speculativeGreedy } from '../engine/speculative.js';
import { loadModel } from '../models/registry.js';
import { TesseraError, InputError } from '../util/errors.js';
import { checkActivations, checkDenseWeights, checkKvCacheDtype, checkRepackExperts, REPACK_EXPERTS_HELP, parseFloatArg, parseIds, parseIntArg } from './args.js';
import { COMMANDS } from './commands/index.js';

function backendOption(cmd: Command): Command {
  return cmd.option('--backend <name>', 'compute backend: auto, reference or native', 'auto');
}

function precisionOptions(cmd: Command): Command {
  return cmd
    .option('--dense-weights <fmt>', 'bf16 (as stored, exact) or int8 (re-quantised, ≈ q8_0 bytes)', 'bf16')
    .option('--activations <fmt>', 'f32 (exact) or int8 (q8 activations for MXFP4/int8 weights, as llama.cpp; native backend)', 'f32')
    .option('--kv-cache-dtype <type>', 'KV cache elements: f32 (exact), f16 or bf16 (half the memory)', 'f32')
    .option('--repack-experts <mode>', REPACK_EXPERTS_HELP, 'auto');
}

/** the backend and load options of --backend / --dense-weights / --activations / --kv-cache-dtype / --repack-experts */
function modelFor(o: { model: string; backend: string; denseWeights?: string; activations?: string; kvCacheDtype?: string; repackExperts?: string }) {
  const denseWeights = checkDenseWeights(o.denseWeights);
  const kvCacheDtype = checkKvCacheDtype(o.kvCacheDtype);
  const repackExperts = checkRepackExperts(o.repackExperts);
  return loadModel(o.model, createBackend(o.backend as BackendName, { activations: checkActivations(o.activations) }), { denseWeights, kvCacheDtype, repackExperts });
}

export function buildProgram(): Command {
  const program = new Command();
  program.name('tessera').description('Exact and fast inference for gpt-oss and Nemotron-H').exitOverride();

  precisionOptions(backendOption(
    program.command('logits')
      .description('write float32 little-endian logits [T, V] for every input position')
      .requiredOption('--model <dir>', 'checkpoint folder')
      .requiredOption('--ids <ids>', 'comma-separated token ids')
      .requiredOption('--out <file>', 'output file')
      .option('--chunk <n>', 'prefill in chunks of n tokens (0 = one pass)', parseIntArg('--chunk', 0), 0),
  )).action((o) => {
    const ids = parseIds(o.ids);
    const model = modelFor(o);
    const logits = promptLogits(model, ids, o.chunk);
    const buf = Buffer.alloc(logits.length * 4);
    for (let i = 0; i < logits.length; i++) buf.writeFloatLE(logits[i], 4 * i);
    try {
      fs.writeFileSync(o.out, buf);
    } catch (e) {
      throw new InputError(`--out: cannot write ${o.out} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  });

  precisionOptions(backendOption(
    program.command('generate')
      .description('generate tokens through the KV cache')
      .requiredOption('--model <dir>', 'checkpoint folder')
      .requiredOption('--ids <ids>', 'comma-separated prompt token ids')
      .option('--max-new-tokens <n>', 'tokens to generate', parseIntArg('--max-new-tokens', 0), 16)
      .option('--temperature <t>', 'sampling temperature (0 = greedy)', parseFloatArg('--temperature', 0), 0)
      .option('--json', 'print {"output_ids": [...]}')
      .option('--speculative-tokens <k>', 'draft k tokens per step with the model\'s MTP head (greedy output unchanged)',
        parseIntArg('--speculative-tokens', 0), 0),
  )).action((o) => {
    const ids = parseIds(o.ids);
    if (o.temperature !== 0) throw new InputError('--temperature: only 0 (greedy) is supported by `generate` in this version');
    const model = modelFor(o);
    if (o.speculativeTokens > 0) {
      const r = speculativeGreedy(model, ids, o.maxNewTokens, o.speculativeTokens);
      const rate = r.drafted > 0 ? r.accepted / r.drafted : 0;
      if (o.json) {
        process.stdout.write(JSON.stringify({ output_ids: r.tokens, acceptance_rate: rate, drafted_tokens: r.drafted, accepted_tokens: r.accepted }) + '\n');
      } else {
        process.stdout.write(r.tokens.join(',') + '\n');
        process.stderr.write(`speculative: ${r.accepted}/${r.drafted} drafts accepted (${(100 * rate).toFixed(1)}%)\n`);
      }
      return;
    }
    const out = greedyGenerate(model, ids, o.maxNewTokens);
    if (o.json) process.stdout.write(JSON.stringify({ output_ids: out }) + '\n');
    else process.stdout.write(out.join(',') + '\n');
  });

  backendOption(
    program.command('conformance')
      .description('run every fixture under DIR; ends with "N passed, M failed"')
      .argument('<dir>', 'fixtures folder (searched to any depth)'),
  ).action(async (dir: string, o) => {
    if (!fs.existsSync(dir)) throw new InputError(`conformance: ${dir}: no such directory`);
    let passed = 0;
    let failed = 0;
    for await (const r of runConformance(dir, { backend: o.backend })) {
      if (r.ok) passed++;
      else failed++;
      process.stdout.write(`${r.ok ? 'PASS' : 'FAIL'} ${r.name}  ${r.detail}\n`);
    }
    process.stdout.write(`${passed} passed, ${failed} failed\n`);
    if (failed > 0 || passed === 0) process.exitCode = 1;
  });

  for (const register of COMMANDS) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its message; help and version exit 0
      process.exitCode = e.exitCode;
      return;
    }
    const msg = e instanceof TesseraError ? e.message : `internal error: ${(e as Error).message ?? e}`;
    process.stderr.write(`tessera: ${msg}\n`);
    if (process.env.TESSERA_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  }
}
