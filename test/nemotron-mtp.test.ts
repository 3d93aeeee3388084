/**
 * MTP speculative decoding: greedy with speculation equals plain greedy token for token, with
 * drafts rejected everywhere, accepted everywhere, or cut at every offset; draft logits compared
 * with the fixtures' informative `<prompt>.mtp_draft_logits.f32`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReferenceBackend } from '../src/backend/reference.js';
import { maxAbsDiff, readF32File } from '../src/conformance/model-fixtures.js';
import { greedyGenerate } from '../src/engine/runner.js';
import { hasMtp, mtpPromptLogits, speculativeGreedy } from '../src/engine/speculative.js';
import { loadModel } from '../src/models/registry.js';
import { modelFixtureDirs, runCli } from './helpers.js';

const all = modelFixtureDirs('nemotron-h');
const mtpDirs = all.filter((d) => fs.readdirSync(d).some((f) => f.endsWith('.mtp_draft_logits.f32')));
const plainDir = all.find((d) => !JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')).num_nextn_predict_layers);

test('a Super-style (MTP) fixture is present', () => assert.ok(mtpDirs.length > 0));

for (const dir of mtpDirs) {
  const label = path.basename(dir);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));

  test(`${label}: speculative greedy = plain greedy (k = 1, 2, 4), and = the fixture's greedy ids`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    assert.ok(hasMtp(model));
    for (const c of expected.cases) {
      const n = c.greedy.max_new_tokens;
      const plain = greedyGenerate(model, c.input_ids, n + 5);
      assert.deepEqual(plain.slice(0, n), c.greedy.output_ids);
      for (const k of [1, 2, 4]) {
        for (const rollback of ['keep', 'rerun'] as const) {
          const r = speculativeGreedy(model, c.input_ids, n + 5, k, { rollback });
          assert.deepEqual(r.tokens, plain, `${c.name} k=${k} ${rollback}`);
          assert.ok(r.accepted <= r.drafted && r.drafted > 0);
        }
      }
    }
  });

  test(`${label}: accepted drafts, partly accepted drafts and rollback keep the output exact`, () => {
    const model = loadModel(dir, new ReferenceBackend());
    const c = expected.cases[1];
    const N = 24;
    const plain = greedyGenerate(model, c.input_ids, N + 8);
    const P = c.input_ids.length;
    // drafts from an oracle (the true continuation): everything is accepted
    const oracle = (d: number[], pos: number) => d.map((_, i) => plain[pos - P + i] ?? 0);
    const full = speculativeGreedy(model, c.input_ids, N, 3, { editDrafts: oracle });
    assert.deepEqual(full.tokens, plain.slice(0, N));
    assert.equal(full.accepted, full.drafted);
    assert.ok(full.steps <= Math.ceil(N / 4) + 1, `${full.steps} verification steps`);
    // the oracle with one wrong token at a moving offset: a prefix is accepted, the rest rolled back
    for (const k of [2, 3, 5]) {
      let step = 0;
      const cut = (d: number[], pos: number) => {
        const o = oracle(d, pos);
        const bad = step++ % (k + 1);
        if (bad < o.length) o[bad] = (o[bad] + 1) % model.vocabSize;
        return o;
      };
      for (const rollback of ['keep', 'rerun'] as const) {
        step = 0;
        const r = speculativeGreedy(model, c.input_ids, N, k, { editDrafts: cut, rollback });
        assert.deepEqual(r.tokens, plain.slice(0, N), `k=${k} ${rollback}`);
        assert.ok(r.accepted > 0 && r.accepted < r.drafted, `k=${k}: ${r.accepted}/${r.drafted}`);
      }
    }
  });

  test(`${label}: MTP draft logits vs <prompt>.mtp_draft_logits.f32 (informative)`, (t) => {
    const model = loadModel(dir, new ReferenceBackend());
    for (const c of expected.cases) {
      const file = path.join(dir, c.logits.file.replace('.logits.f32', '.mtp_draft_logits.f32'));
      if (!fs.existsSync(file)) continue;
      const got = mtpPromptLogits(model, c.input_ids);
      const ref = readF32File(file);
      assert.equal(got.length, ref.length, 'draft rows [T−1, V]');
      // informative data (NOTES.md §9.3): report, do not tune to it
      t.diagnostic(`${c.name}: max |draft − mtp_draft_logits| = ${maxAbsDiff(got, ref).toExponential(3)}`);
    }
  });

  test(`${label}: tessera generate --speculative-tokens prints the acceptance rate with --json`, () => {
    const c = expected.cases[0];
    const r = runCli(['generate', '--model', dir, '--ids', c.input_ids.join(','), '--max-new-tokens', String(c.greedy.max_new_tokens),
      '--speculative-tokens', '3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.output_ids, c.greedy.output_ids);
    assert.equal(typeof j.acceptance_rate, 'number');
    assert.ok(j.acceptance_rate >= 0 && j.acceptance_rate <= 1);
  });
}

test('--speculative-tokens on a checkpoint without MTP weights is one clear error', () => {
  assert.ok(plainDir);
  const r = runCli(['generate', '--model', plainDir!, '--ids', '5,6,7', '--speculative-tokens', '2']);
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^tessera: --speculative-tokens: .*no MTP head/);
});
