#!/usr/bin/env node
// Entry point for `npx tessera`: the compiled CLI lives in dist/ (built by `npm ci`).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv)).catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('tessera: the build is missing; run `npm ci` (or `npm run build`) first');
  } else {
    console.error(`tessera: ${err && err.message ? err.message : err}`);
  }
  process.exit(1);
});
