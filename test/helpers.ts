/** Paths and small utilities shared by the tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

/** repo root (tests run from dist/test/) */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = process.env.TESSERA_FIXTURES ?? path.resolve(REPO_ROOT, '../shared/fixtures');

/** Every model fixture folder (config.json + expected.json) under `family`, found at any depth. */
export function modelFixtureDirs(family: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (fs.existsSync(path.join(d, 'config.json')) && fs.existsSync(path.join(d, 'expected.json'))) out.push(d);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  const root = path.join(FIXTURES, family);
  if (fs.existsSync(root)) walk(root);
  return out.sort();
}

export function runCli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/tessera.js'), ...args], {
    encoding: 'utf8', input, timeout: 120_000, cwd: REPO_ROOT,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function tmpDir(prefix = 'tessera-test-'): string {
  return fs.mkdtempSync(path.join(fs.realpathSync((process.env.TMPDIR ?? '/tmp')), prefix));
}

export function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
