/** Bad Nemotron-H checkpoints end with one clear line naming the field or tensor, and exit 1. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../src/weights/safetensors.js';
import { modelFixtureDirs, runCli, tmpDir } from './helpers.js';

const dirs = modelFixtureDirs('nemotron-h');
/** a fixture with all four block kinds (M, *, -, E) */
const SRC = dirs.find((d) => {
  const p: string = JSON.parse(fs.readFileSync(path.join(d, 'config.json'), 'utf8')).hybrid_override_pattern ?? '';
  return ['M', '*', '-', 'E'].every((ch) => p.includes(ch));
}) ?? dirs[0];

type Tensor = { name: string; dtype: any; shape: number[]; data: Uint8Array };

function variant(edit: { tensors?: (t: Tensor[]) => Tensor[]; config?: (c: any) => any }): string {
  const dir = tmpDir();
  const cfg = JSON.parse(fs.readFileSync(path.join(SRC, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(edit.config ? edit.config(cfg) : cfg));
  const f = new SafetensorsFile(path.join(SRC, 'model.safetensors'));
  const ts = [...f.tensors.keys()].map((n) => f.read(n));
  f.close();
  writeSafetensors(path.join(dir, 'model.safetensors'), edit.tensors ? edit.tensors(ts) : ts);
  return dir;
}

function expectFailure(dir: string, ...mustContain: string[]) {
  const r = runCli(['generate', '--model', dir, '--ids', '3,4,5', '--max-new-tokens', '2']);
  assert.equal(r.status, 1, `stdout=${r.stdout} stderr=${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^tessera: /);
  assert.doesNotMatch(lines[0], /internal error/);
  for (const s of mustContain) assert.ok(lines[0].includes(s), `"${lines[0]}" should name ${s}`);
}

const firstLayer = (letter: string) => {
  const p: string = JSON.parse(fs.readFileSync(path.join(SRC, 'config.json'), 'utf8')).hybrid_override_pattern;
  return p.indexOf(letter);
};

test('the unedited copy runs (so the failures below are the edits)', () => {
  const r = runCli(['generate', '--model', variant({}), '--ids', '3,4,5', '--max-new-tokens', '2']);
  assert.equal(r.status, 0, r.stderr);
});

test('pattern length differs from num_hidden_layers', () => {
  expectFailure(variant({ config: (c) => ({ ...c, num_hidden_layers: c.num_hidden_layers + 1 }) }), 'hybrid_override_pattern', 'num_hidden_layers');
});

test('unknown pattern letter', () => {
  expectFailure(variant({ config: (c) => ({ ...c, hybrid_override_pattern: 'Q' + c.hybrid_override_pattern.slice(1) }) }),
    'hybrid_override_pattern', '"Q"', 'position 0');
});

test('missing pattern', () => {
  expectFailure(variant({ config: (c) => { const { hybrid_override_pattern: _, ...rest } = c; return rest; } }), 'hybrid_override_pattern');
});

test('missing Mamba tensor', () => {
  const name = `backbone.layers.${firstLayer('M')}.mixer.A_log`;
  expectFailure(variant({ tensors: (ts) => ts.filter((t) => t.name !== name) }), name);
});

test('missing conv1d weight', () => {
  const name = `backbone.layers.${firstLayer('M')}.mixer.conv1d.weight`;
  expectFailure(variant({ tensors: (ts) => ts.filter((t) => t.name !== name) }), name);
});

test('missing expert tensor', () => {
  const name = `backbone.layers.${firstLayer('E')}.mixer.experts.1.down_proj.weight`;
  expectFailure(variant({ tensors: (ts) => ts.filter((t) => t.name !== name) }), name);
});

test('missing router', () => {
  const name = `backbone.layers.${firstLayer('E')}.mixer.gate.weight`;
  expectFailure(variant({ tensors: (ts) => ts.filter((t) => t.name !== name) }), name);
});

test('inconsistent head counts', () => {
  expectFailure(variant({ config: (c) => ({ ...c, num_key_value_heads: c.num_attention_heads + 1 }) }), 'num_key_value_heads');
  expectFailure(variant({ config: (c) => ({ ...c, n_groups: c.mamba_num_heads + 1 }) }), 'n_groups', 'mamba_num_heads');
  // heads that do not match the stored projections: the tensor and its shape are named
  expectFailure(variant({ config: (c) => ({ ...c, mamba_num_heads: c.mamba_num_heads * 2, n_groups: 1 }) }),
    `backbone.layers.${firstLayer('M')}.mixer`, 'shape');
  expectFailure(variant({ config: (c) => ({ ...c, num_attention_heads: c.num_attention_heads * 2 }) }),
    `backbone.layers.${firstLayer('*')}.mixer.q_proj.weight`, 'shape');
});

test('router groups that do not divide the experts, and too few groups for top-k', () => {
  expectFailure(variant({ config: (c) => ({ ...c, n_group: c.n_routed_experts + 1 }) }), 'n_routed_experts', 'n_group');
  expectFailure(variant({ config: (c) => ({ ...c, topk_group: (c.n_group ?? 1) + 1 }) }), 'topk_group');
});

test('missing required Mamba size', () => {
  expectFailure(variant({ config: (c) => { const { ssm_state_size: _, ...rest } = c; return rest; } }), 'ssm_state_size');
});
