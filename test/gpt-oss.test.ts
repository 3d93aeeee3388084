/** gpt-oss: every fixture; and the same logits however the prompt is split or batched. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReferenceBackend } from '../src/backend/reference.js';
import { modelFixtureSuite, readF32File } from '../src/conformance/model-fixtures.js';
import { packBatch } from '../src/engine/batch.js';
import { cacheFor, promptLogits } from '../src/engine/runner.js';
import { loadModel } from '../src/models/registry.js';
import { maxAbs, modelFixtureDirs } from './helpers.js';

const dirs = modelFixtureDirs('gpt-oss');

test('gpt-oss fixtures are present', () => assert.ok(dirs.length > 0));

for (const dir of dirs) {
  const label = path.basename(dir);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const tol: number = expected.tolerance.logits_max_abs;

  for (const backend of ['reference', 'native']) {
    test(`fixture ${label} (${backend}): logits and greedy continuations`, async () => {
      let n = 0;
      for await (const r of modelFixtureSuite.run(dir, { backend, label })) {
        assert.ok(r.ok, `${r.name}: ${r.detail}`);
        n++;
      }
      assert.ok(n >= expected.cases.length);
    });
  }

  test(`fixture ${label}: one pass = token by token = chunks`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    for (const c of expected.cases) {
      const ref = readF32File(path.join(dir, c.logits.file));
      const one = promptLogits(model, c.input_ids, 0);
      for (const chunk of [1, 3, 7]) {
        const got = promptLogits(model, c.input_ids, chunk);
        const d = maxAbs(got, one);
        assert.ok(d <= tol, `${c.name} chunk=${chunk}: ${d} vs one pass`);
        assert.ok(maxAbs(got, ref) <= tol, `${c.name} chunk=${chunk} vs reference`);
      }
    }
  });

  test(`fixture ${label}: a packed batch equals each prompt alone (bit for bit)`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    const prompts: number[][] = expected.cases.map((c: { input_ids: number[] }) => c.input_ids);
    const total = prompts.reduce((a, p) => a + p.length, 0);
    const cache = cacheFor(model, total, prompts.length);
    const seqs = prompts.map(() => cache.newSequence());
    // first step: a prefix of each prompt of varying length, all packed; then the rest packed
    const cut = prompts.map((p, i) => Math.max(1, Math.floor(p.length / (i + 2))));
    const V = model.vocabSize;
    const first = model.forward(packBatch(prompts.map((p, i) => ({ cache: seqs[i], tokens: p.slice(0, cut[i]), logits: 'all' as const }))), cache);
    const second = model.forward(packBatch(prompts.map((p, i) => ({ cache: seqs[i], tokens: p.slice(cut[i]), logits: 'all' as const }))), cache);
    let o1 = 0;
    let o2 = 0;
    prompts.forEach((p, i) => {
      const alone = promptLogits(model, p);
      const packed = new Float32Array(p.length * V);
      packed.set(first.subarray(o1 * V, (o1 + cut[i]) * V), 0);
      packed.set(second.subarray(o2 * V, (o2 + p.length - cut[i]) * V), cut[i] * V);
      o1 += cut[i];
      o2 += p.length - cut[i];
      assert.ok(maxAbs(packed, alone) <= tol, `prompt ${i}`);
    });
  });
}
