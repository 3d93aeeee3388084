/**
 * Where a step's time goes (`tessera bench --profile`): every Backend op is timed while decode
 * steps (or a prefill) run, grouped by op and weight shape, with the weight bytes each group
 * reads and the rate it streams them at (what bounds decode), and the multiply-adds of its
 * matmuls and their rate (what bounds prefill and batched decode). Backend ops are synchronous,
 * so wall time per call is the op's own. Ops without weights (attention, norms, the scan) show
 * none; the step time beyond the ops' sum is the model code between them.
 */
import { type Backend, type ExpertBank, type LinearSpec, bytesPerExpert, expertMatrix, expertWeightsFormat } from '../src/backend/backend.js';
import { type QMatrix, qmatrixBytes } from '../src/weights/qmatrix.js';

export interface ProfileRow {
  /** op and weight: "linear int8 2880x4096", "moe mxfp4 32x(5760+2880)x2880", "attention" */
  op: string;
  calls_per_step: number;
  ms_per_step: number;
  /** weight bytes read per step (MoE: each expert the step's tokens touch, once) */
  weight_bytes_per_step: number;
  /** weight bytes over the op's time (0 where it reads none) */
  gb_per_s: number;
  /** multiply-adds of the op's matmuls per step (tokens × weights each token meets), and their rate */
  macs_per_step: number;
  gmac_per_s: number;
}

/** a decode step of `sequences` sequences, or a prefill of `tokens_per_step` tokens */
export interface StepProfile {
  sequences: number;
  tokens_per_step: number;
  steps: number;
  step_ms: number;
  /** the ops' time per step; step_ms − ops_ms is spent between them */
  ops_ms: number;
  ops: ProfileRow[];
}

interface Acc {
  calls: number;
  ms: number;
  bytes: number;
  macs: number;
}

const now = () => performance.now();

function shape(w: QMatrix): string {
  return `${w.format} ${w.rows}x${w.cols}`;
}

/** the group a call falls in, the weight bytes it reads and its multiply-adds */
function classify(op: string, args: unknown[]): [string, number, number] {
  switch (op) {
    case 'linear': {
      const T = args[1] as number, w = args[2] as QMatrix;
      return [`linear ${shape(w)}`, qmatrixBytes(w), T * w.rows * w.cols];
    }
    case 'linearMany': {
      const T = args[1] as number, ws = args[2] as readonly LinearSpec[];
      const f = [...new Set(ws.map((s) => s.w.format))].join('/');
      return [`linear ${f} (${ws.map((s) => s.w.rows).join('+')})x${ws[0]?.w.cols ?? 0}`, ws.reduce((a, s) => a + qmatrixBytes(s.w), 0),
        ws.reduce((a, s) => a + T * s.w.rows * s.w.cols, 0)];
    }
    case 'moeExperts': {
      const routing = args[2] as { experts: Int32Array };
      const bank = args[3] as ExpertBank;
      // each (token, expert) pair: its w1 rows over dIn, then w2's dOut rows over w2's inputs
      const perPair = bank.w1Rows * bank.dIn + bank.dOut * expertMatrix(bank.w2, 0, bank.dOut).cols;
      return [`moe ${expertWeightsFormat(bank.w1)} ${bank.numExperts}x(${bank.w1Rows}+${bank.dOut})x${bank.dIn}`,
        new Set(routing.experts).size * bytesPerExpert(bank), routing.experts.length * perPair];
    }
    case 'embed': {
      const ids = args[0] as Int32Array;
      const t = args[1] as QMatrix;
      return ['embed', (qmatrixBytes(t) / t.rows) * ids.length, 0];
    }
    default:
      return [op, 0, 0];
  }
}

