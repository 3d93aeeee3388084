/** Model architectures keyed by config.json's `model_type`. */
import type { Backend } from '../backend/backend.js';
import { CheckpointError } from '../util/errors.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { GptOssModel } from './gpt-oss.js';
import { NemotronHModel } from './nemotron-h.js';
import type { CausalLM, LoadOptions } from './model.js';

export type ModelLoader = (ckpt: Checkpoint, backend: Backend, opts?: LoadOptions) => CausalLM;

const LOADERS = new Map<string, ModelLoader>([
  ['gpt_oss', (c, b, o) => GptOssModel.load(c, b, o)],
  ['nemotron_h', (c, b, o) => NemotronHModel.load(c, b, o)],
]);

export function registerModel(modelType: string, loader: ModelLoader): void {
  LOADERS.set(modelType, loader);
}

export function supportedModelTypes(): string[] {
  return [...LOADERS.keys()];
}

/** Open a checkpoint folder and build its model on `backend`. */
export function loadModel(dir: string, backend: Backend, opts: LoadOptions = {}): CausalLM {
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
    return loader(ckpt, backend, opts);
  } finally {
    ckpt.close(); // every tensor the model needs has been read
  }
}
