/** Backend selection: the native addon where it is built and supported, else the TS reference. */
import type { Backend } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { InputError } from '../util/errors.js';

export type BackendName = 'auto' | 'reference' | 'native';

export function createBackend(name: BackendName = 'auto'): Backend {
  switch (name) {
    case 'auto':
    case 'reference':
      return new ReferenceBackend();
    case 'native':
      throw new InputError('--backend native: the native addon is not built in this version');
    default:
      throw new InputError(`--backend: unknown backend "${name}" (expected auto, reference or native)`);
  }
}

export type { Backend } from './backend.js';
