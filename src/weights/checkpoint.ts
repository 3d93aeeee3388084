/**
 * A Hugging Face checkpoint folder as released: config.json plus one `model.safetensors` or the
 * shards named in `model.safetensors.index.json`. Tensors are looked up by name across shards
 * and checked against the shape and dtype the model expects.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../util/errors.js';
import { DType } from './dtypes.js';
import { type ReadOptions, SafetensorsFile, StoredTensor, TensorInfo } from './safetensors.js';

export type Json = Record<string, unknown>;

export function readJsonFile(file: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new CheckpointError(`${file}: file not found`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CheckpointError(`${file}: expected a JSON object`);
  return v as Json;
}

export class Checkpoint {
  readonly config: Json;
  readonly configPath: string;
  private files: SafetensorsFile[] = [];
  private index = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();

  /** bytes of the checkpoint's safetensors files (what a warm page cache holds for it) */
  get bytes(): number {
    let n = 0;
    for (const f of this.files) n += fs.statSync(f.path).size;
    return n;
  }

  constructor(readonly dir: string) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      throw new CheckpointError(`${dir}: not a checkpoint folder (no such directory)`);
    }
    this.configPath = path.join(dir, 'config.json');
    this.config = readJsonFile(this.configPath);
    const indexPath = path.join(dir, 'model.safetensors.index.json');
    const single = path.join(dir, 'model.safetensors');
    try {
      if (fs.existsSync(indexPath)) {
        const idx = readJsonFile(indexPath);
        const wm = idx.weight_map;
        if (!wm || typeof wm !== 'object') throw new CheckpointError(`${indexPath}: missing "weight_map"`);
        const byFile = new Map<string, SafetensorsFile>();
        for (const [name, fileName] of Object.entries(wm as Record<string, unknown>)) {
          if (typeof fileName !== 'string') throw new CheckpointError(`${indexPath}: weight_map.${name} is not a file name`);
          let f = byFile.get(fileName);
          if (!f) {
            f = new SafetensorsFile(path.join(dir, fileName));
            byFile.set(fileName, f);
            this.files.push(f);
          }
          const info = f.tensors.get(name);
          if (!info) throw new CheckpointError(`${f.path}: tensor ${name} (listed in ${indexPath}) not found`);
          this.index.set(name, { file: f, info });
        }
      } else if (fs.existsSync(single)) {
        const f = new SafetensorsFile(single);
        this.files.push(f);
        for (const [name, info] of f.tensors) this.index.set(name, { file: f, info });
      } else {
        throw new CheckpointError(`${dir}: no model.safetensors or model.safetensors.index.json`);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.index.has(name);
  }

  names(): string[] {
    return [...this.index.keys()];
  }

  info(name: string): TensorInfo | undefined {
    return this.index.get(name)?.info;
  }

  /** Read a tensor, checking its dtype (one of `dtypes`) and shape. */
  tensor(name: string, dtypes: DType | DType[], shape?: number[], opts?: ReadOptions): StoredTensor {
    const e = this.index.get(name);
    if (!e) throw new CheckpointError(`${this.dir}: missing tensor ${name}`);
    const ok = Array.isArray(dtypes) ? dtypes : [dtypes];
    if (!ok.includes(e.info.dtype)) {
      throw new CheckpointError(`${e.file.path}: tensor ${name} has dtype ${e.info.dtype}, expected ${ok.join(' or ')}`);
    }
    if (shape && (shape.length !== e.info.shape.length || shape.some((d, i) => d !== e.info.shape[i]))) {
      throw new CheckpointError(
        `${e.file.path}: tensor ${name} has shape [${e.info.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    return e.file.read(name, opts);
  }

  close(): void {
    for (const f of this.files) f.close();
    this.files = [];
  }
}