/** Puts `fn` on `obj` as its method `name` until the returned function restores what was there. */
export function overrideMethod(obj: object, name: string, fn: (...args: never[]) => unknown): () => void {
  const target = obj as Record<string, unknown>;
  const own = Object.prototype.hasOwnProperty.call(obj, name);
  const prev = target[name];
  target[name] = fn;
  return () => {
    if (own) target[name] = prev;
    else Reflect.deleteProperty(target, name);
  };
}

/**
 * Times every op `backend` exposes (its own and its prototypes' methods) until `stop`, which puts
 * the originals back and returns the groups. `reset` drops what was counted so far (a warm-up).
 */
export function watchOps(backend: Backend): { reset(): void; stop(): Map<string, Acc> } {
  const groups = new Map<string, Acc>();
  const names = new Set<string>();
  for (let p = Object.getPrototypeOf(backend); p && p !== Object.prototype; p = Object.getPrototypeOf(p))
    for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor' && typeof (backend as never)[k] === 'function') names.add(k);
  const restores: (() => void)[] = [];
  let depth = 0;
  for (const k of names) {
    if (k.startsWith('alloc')) continue; // allocations, not per-step work
    const fn = (backend as unknown as Record<string, (...a: unknown[]) => unknown>)[k];
    restores.push(overrideMethod(backend, k, function (this: unknown, ...args: unknown[]) {
      // an op that calls others (the reference backend's MoE calls linear) is counted once, as itself
      if (depth > 0) return fn.apply(this, args);
      depth++;
      const t0 = now();
      let r: unknown;
      try {
        r = fn.apply(this, args);
      } finally {
        depth--;
      }
      const ms = now() - t0;
      const [key, bytes, macs] = classify(k, args);
      const g = groups.get(key) ?? { calls: 0, ms: 0, bytes: 0, macs: 0 };
      g.calls++;
      g.ms += ms;
      g.bytes += bytes;
      g.macs += macs;
      groups.set(key, g);
      return r;
    }));
  }
  return {
    reset: () => groups.clear(),
    stop() {
      for (const restore of restores) restore();
      return groups;
    },
  };
}

/** rows per step, slowest first */
export function profileRows(groups: Map<string, Acc>, steps: number): ProfileRow[] {
  return [...groups.entries()]
    .map(([op, g]) => ({
      op,
      calls_per_step: g.calls / steps,
      ms_per_step: g.ms / steps,
      weight_bytes_per_step: g.bytes / steps,
      gb_per_s: g.ms > 0 && g.bytes > 0 ? g.bytes / (g.ms * 1e6) : 0,
      macs_per_step: g.macs / steps,
      gmac_per_s: g.ms > 0 && g.macs > 0 ? g.macs / (g.ms * 1e6) : 0,
    }))
    .sort((a, b) => b.ms_per_step - a.ms_per_step);
}

export function formatProfile(p: StepProfile): string[] {
  const what = p.tokens_per_step > p.sequences
    ? `prefill profile, ${p.tokens_per_step} tokens: ${p.step_ms.toFixed(1)} ms`
    : `decode profile, ${p.sequences} sequence${p.sequences > 1 ? 's' : ''}: ${p.step_ms.toFixed(1)} ms per step over ${p.steps} steps`;
  const lines = [`${what} (ops ${p.ops_ms.toFixed(1)} ms)`];
  for (const r of p.ops) {
    const b = r.weight_bytes_per_step;
    const gb = b > 0 ? `  ${b >= 1e8 ? `${(b / 1e9).toFixed(3)} GB` : `${(b / 1e6).toFixed(2)} MB`} ${r.gb_per_s.toFixed(1)} GB/s` : '';
    const mac = r.macs_per_step > 0 ? `  ${r.gmac_per_s.toFixed(1)} GMAC/s` : '';
    lines.push(`  ${r.op.padEnd(44)} ${r.ms_per_step.toFixed(2).padStart(9)} ms ${(100 * r.ms_per_step / p.step_ms).toFixed(0).padStart(3)}%  ×${r.calls_per_step.toFixed(0)}${gb}${mac}`);
  }
  return lines;
}
