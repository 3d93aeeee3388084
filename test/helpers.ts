/** Paths and small utilities shared by the tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { NativeBackend, loadAddon } from '../src/backend/native.js';

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

const tmpDirs: string[] = [];
// every test file runs in its own process: its scratch checkpoints go when it exits
process.on('exit', () => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** a fresh scratch folder, removed when the test process exits */
export function tmpDir(prefix = 'tessera-test-'): string {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync((process.env.TMPDIR ?? '/tmp')), prefix));
  tmpDirs.push(dir);
  return dir;
}

/** `tessera synth --config` of `config` (and `extra` flags) into a scratch folder; returns the checkpoint's folder */
export function synthCheckpoint(config: object, extra: string[] = []): string {
  const dir = tmpDir();
  const cfgFile = path.join(dir, 'in.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config));
  const out = path.join(dir, 'ckpt');
  const r = runCli(['synth', '--config', cfgFile, '--out', out, ...extra]);
  if (r.status !== 0) throw new Error(`synth failed: ${r.stderr}`);
  return out;
}

export function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** the ISAs every native kernel test runs on (those the CPU lacks are refused and reported) */
export const NATIVE_ISAS = ['amx', 'avx512vnni', 'avx512', 'avx2', 'generic'];

/**
 * A native backend pinned to `isa`, or null (with a diagnostic) where this CPU lacks it: the
 * dispatcher must refuse it cleanly, and `auto` never picks it. Fails when the addon is missing.
 */
export function nativeOn(t: TestContext, isa: string, activations: 'f32' | 'int8' = 'f32'): NativeBackend | null {
  const addon = loadAddon();
  assert.ok(addon, 'native/build/tessera.node failed to load');
  try {
    return new NativeBackend(addon, 2, isa, activations);
  } catch (e) {
    assert.match((e as Error).message, /lacks/);
    t.diagnostic(`${isa} not supported here`);
    return null;
  }
}
