/**
 * Further `tessera` commands, one file each under this folder: each exports
 * `register(program: Command): void`. Add the import to this list.
 */
import type { Command } from 'commander';

export type CommandRegistrar = (program: Command) => void;

export const COMMANDS: CommandRegistrar[] = [];
