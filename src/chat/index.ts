/** The chat format of a model family. */
import { HarmonyChatFormat } from '../harmony/chat-format.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { CheckpointError } from '../util/errors.js';
import type { ChatFormat } from './chat-format.js';

export async function createChatFormat(modelDir: string, family: string, tokenizer: Tokenizer): Promise<ChatFormat> {
  if (family === 'gpt-oss') return new HarmonyChatFormat(tokenizer);
  throw new CheckpointError(`${modelDir}: no chat format for the ${family} family yet`);
}
