/**
 * How callers talk to an engine, wherever it runs: submit a prompt, get an async stream of
 * outputs, cancel with an AbortSignal. `EngineLoop` drives an Engine on the calling thread
 * (tests, small models); `WorkerEngine` runs it on a worker thread so that the event loop of the
 * server stays free while the model computes.
 */
import { randomUUID } from 'node:crypto';
import { AsyncQueue } from './async-queue.js';
import type { Engine, EngineStats, RequestOutput, TokenConstraint } from './engine.js';
import type { SamplingParams } from './sampling.js';

/** A constraint that can cross threads: built into a TokenConstraint where the engine runs. */
export type ConstraintSpec = (
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: Record<string, unknown> }
  /**
   * a tool call the model must make, choosing the tool: `head` (token ids, special tokens
   * included), one of the names, `tail` (the rest of the call's header), the arguments as JSON
   * under the chosen tool's schema (null: any JSON object), then `trailer`
   */
  | {
    type: 'tool_call'; tools: { name: string; schema: Record<string, unknown> | null }[];
    head?: number[]; tail: number[]; trailer?: number[];
  }
) & {
  /** the constraint starts once these tokens have been generated (see ChatFormat.constrainedContentGate) */
  gate?: number[];
};

export interface GenerateInput {
  prompt: number[];
  sampling: SamplingParams;
  constraint?: ConstraintSpec;
}

export interface ModelInfo {
  family: string;
  vocabSize: number;
  maxContext: number;
  eosTokenIds: number[];
}

export interface EngineClient {
  readonly info: ModelInfo;
  /** maximum prompt + output tokens of one request */
  readonly maxModelLen: number;
  generate(input: GenerateInput, signal?: AbortSignal): AsyncIterable<RequestOutput>;
  stats(): Promise<EngineStats>;
  close(): Promise<void>;
}

export type ConstraintFactory = (spec: ConstraintSpec) => TokenConstraint;

/** Runs an Engine on this thread, one step per macrotask while there is work. */
export class EngineLoop implements EngineClient {
  readonly info: ModelInfo;
  private readonly queues = new Map<string, AsyncQueue<RequestOutput>>();
  private pending = false;
  private closed = false;

  constructor(private readonly engine: Engine, private readonly makeConstraint?: ConstraintFactory) {
    const m = engine.model;
    this.info = { family: m.family, vocabSize: m.vocabSize, maxContext: m.maxContext, eosTokenIds: m.eosTokenIds };
  }

  get maxModelLen(): number {
    return Math.min(this.engine.opts.maxModelLen, this.engine.model.maxContext);
  }

  generate(input: GenerateInput, signal?: AbortSignal): AsyncIterable<RequestOutput> {
    const id = randomUUID();
    const q = new AsyncQueue<RequestOutput>();
    if (this.closed) {
      q.push({ id, tokens: [], finishReason: 'error', error: 'the engine is closed' });
      q.close();
      return q;
    }
    try {
      const constraint = input.constraint ? this.makeConstraint?.(input.constraint) : undefined;
      if (input.constraint && !constraint) throw new Error('constrained decoding is not available in this engine');
      this.engine.add({ id, prompt: input.prompt, sampling: input.sampling, constraint });
    } catch (e) {
      q.push({ id, tokens: [], finishReason: 'error', error: e instanceof Error ? e.message : String(e) });
      q.close();
      return q;
    }
    this.queues.set(id, q);
    if (signal) {
      if (signal.aborted) this.engine.abort(id);
      else signal.addEventListener('abort', () => { this.engine.abort(id); this.kick(); }, { once: true });
    }
    this.kick();
    return q;
  }

  async stats(): Promise<EngineStats> {
    return this.engine.stats();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id] of this.queues) this.engine.abort(id);
    this.kick();
  }

  private kick(): void {
    if (this.pending || !this.engine.hasWork()) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      let outs: RequestOutput[];
      try {
        outs = this.engine.step();
      } catch (e) {
        // a bug in the engine: fail every open request rather than hang them
        for (const q of this.queues.values()) q.fail(e);
        this.queues.clear();
        return;
      }
      this.dispatch(outs);
      this.kick();
    });
  }

  /** Route outputs to their requests' queues. */
  dispatch(outs: RequestOutput[]): void {
    for (const o of outs) {
      const q = this.queues.get(o.id);
      if (!q) continue;
      q.push(o);
      if (o.finishReason) {
        q.close();
        this.queues.delete(o.id);
      }
    }
  }
}
