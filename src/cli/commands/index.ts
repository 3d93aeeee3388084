/**
 * Further `tessera` commands, one file each under this folder: each exports
 * `register(program: Command): void`. Add the import to this list.
 */
import type { Command } from 'commander';
import { register as bench } from './bench.js';
import { register as render } from './render.js';
import { register as synth } from './synth.js';

export type CommandRegistrar = (program: Command) => void;

export const COMMANDS: CommandRegistrar[] = [
  synth,
  bench,
  render,
];
