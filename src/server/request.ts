/** Validation of the request fields every generation endpoint shares; errors name the field. */
import { Ajv } from 'ajv';
import type { ConstraintSpec } from '../engine/client.js';
import { samplingFromRequest, type SamplingParams } from '../engine/sampling.js';
import { parseStop } from '../api/stop-strings.js';
import { HttpError } from './errors.js';
import { compileSchema } from '../constrain/json-schema-grammar.js';

export type Body = Record<string, unknown>;

export interface ServerLimits {
  modelName: string;
  maxModelLen: number;
  defaultMaxTokens: number;
}

export function asBody(v: unknown): Body {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'the request body must be a JSON object');
  return v as Body;
}

export function checkModel(body: Body, limits: ServerLimits): void {
  const m = body.model;
  if (m === undefined || m === null) return; // optional here: one model per server
  if (typeof m !== 'string') throw new HttpError(400, 'model: expected a string', 'invalid_request_error', null, 'model');
  if (m !== limits.modelName) {
    throw new HttpError(404, `The model \`${m}\` does not exist (this server serves \`${limits.modelName}\`)`, 'invalid_request_error', 'model_not_found', 'model');
  }
}

export function bool(body: Body, key: string): boolean {
  const v = body[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new HttpError(400, `${key}: expected a boolean, got ${JSON.stringify(v)}`, 'invalid_request_error', null, key);
  return v;
}

export function intIn(body: Body, key: string, min: number, max: number, dflt: number): number {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new HttpError(400, `${key}: expected an integer in [${min}, ${max}], got ${JSON.stringify(v)}`, 'invalid_request_error', null, key);
  }
  return v;
}

export function includeUsage(body: Body): boolean {
  const so = body.stream_options;
  if (so === undefined || so === null) return false;
  if (typeof so !== 'object' || Array.isArray(so)) throw new HttpError(400, 'stream_options: expected an object', 'invalid_request_error', null, 'stream_options');
  const iu = (so as Body).include_usage;
  if (iu !== undefined && typeof iu !== 'boolean') throw new HttpError(400, 'stream_options.include_usage: expected a boolean', 'invalid_request_error', null, 'stream_options.include_usage');
  return iu === true;
}

/** Sampling from the body, with max tokens bounded by what the context leaves after the prompt. */
export function sampling(body: Body, limits: ServerLimits, promptLen: number): SamplingParams {
  const room = limits.maxModelLen - promptLen;
  if (room < 1) {
    throw new HttpError(400, `the prompt has ${promptLen} tokens; this model's maximum context length is ${limits.maxModelLen} tokens`, 'invalid_request_error', 'context_length_exceeded', 'messages');
  }
  const p = samplingFromRequest(body, { defaultMaxTokens: Math.min(limits.defaultMaxTokens, room), maxTokensCap: room });
  return p;
}

export function stops(body: Body): string[] {
  return parseStop(body.stop);
}

const ajv = new Ajv({ strict: false, allErrors: false });

/** Check that a JSON schema compiles; the error names the field. */
export function checkSchema(schema: unknown, field: string): Record<string, unknown> {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new HttpError(400, `${field}: expected a JSON schema object`, 'invalid_request_error', null, field);
  }
  try {
    ajv.compile(schema as object);
  } catch (e) {
    throw new HttpError(400, `${field}: invalid JSON schema: ${(e as Error).message}`, 'invalid_request_error', null, field);
  }
  compileSchema(schema, field); // can constrained decoding enforce it? (errors name the keyword)
  return schema as Record<string, unknown>;
}

/** Chat Completions `response_format` → a decoding constraint. */
export function responseFormat(v: unknown, field = 'response_format'): ConstraintSpec | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, `${field}: expected an object`, 'invalid_request_error', null, field);
  const rf = v as Body;
  switch (rf.type) {
    case 'text':
      return undefined;
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema': {
      const js = rf.json_schema;
      if (typeof js !== 'object' || js === null) throw new HttpError(400, `${field}.json_schema: expected an object with a schema`, 'invalid_request_error', null, `${field}.json_schema`);
      return { type: 'json_schema', schema: checkSchema((js as Body).schema ?? {}, `${field}.json_schema.schema`) };
    }
    default:
      throw new HttpError(400, `${field}.type: expected "text", "json_object" or "json_schema", got ${JSON.stringify(rf.type)}`, 'invalid_request_error', null, `${field}.type`);
  }
}

/** Responses API `text.format` → a decoding constraint. */
export function textFormat(v: unknown): ConstraintSpec | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, 'text: expected an object', 'invalid_request_error', null, 'text');
  const f = (v as Body).format;
  if (f === undefined || f === null) return undefined;
  if (typeof f !== 'object' || Array.isArray(f)) throw new HttpError(400, 'text.format: expected an object', 'invalid_request_error', null, 'text.format');
  const fb = f as Body;
  if (fb.type === 'json_schema') return { type: 'json_schema', schema: checkSchema(fb.schema ?? {}, 'text.format.schema') };
  return responseFormat(fb, 'text.format');
}
