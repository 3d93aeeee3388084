/**
 * Model fixtures (../shared/fixtures/README.md): a checkpoint folder with expected.json whose
 * cases give reference logits for every prompt position and a greedy continuation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createBackend, BackendName } from '../backend/index.js';
import { greedyGenerate, promptLogits } from '../engine/runner.js';
import { loadModel } from '../models/registry.js';
import type { CaseResult, ConformanceSuite, SuiteOptions } from './suite.js';

interface ModelCase {
  name: string;
  input_ids: number[];
  logits?: { file: string; shape: [number, number] };
  greedy?: { max_new_tokens: number; output_ids: number[] };
}

export function readF32File(file: string): Float32Array {
  const buf = fs.readFileSync(file);
  const out = new Float32Array(buf.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export const modelFixtureSuite: ConformanceSuite = {
  name: 'model',
  claims(dir: string): boolean {
    const exp = path.join(dir, 'expected.json');
    if (!fs.existsSync(exp) || !fs.existsSync(path.join(dir, 'config.json'))) return false;
    try {
      const e = JSON.parse(fs.readFileSync(exp, 'utf8'));
      return Array.isArray(e.cases);
    } catch {
      return false;
    }
  },
  async *run(dir: string, opts: SuiteOptions): AsyncIterable<CaseResult> {
    const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
    const tol: number = expected.tolerance?.logits_max_abs ?? 0;
    let model;
    try {
      model = loadModel(dir, createBackend(opts.backend as BackendName));
    } catch (e) {
      yield { name: `${opts.label} load`, ok: false, detail: (e as Error).message };
      return;
    }
    for (const c of expected.cases as ModelCase[]) {
      if (c.logits) {
        const name = `${opts.label} ${c.name} logits`;
        try {
          const ref = readF32File(path.join(dir, c.logits.file));
          const got = promptLogits(model, c.input_ids);
          const err = maxAbsDiff(got, ref);
          yield { name, ok: err <= tol, detail: `max_abs=${err.toExponential(3)} tol=${tol}` };
        } catch (e) {
          yield { name, ok: false, detail: (e as Error).message };
        }
      }
      if (c.greedy) {
        const name = `${opts.label} ${c.name} greedy`;
        try {
          const got = greedyGenerate(model, c.input_ids, c.greedy.max_new_tokens);
          const want = c.greedy.output_ids;
          const firstDiff = got.findIndex((t, i) => t !== want[i]);
          const ok = firstDiff < 0 && got.length === want.length;
          yield { name, ok, detail: ok ? `${got.length} tokens` : `first difference at step ${firstDiff}: got ${got[firstDiff]}, want ${want[firstDiff]}` };
        } catch (e) {
          yield { name, ok: false, detail: (e as Error).message };
        }
      }
      await new Promise((r) => setImmediate(r));
    }
  },
};
