/** Tessera's public library API. */
export { loadModel, registerModel, supportedModelTypes } from './models/registry.js';
export { createBackend } from './backend/index.js';
export type { Backend } from './backend/backend.js';
export type { CausalLM, ForwardBatch, ModelCache } from './models/model.js';
export { packBatch } from './engine/batch.js';
export { promptLogits, greedyGenerate } from './engine/runner.js';
export { TesseraError, CheckpointError, InputError } from './util/errors.js';

// the engine, the server and the chat formats, in-process
export { Tessera, type LoadOptions, type ChatOptions, type ChatEvent } from './api/tessera.js';
export type { TextStreamEvent } from './api/generation.js';
export { buildServer, type ServerOptions } from './server/app.js';
export type { ChatFormat, OutputEvent, ParsedOutput, ToolCall, RenderedPrompt } from './chat/chat-format.js';
export { createChatFormat } from './chat/index.js';
export { HarmonyChatFormat } from './harmony/chat-format.js';
export { JinjaChatFormat } from './chat/jinja-chat-format.js';
export { loadTokenizer, builtinTokenizer, O200kTokenizer, HfTokenizer, IncrementalDetokenizer, type Tokenizer } from './tokenizer/index.js';
export { writeSynthetic, synthSpecFor } from './weights/synth.js';
