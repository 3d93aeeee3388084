/** The engine thread behind WorkerEngine: loads the model, then steps while there is work. */
import { parentPort, workerData } from 'node:worker_threads';
import { createBackend } from '../backend/index.js';
import { loadModel } from '../models/registry.js';
import { resolveEngineOptions } from './config.js';
import { Engine } from './engine.js';
import type { FromWorker, ToWorker, WorkerEngineOptions } from './worker-engine.js';

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);

function main(): void {
  const opts = workerData as WorkerEngineOptions;
  let engine: Engine;
  try {
    const backend = createBackend(opts.backend ?? 'auto', { threads: opts.threads });
    const model = loadModel(opts.modelDir, backend, { denseWeights: opts.denseWeights });
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
      case 'add':
        try {
          engine.add({ id: msg.id, prompt: msg.input.prompt, sampling: msg.input.sampling });
        } catch (e) {
          post({ type: 'outputs', outputs: [{ id: msg.id, tokens: [], finishReason: 'error', error: e instanceof Error ? e.message : String(e) }] });
        }
        break;
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
