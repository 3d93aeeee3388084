/** The chat format of a model family. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HarmonyChatFormat } from '../harmony/chat-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { CheckpointError } from '../util/errors.js';
import type { ChatFormat } from './chat-format.js';
import { JinjaChatFormat } from './jinja-chat-format.js';

/** gpt-oss speaks harmony; other families use the chat template their checkpoint ships. */
export async function createChatFormat(modelDir: string, family: string, tokenizer: Tokenizer): Promise<ChatFormat> {
  if (family === 'gpt-oss') return new HarmonyChatFormat(tokenizer);
  const hasTemplate = fs.existsSync(path.join(modelDir, 'chat_template.jinja')) || fs.existsSync(path.join(modelDir, 'tokenizer_config.json'));
  if (!hasTemplate) throw new CheckpointError(`${modelDir}: no chat template for the ${family} model (chat_template.jinja or tokenizer_config.json)`);
  return JinjaChatFormat.fromDir(modelDir, tokenizer);
}
