/** Backend selection: the native addon where it is built and supported, else the TS reference. */
import type { Backend } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { NativeBackend, addonLoadError, loadAddon, physicalCores } from './native.js';
import { InputError } from '../util/errors.js';

export type BackendName = 'auto' | 'reference' | 'native';

export interface BackendOptions {
  /** worker threads for the native backend (default: TESSERA_THREADS or the physical cores) */
  threads?: number;
  /** force an instruction set: auto, avx512, avx2, generic */
  isa?: string;
}

let shared: NativeBackend | null = null;

/**
 * `auto` (the default, overridable with TESSERA_BACKEND) picks the native backend when the addon
 * is built, else the reference backend.
 */
export function createBackend(name: BackendName | string = 'auto', opts: BackendOptions = {}): Backend {
  if (name === 'auto' && process.env.TESSERA_BACKEND) name = process.env.TESSERA_BACKEND;
  switch (name) {
    case 'reference':
      return new ReferenceBackend();
    case 'auto':
    case 'native': {
      const addon = loadAddon();
      if (!addon) {
        if (name === 'native') throw new InputError(`--backend native: the native addon is unavailable (${addonLoadError()})`);
        return new ReferenceBackend();
      }
      const threads = opts.threads ?? (Number(process.env.TESSERA_THREADS) || physicalCores());
      const isa = opts.isa ?? process.env.TESSERA_ISA ?? 'auto';
      // one thread pool per process: re-initialising replaces it
      if (!shared || shared.threads !== threads || (isa !== 'auto' && shared.isa !== isa)) {
        shared = new NativeBackend(addon, threads, isa);
      }
      return shared;
    }
    default:
      throw new InputError(`--backend: unknown backend "${name}" (expected auto, reference or native)`);
  }
}

export type { Backend } from './backend.js';
