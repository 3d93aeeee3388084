#!/usr/bin/env node
// Builds the native addon (native/build/tessera.node) with the system g++: one binary holding
// generic, AVX2, AVX-512 (plain and VNNI) and AMX kernels, chosen at run time. Run by `npm ci` / `npm install`.
// A failed build is reported but does not fail the install: Tessera then runs on the
// TypeScript reference backend.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const out = path.join(here, 'build');
const cxx = process.env.CXX || 'g++';

function nodeInclude() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include/node'),
    path.resolve(path.dirname(process.execPath), '../include/node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(path.join(c, 'node_api.h'))) return c;
  throw new Error(`node_api.h not found (looked in ${candidates.join(', ')})`);
}

const units = [
  ['addon.cpp', []],
  ['pool.cpp', []],
  ['mamba.cpp', []],
  ['kernels_generic.cpp', []],
  ['kernels_avx2.cpp', ['-mavx2', '-mfma', '-mf16c']],
  ['kernels_avx512.cpp', ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mfma', '-mf16c']],
  ['kernels_avx512vnni.cpp', ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mfma', '-mf16c']],
  ['kernels_amx.cpp', ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512vnni', '-mavx512vbmi', '-mamx-tile', '-mamx-int8', '-mfma', '-mf16c']],
];

function run(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cxx} exited with ${code}`))));
  });
}

async function main() {
  const inc = nodeInclude();
  fs.mkdirSync(out, { recursive: true });
  const common = ['-O3', '-std=c++17', '-fPIC', '-fno-math-errno', '-ffp-contract=off', '-Wall', '-Wno-unused-function', '-Wno-maybe-uninitialized',
    // GCC 12's AVX-512 headers trip -Wuninitialized on their own `__Y = __Y` idiom
    '-Wno-uninitialized',
    `-I${inc}`, '-DNODE_GYP_MODULE_NAME=tessera', '-DNAPI_VERSION=8'];
  const objs = units.map(([f]) => path.join(out, f.replace(/\.cpp$/, '.o')));
  // two at a time: the machines have two cores
  const queue = units.map(([f, flags], i) => () => run([...common, ...flags, '-c', path.join(src, f), '-o', objs[i]]));
  const workers = [0, 1].map(async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(workers);
  await run(['-shared', '-pthread', ...objs, '-o', path.join(out, 'tessera.node')]);
  console.log(`native: built ${path.relative(process.cwd(), path.join(out, 'tessera.node'))}`);
}

main().catch((e) => {
  console.warn(`native: build failed (${e.message}); Tessera will use the TypeScript reference backend`);
  process.exit(0);
});
