/** Tessera's public library API. */
export { loadModel, registerModel, supportedModelTypes } from './models/registry.js';
export { createBackend } from './backend/index.js';
export type { Backend } from './backend/backend.js';
export type { CausalLM, ForwardBatch, ModelCache } from './models/model.js';
export { packBatch } from './engine/batch.js';
export { promptLogits, greedyGenerate } from './engine/runner.js';
export { TesseraError, CheckpointError, InputError } from './util/errors.js';
