/** The engine thread behind WorkerEngine: loads the model, then steps while there is work. */
import { parentPort, workerData } from 'node:worker_threads';
import { createBackend } from '../backend/index.js';
import { loadModel } from '../models/registry.js';
import { resolveEngineOptions } from './config.js';
import { Engine, type TokenConstraint } from './engine.js';
import { constraintFactory } from '../constrain/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import type { ConstraintFactory, ConstraintSpec } from './client.js';
import type { FromWorker, ToWorker, WorkerEngineOptions } from './worker-engine.js';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

/** The vocabulary for constrained decoding is loaded on first use. */
let factory: ConstraintFactory | null = null;
async function makeConstraint(dir: string, spec: ConstraintSpec): Promise<TokenConstraint> {
  factory ??= constraintFactory(await loadTokenizer(dir));
  return factory(spec);
}

const opts = workerData as WorkerEngineOptions;

function main(): void {
  let engine: Engine;
  try {
    const backend = createBackend(opts.backend ?? 'auto', { threads: opts.threads, activations: opts.activations });
    const model = loadModel(opts.modelDir, backend, { denseWeights: opts.denseWeights, kvCacheDtype: opts.kvCacheDtype, repackExperts: opts.repackExperts });
    engine = new Engine(model, resolveEngineOptions(model, opts));
  } catch (e) {
    post({ type: 'init_error', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  const m = engine.model;
  post({
    type: 'ready',
    info: { family: m.family, vocabSize: m.vocabSize, maxContext: m.maxContext, eosTokenIds: m.eosTokenIds },
    maxModelLen: Math.min(engine.opts.maxModelLen, m.maxContext),
  });

  let pending = false;
  const kick = () => {
    if (pending || !engine.hasWork()) return;
    pending = true;
    // one step per macrotask: messages (new requests, aborts) are handled between steps
    setImmediate(() => {
      pending = false;
      try {
        const outputs = engine.step();
        if (outputs.length > 0) post({ type: 'outputs', outputs });
      } catch (e) {
        post({ type: 'fatal', message: `engine step failed: ${e instanceof Error ? e.message : String(e)}` });
        process.exit(1);
      }
      kick();
    });
  };

  port.on('message', (msg: ToWorker) => {
    switch (msg.type) {
      case 'add': {
        const fail = (e: unknown) => post({ type: 'outputs', outputs: [{ id: msg.id, tokens: [], finishReason: 'error', error: e instanceof Error ? e.message : String(e) }] });
        const spec = msg.input.constraint;
        if (spec) {
          makeConstraint(opts.modelDir, spec).then((constraint) => {
            try {
              engine.add({ id: msg.id, prompt: msg.input.prompt, sampling: msg.input.sampling, constraint });
              kick();
            } catch (e) { fail(e); }
          }, fail);
          break;
        }
        try {
          engine.add({ id: msg.id, prompt: msg.input.prompt, sampling: msg.input.sampling });
        } catch (e) { fail(e); }
        break;
      }
      case 'abort':
        engine.abort(msg.id);
        break;
      case 'stats':
        post({ type: 'stats', ticket: msg.ticket, stats: engine.stats() });
        break;
      case 'close':
        process.exit(0);
    }
    kick();
  });
}

main();
