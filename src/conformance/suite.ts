/**
 * Conformance suites: each recognises one kind of fixture folder and yields one result per
 * case. `tessera conformance DIR` walks DIR to any depth and runs every folder a suite claims.
 */
export interface CaseResult {
  /** e.g. "gpt-oss/tiny-window short logits" */
  name: string;
  ok: boolean;
  /** one-line detail: the measured error, or what differed */
  detail: string;
}

export interface ConformanceSuite {
  readonly name: string;
  /** true when `dir` is a fixture folder of this suite (not its parent) */
  claims(dir: string): boolean;
  run(dir: string, opts: SuiteOptions): AsyncIterable<CaseResult>;
}

export interface SuiteOptions {
  backend: string;
  /** label for the folder in result names (relative path) */
  label: string;
}
