/**
 * `tessera chat`: an interactive chat in the terminal. The answer streams; reasoning streams
 * dimmed above it (or folded to one line with /reasoning off); /effort switches the reasoning
 * effort; the conversation is kept and re-rendered by the chat format's rules. Ctrl-C stops a
 * running answer, Ctrl-C at the prompt or Ctrl-D exits.
 */
import * as readline from 'node:readline';
import type { Command } from 'commander';
import { Tessera } from '../../api/tessera.js';
import { InputError, TesseraError } from '../../util/errors.js';
import { parseIntArg, checkActivations, checkDenseWeights, checkKvCacheDtype, checkRepackExperts, REPACK_EXPERTS_HELP } from '../args.js';

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const HELP = 'commands: /effort low|medium|high, /reasoning on|off, /clear, /exit';

export function register(program: Command): void {
  program.command('chat')
    .description('chat with a model in the terminal')
    .requiredOption('--model <dir>', 'checkpoint folder')
    .option('--system <text>', 'system prompt')
    .option('--effort <level>', 'reasoning effort: low, medium or high', 'medium')
    .option('--max-tokens <n>', 'most tokens per answer', parseIntArg('--max-tokens', 1), 2048)
    .option('--temperature <t>', 'sampling temperature', '1')
    .option('--backend <name>', 'compute backend', 'auto')
    .option('--threads <n>', 'native threads', parseIntArg('--threads', 1))
    .option('--dense-weights <fmt>', 'bf16 (as stored) or int8 (re-quantised)', 'bf16')
    .option('--activations <fmt>', 'f32 (exact) or int8 (q8 activations, as llama.cpp)', 'f32')
    .option('--kv-cache-dtype <type>', 'KV cache elements: f32 (exact), f16 or bf16 (half the memory)', 'f32')
    .option('--repack-experts <mode>', REPACK_EXPERTS_HELP, 'auto')
    .action(async (o) => {
      if (!['low', 'medium', 'high'].includes(o.effort)) throw new InputError(`--effort: expected low, medium or high, got "${o.effort}"`);
      const color = process.stdout.isTTY === true;
      const dim = (s: string) => (color ? DIM + s + RESET : s);
      // the flags are checked before anything loads
      const load = {
        backend: o.backend, threads: o.threads, maxNumSeqs: 1,
        denseWeights: checkDenseWeights(o.denseWeights), activations: checkActivations(o.activations),
        kvCacheDtype: checkKvCacheDtype(o.kvCacheDtype),
        repackExperts: checkRepackExperts(o.repackExperts),
      };
      process.stderr.write(dim(`loading ${o.model} ...\n`));
      const t = await Tessera.load(o.model, load);
      process.stderr.write(dim(`ready. ${HELP}\n`));
      let effort: string = o.effort;
      let showReasoning = true;
      const history: Record<string, unknown>[] = o.system ? [{ role: 'system', content: o.system }] : [];
      const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
      let running: AbortController | null = null;
      let closing = false;
      rl.on('SIGINT', () => {
        if (running) running.abort();
        else rl.close();
      });
      const ask = () => new Promise<string | null>((resolve) => {
        if (closing) return resolve(null);
        rl.question('> ', resolve);
        rl.once('close', () => resolve(null));
      });
      rl.on('close', () => { closing = true; running?.abort(); });
      for (;;) {
        const line = await ask();
        if (line === null) break;
        const text = line.trim();
        if (!text) continue;
        if (text.startsWith('/')) {
          const [cmd, arg] = text.split(/\s+/);
          if (cmd === '/exit' || cmd === '/quit') break;
          else if (cmd === '/effort' && ['low', 'medium', 'high'].includes(arg)) effort = arg;
          else if (cmd === '/reasoning' && (arg === 'on' || arg === 'off')) showReasoning = arg === 'on';
          else if (cmd === '/clear') history.splice(o.system ? 1 : 0);
          else process.stdout.write(`${HELP}\n`);
          continue;
        }
        history.push({ role: 'user', content: text });
        running = new AbortController();
        let inReasoning = false;
        let reasoningChars = 0;
        try {
          const req = { messages: history, reasoning_effort: effort, max_tokens: o.maxTokens, temperature: Number(o.temperature) };
          for await (const e of t.chat(req, { signal: running.signal })) {
            if (e.type === 'reasoning') {
              reasoningChars += e.delta.length;
              if (showReasoning) process.stdout.write(dim(e.delta));
              else if (!inReasoning) process.stdout.write(dim('(thinking…)'));
              inReasoning = true;
            } else if (e.type === 'content') {
              if (inReasoning) process.stdout.write(showReasoning ? '\n\n' : dim(` ${reasoningChars} chars of reasoning\n`));
              inReasoning = false;
              process.stdout.write(e.delta);
            } else if (e.type === 'tool_call_start') {
              process.stdout.write(dim(`\n[tool call ${e.name}] `));
            } else if (e.type === 'tool_call_arguments') {
              process.stdout.write(dim(e.delta));
            } else if (e.type === 'done') {
              process.stdout.write('\n');
              if (e.finishReason === 'abort') process.stdout.write(dim('(stopped)\n'));
              if (e.finishReason === 'error') process.stdout.write(`error: ${e.error}\n`);
              // keep the answer (and its reasoning: the format decides what to drop next turn)
              history.push({ role: 'assistant', content: e.output.content, reasoning_content: e.output.reasoning || undefined });
            }
          }
        } catch (err) {
          process.stdout.write(`\n${err instanceof TesseraError ? err.message : String(err)}\n`);
          history.pop();
        }
        running = null;
      }
      rl.close();
      await t.close();
    });
}
