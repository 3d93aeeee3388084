/**
 * Further `tessera` commands, one file each under this folder: each exports
 * `register(program: Command): void`. Add the import to this list.
 */
import type { Command } from 'commander';
import { register as bench } from './bench.js';
import { register as render } from './render.js';
import { register as synth } from './synth.js';
import { register as benchServe } from './bench-serve.js';
import { register as serve } from './serve.js';
import { register as chat } from './chat.js';
import { register as tokenize } from './tokenize.js';

export type CommandRegistrar = (program: Command) => void;

export const COMMANDS: CommandRegistrar[] = [
  synth,
  bench,
  render,
  benchServe,
  serve,
  chat,
  tokenize,
];
