/**
 * An engine on its own thread: the model is loaded and stepped in a worker, so the compute never
 * blocks the caller's event loop (the HTTP server keeps accepting, streaming and cancelling).
 * Messages carry prompts in and token outputs back; weights are mmap'd once, in the worker.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { AsyncQueue } from './async-queue.js';
import type { EngineClient, GenerateInput, ModelInfo } from './client.js';
import type { EngineSettings } from './config.js';
import type { KvDtype } from '../backend/backend.js';
import type { RepackMode } from '../models/model.js';
import type { EngineStats, RequestOutput } from './engine.js';
import { TesseraError } from '../util/errors.js';

export interface WorkerEngineOptions extends EngineSettings {
  modelDir: string;
  backend?: 'auto' | 'native' | 'reference';
  threads?: number;
  denseWeights?: 'bf16' | 'int8';
  /** KV cache elements: f32 (exact, default), f16 or bf16 */
  kvCacheDtype?: KvDtype;
  /** activation precision of the quantised matmuls (native backend): f32 (exact) or int8 */
  activations?: 'f32' | 'int8';
  /** a repacked copy of the MXFP4 experts (LoadOptions.repackExperts in src/models/model.ts) */
  repackExperts?: RepackMode;
}

export type ToWorker =
  | { type: 'add'; id: string; input: GenerateInput }
  | { type: 'abort'; id: string }
  | { type: 'stats'; ticket: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo; maxModelLen: number }
  | { type: 'init_error'; message: string }
  | { type: 'outputs'; outputs: RequestOutput[] }
  | { type: 'stats'; ticket: number; stats: EngineStats }
  | { type: 'fatal'; message: string };

export class WorkerEngine implements EngineClient {
  private readonly queues = new Map<string, AsyncQueue<RequestOutput>>();
  private readonly statWaiters = new Map<number, (s: EngineStats) => void>();
  private ticket = 0;
  private dead: string | null = null;

  private constructor(private readonly worker: Worker, readonly info: ModelInfo, readonly maxModelLen: number) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.die(`engine thread failed: ${e.message}`));
    worker.on('exit', (code) => this.die(`engine thread exited (${code})`));
  }

  /** Load the model on a new thread; resolves once it is ready to serve. */
  static start(opts: WorkerEngineOptions): Promise<WorkerEngine> {
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: opts });
    return new Promise((resolve, reject) => {
      const onMsg = (m: FromWorker) => {
        if (m.type === 'ready') {
          cleanup();
          resolve(new WorkerEngine(worker, m.info, m.maxModelLen));
        } else if (m.type === 'init_error') {
          cleanup();
          void worker.terminate();
          reject(new TesseraError(m.message));
        }
      };
      const onErr = (e: Error) => { cleanup(); reject(e); };
      const onExit = (code: number) => { cleanup(); reject(new TesseraError(`engine thread exited during load (${code})`)); };
      const cleanup = () => { worker.off('message', onMsg); worker.off('error', onErr); worker.off('exit', onExit); };
      worker.on('message', onMsg);
      worker.on('error', onErr);
      worker.on('exit', onExit);
    });
  }

  generate(input: GenerateInput, signal?: AbortSignal): AsyncIterable<RequestOutput> {
    const id = randomUUID();
    const q = new AsyncQueue<RequestOutput>();
    if (this.dead) {
      q.push({ id, tokens: [], finishReason: 'error', error: this.dead });
      q.close();
      return q;
    }
    this.queues.set(id, q);
    this.post({ type: 'add', id, input });
    if (signal) {
      if (signal.aborted) this.post({ type: 'abort', id });
      else signal.addEventListener('abort', () => this.post({ type: 'abort', id }), { once: true });
    }
    return q;
  }

  stats(): Promise<EngineStats> {
    const ticket = ++this.ticket;
    return new Promise((resolve) => {
      this.statWaiters.set(ticket, resolve);
      this.post({ type: 'stats', ticket });
    });
  }

  async close(): Promise<void> {
    if (this.dead) return;
    this.post({ type: 'close' });
    await new Promise<void>((r) => {
      const t = setTimeout(() => void this.worker.terminate().then(() => r()), 5000);
      this.worker.once('exit', () => { clearTimeout(t); r(); });
    });
  }

  private post(m: ToWorker): void {
    if (!this.dead) this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'outputs') {
      for (const o of m.outputs) {
        const q = this.queues.get(o.id);
        if (!q) continue;
        q.push(o);
        if (o.finishReason) {
          q.close();
          this.queues.delete(o.id);
        }
      }
    } else if (m.type === 'stats') {
      this.statWaiters.get(m.ticket)?.(m.stats);
      this.statWaiters.delete(m.ticket);
    } else if (m.type === 'fatal') {
      this.die(m.message);
    }
  }

  private die(message: string): void {
    if (this.dead) return;
    this.dead = message;
    for (const [id, q] of this.queues) {
      q.push({ id, tokens: [], finishReason: 'error', error: message });
      q.close();
    }
    this.queues.clear();
  }
}
