/** Typed access to config.json fields, with errors that name the file and the field. */
import { CheckpointError } from '../util/errors.js';
import type { Json } from './checkpoint.js';

export class ConfigReader {
  constructor(readonly json: Json, readonly file: string) {}

  private fail(field: string, want: string, got: unknown): never {
    throw new CheckpointError(`${this.file}: field "${field}" ${got === undefined ? 'is missing' : `is ${JSON.stringify(got)}`}; expected ${want}`);
  }

  has(field: string): boolean {
    return this.json[field] !== undefined && this.json[field] !== null;
  }

  int(field: string, opts: { min?: number; default?: number } = {}): number {
    const v = this.json[field];
    if ((v === undefined || v === null) && opts.default !== undefined) return opts.default;
    const min = opts.min ?? 1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(field, `an integer ≥ ${min}`, v);
    return v;
  }

  num(field: string, opts: { default?: number; positive?: boolean } = {}): number {
    const v = this.json[field];
    if ((v === undefined || v === null) && opts.default !== undefined) return opts.default;
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.positive && v <= 0)) {
      this.fail(field, opts.positive ? 'a positive number' : 'a number', v);
    }
    return v;
  }

  str(field: string, opts: { default?: string } = {}): string {
    const v = this.json[field];
    if ((v === undefined || v === null) && opts.default !== undefined) return opts.default;
    if (typeof v !== 'string') this.fail(field, 'a string', v);
    return v;
  }

  bool(field: string, def: boolean): boolean {
    const v = this.json[field];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') this.fail(field, 'true or false', v);
    return v;
  }

  strList(field: string): string[] | undefined {
    const v = this.json[field];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) this.fail(field, 'a list of strings', v);
    return v as string[];
  }

  object(field: string): ConfigReader | undefined {
    const v = this.json[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'an object', v);
    return new ConfigReader(v as Json, `${this.file}: ${field}`);
  }

  /** Throw a named error when a relation between fields does not hold. */
  check(cond: boolean, message: string): void {
    if (!cond) throw new CheckpointError(`${this.file}: ${message}`);
  }
}
