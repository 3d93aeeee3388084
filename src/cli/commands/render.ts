/**
 * `tessera render`: an OpenAI request body on stdin → the prompt the engine would run, as JSON
 * {text, ids}. Chat Completions by default, `--responses` for a Responses body; the tokenizer
 * comes from `--model DIR`, else the built-in o200k_harmony. A model other than gpt-oss renders
 * through the chat template its folder ships.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { createChatFormat } from '../../chat/index.js';
import type { ChatFormat } from '../../chat/chat-format.js';
import { HarmonyChatFormat } from '../../harmony/chat-format.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { harmonyTokenizer } from '../../harmony/default-tokenizer.js';
import { InputError } from '../../util/errors.js';

function readStdinJson(): Record<string, unknown> {
  let raw: string;
  try {
    raw = fs.readFileSync(0, 'utf8');
  } catch (e) {
    throw new InputError(`render: cannot read stdin: ${e instanceof Error ? e.message : String(e)}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (e) {
    throw new InputError(`render: stdin is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InputError('render: the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function modelType(dir: string): string {
  const file = path.join(dir, 'config.json');
  try {
    return String((JSON.parse(fs.readFileSync(file, 'utf8')) as { model_type?: unknown }).model_type ?? 'unknown');
  } catch (e) {
    throw new InputError(`--model: cannot read ${file} (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function register(program: Command): void {
  program.command('render')
    .description('print the prompt {text, ids} for a Chat Completions request body on stdin (or a Responses body with --responses)')
    .option('--model <dir>', 'checkpoint folder (its tokenizer); default the built-in o200k_harmony')
    .option('--responses', 'the body is a Responses API request')
    .option('--date <yyyy-mm-dd>', 'the current date written into the system message (default today)')
    .action(async (o) => {
      let now: (() => Date) | undefined;
      if (o.date !== undefined) {
        const d = new Date(`${o.date}T00:00:00Z`);
        if (!/^\d{4}-\d{2}-\d{2}$/.test(o.date) || Number.isNaN(d.getTime())) throw new InputError(`--date: "${o.date}" is not a YYYY-MM-DD date`);
        now = () => d;
      }
      let format: ChatFormat;
      const type = o.model ? modelType(o.model) : 'gpt_oss';
      if (type === 'gpt_oss') format = new HarmonyChatFormat(harmonyTokenizer(o.model), { now });
      else format = await createChatFormat(o.model, type, await loadTokenizer(o.model));
      const body = readStdinJson();
      const p = o.responses ? format.renderResponses(body) : format.renderChatCompletion(body);
      process.stdout.write(`${JSON.stringify({ text: p.text, ids: p.ids })}\n`);
    });
}
