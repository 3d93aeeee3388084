/** Model architectures keyed by config.json's `model_type`. */
import type { Backend } from '../backend/backend.js';
import { CheckpointError } from '../util/errors.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { GptOssModel } from './gpt-oss.js';
import type { CausalLM } from './model.js';

export type ModelLoader = (ckpt: Checkpoint, backend: Backend) => CausalLM;

const LOADERS = new Map<string, ModelLoader>([
  ['gpt_oss', (c, b) => GptOssModel.load(c, b)],
]);

export function registerModel(modelType: string, loader: ModelLoader): void {
  LOADERS.set(modelType, loader);
}

export function supportedModelTypes(): string[] {
  return [...LOADERS.keys()];
}

/** Open a checkpoint folder and build its model on `backend`. */
export function loadModel(dir: string, backend: Backend): CausalLM {
  const ckpt = new Checkpoint(dir);
  try {
    const mt = ckpt.config.model_type;
    if (typeof mt !== 'string') throw new CheckpointError(`${ckpt.configPath}: field "model_type" is missing`);
    const loader = LOADERS.get(mt);
    if (!loader) {
      throw new CheckpointError(
        `${ckpt.configPath}: unknown model_type "${mt}" (supported: ${supportedModelTypes().join(', ')})`,
      );
    }
    return loader(ckpt, backend);
  } finally {
    ckpt.close(); // every tensor the model needs has been read
  }
}
