/** Walks a folder tree and runs every fixture folder that a registered suite claims. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { harmonyFixtureSuite } from './harmony-fixtures.js';
import { modelFixtureSuite } from './model-fixtures.js';
import { tokenizerVectorSuite } from './tokenizer-vectors.js';
import type { CaseResult, ConformanceSuite } from './suite.js';

const SUITES: ConformanceSuite[] = [modelFixtureSuite, harmonyFixtureSuite, tokenizerVectorSuite];

export function registerSuite(s: ConformanceSuite): void {
  SUITES.push(s);
}

function* walk(dir: string): Generator<string> {
  yield dir;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules') yield* walk(path.join(dir, e.name));
  }
}

export async function* runConformance(root: string, opts: { backend: string }): AsyncIterable<CaseResult> {
  for (const dir of walk(root)) {
    for (const s of SUITES) {
      if (!s.claims(dir)) continue;
      const label = path.relative(path.dirname(path.resolve(root)), dir) || path.basename(dir);
      yield* s.run(dir, { backend: opts.backend, label });
    }
  }
}
