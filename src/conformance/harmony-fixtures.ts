/**
 * Conformance suite for harmony case folders: a folder whose `cases/*.json` files are
 * `harmony-case/1` cases (../shared/fixtures/harmony). One result per case, named by file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HARMONY_CASE_SCHEMA, HarmonyCaseRunner } from '../harmony/cases.js';
import { harmonyTokenizer } from '../harmony/default-tokenizer.js';
import type { CaseResult, ConformanceSuite, SuiteOptions } from './suite.js';

function caseFiles(dir: string): string[] {
  const cases = path.join(dir, 'cases');
  try {
    return fs.readdirSync(cases).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(cases, f));
  } catch {
    return [];
  }
}

function schemaOf(file: string): unknown {
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { schema?: unknown }).schema;
  } catch {
    return undefined;
  }
}

export const harmonyFixtureSuite: ConformanceSuite = {
  name: 'harmony',
  claims(dir: string): boolean {
    return caseFiles(dir).some((f) => schemaOf(f) === HARMONY_CASE_SCHEMA);
  },
  async *run(dir: string, opts: SuiteOptions): AsyncIterable<CaseResult> {
    let runner: HarmonyCaseRunner | null = null;
    let setupError = '';
    try {
      runner = new HarmonyCaseRunner(harmonyTokenizer());
    } catch (e) {
      setupError = e instanceof Error ? e.message : String(e);
    }
    for (const file of caseFiles(dir)) {
      const base = path.basename(file, '.json');
      let c: Record<string, unknown>;
      try {
        c = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (e) {
        yield { name: `${opts.label}/${base}`, ok: false, detail: `unreadable case: ${e instanceof Error ? e.message : String(e)}` };
        continue;
      }
      if (c.schema !== HARMONY_CASE_SCHEMA) continue;
      const name = `${opts.label}/${typeof c.name === 'string' ? c.name : base}`;
      if (!runner) {
        yield { name, ok: false, detail: `no tokenizer: ${setupError}` };
        continue;
      }
      const r = runner.run(c, path.dirname(file));
      yield { name, ok: r.ok, detail: `${String(c.kind)}: ${r.detail}` };
    }
  },
};
