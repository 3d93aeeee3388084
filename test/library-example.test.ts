/** The README's library example runs as written: streaming, cancellation and a JSON request. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './helpers.js';

test('examples/library.mjs streams a chat, aborts one and asks for schema JSON', () => {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'examples/library.mjs')], { encoding: 'utf8', timeout: 120_000, cwd: REPO_ROOT });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.ok(lines.includes('done: length, 24 tokens'), r.stdout);
  // the abort reaches the engine's worker thread a few steps after the third token's event left
  // it (on a loaded 2-core machine 3 to 7 tokens of the tiny model in all): well before 200
  const aborted = /^aborted after (\d+) tokens: abort$/m.exec(r.stdout);
  assert.ok(aborted && Number(aborted[1]) >= 3 && Number(aborted[1]) <= 12, r.stdout);
  const json = /^json \((stop|length)\): /m.exec(r.stdout);
  assert.ok(json, r.stdout);
  // random weights: any parsed answer must still follow the schema
  const text = r.stdout.slice(json.index + json[0].length).trim();
  if (json[1] === 'stop') {
    const v = JSON.parse(text) as { city: string };
    assert.ok(typeof v.city === 'string' && [...v.city].length <= 8);
  }
});
