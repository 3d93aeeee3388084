/** Backend selection: the native addon where it is built and supported, else the TS reference. */
import type { Backend } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { NativeBackend, addonLoadError, loadAddon, physicalCores, type ActivationPrecision } from './native.js';
import { InputError } from '../util/errors.js';

export type BackendName = 'auto' | 'reference' | 'native';

export interface BackendOptions {
  /** worker threads for the native backend (default: TESSERA_THREADS or the physical cores) */
  threads?: number;
  /** force an instruction set: auto, avx512vnni, avx512, avx2, generic */
  isa?: string;
  /** activation precision of the quantised matmuls (native only): f32 (exact, default) or int8 */
  activations?: ActivationPrecision;
}

const shared = new Map<string, NativeBackend>();

/**
 * `auto` (the default, overridable with TESSERA_BACKEND) picks the native backend when the addon
 * is built, else the reference backend.
 */
export function createBackend(name: BackendName | string = 'auto', opts: BackendOptions = {}): Backend {
  if (name === 'auto' && process.env.TESSERA_BACKEND) name = process.env.TESSERA_BACKEND;
  switch (name) {
    case 'reference':
      if (opts.activations === 'int8') throw new InputError('--activations int8: needs the native backend (the reference backend computes in f32)');
      return new ReferenceBackend();
    case 'auto':
    case 'native': {
      const addon = loadAddon();
      if (!addon) {
        if (name === 'native' || opts.activations === 'int8') {
          throw new InputError(`${name === 'native' ? '--backend native' : '--activations int8'}: the native addon is unavailable (${addonLoadError()})`);
        }
        return new ReferenceBackend();
      }
      const threads = opts.threads ?? (Number(process.env.TESSERA_THREADS) || physicalCores());
      const isa = opts.isa ?? process.env.TESSERA_ISA ?? 'auto';
      const activations = opts.activations ?? 'f32';
      if (activations !== 'f32' && activations !== 'int8') throw new InputError(`--activations: expected f32 or int8, got "${String(activations)}"`);
      // one thread pool per process (re-initialising replaces it); backends differ in precision only
      const key = `${threads}/${isa}/${activations}`;
      let b = shared.get(key);
      if (!b || b.threads !== threads) shared.set(key, (b = new NativeBackend(addon, threads, isa, activations)));
      return b;
    }
    default:
      throw new InputError(`--backend: unknown backend "${name}" (expected auto, reference or native)`);
  }
}

export type { Backend } from './backend.js';
export type { ActivationPrecision } from './native.js';
