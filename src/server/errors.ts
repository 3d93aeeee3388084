/** OpenAI-style error bodies: {"error": {"message", "type", "param", "code"}}. */
import { TesseraError } from '../util/errors.js';

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error', readonly code: string | null = null, readonly param: string | null = null) {
    super(message);
  }
}

export function errorBody(message: string, type: string, code: string | null = null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

/** Map anything thrown while handling a request to a status and body; never leaks a stack. */
export function toHttp(e: unknown): { status: number; body: ReturnType<typeof errorBody> } {
  if (e instanceof HttpError) return { status: e.status, body: errorBody(e.message, e.type, e.code, e.param) };
  if (e instanceof TesseraError) {
    const param = /^([A-Za-z_][\w.[\]]*):/.exec(e.message)?.[1] ?? null;
    return { status: 400, body: errorBody(e.message, 'invalid_request_error', e.code, param) };
  }
  const fe = e as { statusCode?: number; message?: string; code?: string };
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // fastify's own errors: malformed JSON, body too large, wrong content type
    const msg = fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the request body is empty'
      : fe.code?.startsWith('FST_ERR_CTP') || (fe.message ?? '').includes('JSON') ? `invalid JSON body: ${fe.message}` : String(fe.message);
    return { status: fe.statusCode, body: errorBody(msg, 'invalid_request_error', fe.code ?? null) };
  }
  return { status: 500, body: errorBody(`internal error: ${e instanceof Error ? e.message : String(e)}`, 'server_error') };
}
