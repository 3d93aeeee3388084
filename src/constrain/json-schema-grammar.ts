/**
 * JSON constrained by a JSON schema, as a byte-level recognizer for constrained decoding.
 * A schema compiles to a tree of nodes; the recognizer is a pushdown machine whose states are
 * immutable (a linked stack of frames), so the token mask can try a byte and keep or drop the
 * resulting state cheaply, and `anyOf` branches run side by side as a set of states.
 *
 * Enforced: type (incl. arrays of types), properties (any order, each once; only declared
 * properties unless additionalProperties allows more), required, additionalProperties, items,
 * prefixItems, minItems/maxItems, minLength/maxLength (in code points; such strings are written
 * without \u escapes), enum, const, anyOf/oneOf, local $ref/$defs, nullable.
 * Annotations (title, description, default, examples, format, $schema, $id) are ignored. Keywords
 * that would need more than this (pattern, minimum, multipleOf, ...) are rejected, so
 * that whatever is generated validates against the schema.
 */
import { InputError } from '../util/errors.js';

export type Node =
  | { k: 'any' }
  | { k: 'object'; props: Map<string, Node>; required: Set<string>; extra: Node | null }
  | { k: 'array'; items: Node; prefix: Node[]; min: number; max: number }
  | { k: 'string'; min: number; max: number }
  | { k: 'number'; integer: boolean }
  | { k: 'boolean' }
  | { k: 'null' }
  /** exact JSON texts (enum/const), compared byte for byte after serialisation */
  | { k: 'literal'; texts: string[] }
  | { k: 'anyOf'; alts: Node[] }
  | { k: 'ref'; target: () => Node };

const IGNORED = new Set(['title', 'description', 'default', 'examples', 'format', '$schema', '$id', '$comment', 'strict', 'deprecated', 'readOnly', 'writeOnly', 'discriminator', '$defs', 'definitions']);
const HANDLED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'minItems', 'maxItems', 'minLength', 'maxLength', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', 'nullable']);

/** Compile a schema; errors name the JSON path of the offending keyword. */
export function compileSchema(schema: unknown, path = 'schema'): Node {
  const root = schema;
  const refs = new Map<string, Node>();
  const resolve = (ref: string, at: string): Node => {
    if (!ref.startsWith('#')) throw new InputError(`${at}.$ref: only local references ("#/...") are supported, got "${ref}"`);
    const cached = refs.get(ref);
    if (cached) return cached;
    let target: unknown = root;
    for (const part of ref.slice(1).split('/').filter(Boolean)) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      if (typeof target !== 'object' || target === null || !(key in (target as object))) {
        throw new InputError(`${at}.$ref: "${ref}" does not resolve`);
      }
      target = (target as Record<string, unknown>)[key];
    }
    let node: Node | null = null;
    const lazy: Node = { k: 'ref', target: () => node! };
    refs.set(ref, lazy);
    node = compile(target, `${at}.$ref`);
    return lazy;
  };
  const compile = (s: unknown, at: string): Node => {
    if (s === true || (typeof s === 'object' && s !== null && Object.keys(s).length === 0)) return { k: 'any' };
    if (s === false) throw new InputError(`${at}: a "false" schema admits nothing`);
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new InputError(`${at}: expected a schema object`);
    const o = s as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!IGNORED.has(key) && !HANDLED.has(key) && !key.startsWith('x-')) {
        throw new InputError(`${at}.${key}: this keyword cannot be enforced by constrained decoding`);
      }
    }
    if (typeof o.$ref === 'string') return resolve(o.$ref, at);
    if ('const' in o) return { k: 'literal', texts: [JSON.stringify(o.const)] };
    if (Array.isArray(o.enum)) {
      if (o.enum.length === 0) throw new InputError(`${at}.enum: must not be empty`);
      return { k: 'literal', texts: o.enum.map((v) => JSON.stringify(v)) };
    }
    const alts = (o.anyOf ?? o.oneOf) as unknown;
    if (alts !== undefined) {
      if (!Array.isArray(alts) || alts.length === 0) throw new InputError(`${at}.anyOf: expected a non-empty array`);
      return { k: 'anyOf', alts: alts.map((a, i) => compile(a, `${at}.anyOf[${i}]`)) };
    }
    if (o.allOf !== undefined) {
      if (!Array.isArray(o.allOf) || o.allOf.length !== 1) throw new InputError(`${at}.allOf: only a single-schema allOf is supported`);
      return compile(o.allOf[0], `${at}.allOf[0]`);
    }
    let types: string[];
    if (o.type === undefined) {
      types = 'properties' in o ? ['object'] : 'items' in o ? ['array'] : [];
      if (types.length === 0) return { k: 'any' };
    } else types = Array.isArray(o.type) ? (o.type as string[]) : [o.type as string];
    if (o.nullable === true && !types.includes('null')) types = [...types, 'null'];
    const nodes = types.map((t) => typeNode(o, t, at));
    return nodes.length === 1 ? nodes[0] : { k: 'anyOf', alts: nodes };
  };
  const typeNode = (o: Record<string, unknown>, t: string, at: string): Node => {
    switch (t) {
      case 'object': {
        const props = new Map<string, Node>();
        const p = (o.properties ?? {}) as Record<string, unknown>;
        if (typeof p !== 'object' || Array.isArray(p)) throw new InputError(`${at}.properties: expected an object`);
        for (const [name, sub] of Object.entries(p)) props.set(name, compile(sub, `${at}.properties.${name}`));
        const req = (o.required ?? []) as unknown;
        if (!Array.isArray(req) || req.some((r) => typeof r !== 'string')) throw new InputError(`${at}.required: expected an array of strings`);
        for (const r of req as string[]) if (!props.has(r) && o.additionalProperties === false) throw new InputError(`${at}.required: "${r}" is not a declared property`);
        const ap = o.additionalProperties;
        // without properties an object is free-form; with them, only the declared ones are generated
        const extra = ap === undefined ? (props.size === 0 ? ({ k: 'any' } as Node) : null) : ap === false ? null : compile(ap, `${at}.additionalProperties`);
        return { k: 'object', props, required: new Set(req as string[]), extra };
      }
      case 'array': {
        const prefix = Array.isArray(o.prefixItems) ? o.prefixItems.map((x, i) => compile(x, `${at}.prefixItems[${i}]`)) : [];
        const items = o.items === undefined ? ({ k: 'any' } as Node) : compile(o.items, `${at}.items`);
        const min = typeof o.minItems === 'number' ? o.minItems : 0;
        const max = typeof o.maxItems === 'number' ? o.maxItems : Infinity;
        return { k: 'array', items, prefix, min, max };
      }
      case 'string': {
        const bound = (key: 'minLength' | 'maxLength', dflt: number) => {
          const v = o[key];
          if (v === undefined) return dflt;
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new InputError(`${at}.${key}: expected a non-negative integer`);
          return v;
        };
        const min = bound('minLength', 0);
        const max = bound('maxLength', Infinity);
        if (min > max) throw new InputError(`${at}.minLength: ${min} exceeds maxLength ${max}`);
        return { k: 'string', min, max };
      }
      case 'number': return { k: 'number', integer: false };
      case 'integer': return { k: 'number', integer: true };
      case 'boolean': return { k: 'boolean' };
      case 'null': return { k: 'null' };
      default: throw new InputError(`${at}.type: unknown type ${JSON.stringify(t)}`);
    }
  };
  return compile(schema, path);
}

/** json_object: any JSON object. */
export const ANY_OBJECT: Node = { k: 'object', props: new Map(), required: new Set(), extra: { k: 'any' } };
const ANY: Node = { k: 'any' };

// ---- the recognizer -------------------------------------------------------------------------

type Frame =
  /** expecting a value of `node` (leading whitespace allowed) */
  | { t: 'value'; node: Node }
  | { t: 'obj'; node: Extract<Node, { k: 'object' }>; seen: readonly string[]; phase: 'open' | 'colon' | 'after' | 'comma'; key: string }
  /** a key being read: `cands` are the property names still possible (null = any key) */
  | { t: 'key'; cands: readonly string[] | null; buf: string; esc: number }
  | { t: 'arr'; node: Extract<Node, { k: 'array' }>; n: number; phase: 'open' | 'after' | 'comma' }
  /** a string: `n` code points so far, counted only where min/max bound it */
  | { t: 'str'; esc: number; n: number; min: number; max: number }
  | { t: 'num'; integer: boolean; phase: number }
  /** literal texts: bytes consumed so far */
  | { t: 'lit'; texts: readonly string[]; pos: number };

interface Stack {
  f: Frame;
  up: Stack | null;
}

export interface State {
  stack: Stack | null;
  /** consecutive whitespace bytes (capped, so the model cannot stall in whitespace) */
  ws: number;
}

const MAX_WS = 24;
const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const HEX = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

export function initialState(root: Node): State {
  return { stack: { f: { t: 'value', node: root }, up: null }, ws: 0 };
}

function push(up: Stack | null, f: Frame): Stack {
  return { f, up };
}

/** Expand refs and anyOf into concrete nodes. */
function concrete(node: Node, out: Node[] = []): Node[] {
  if (node.k === 'ref') return concrete(node.target(), out);
  if (node.k === 'anyOf') for (const a of node.alts) concrete(a, out);
  else out.push(node);
  return out;
}

/** After a value finished: return control to the parent frame. */
function popped(up: Stack | null): Stack | null {
  if (!up) return null;
  const f = up.f;
  if (f.t === 'obj') return push(up.up, { ...f, phase: 'after' });
  if (f.t === 'arr') return push(up.up, { ...f, n: f.n + 1, phase: 'after' });
  return up;
}

/** Start of a value of `node` at byte b (not whitespace). */
function startValue(node: Node, b: number, up: Stack | null, out: State[]): void {
  for (const n of concrete(node)) {
    switch (n.k) {
      case 'any':
        if (b === 0x7b) out.push({ stack: push(up, { t: 'obj', node: ANY_OBJECT as Extract<Node, { k: 'object' }>, seen: [], phase: 'open', key: '' }), ws: 0 });
        else if (b === 0x5b) out.push({ stack: push(up, { t: 'arr', node: { k: 'array', items: ANY, prefix: [], min: 0, max: Infinity }, n: 0, phase: 'open' }), ws: 0 });
        else if (b === 0x22) out.push({ stack: push(up, FREE_STRING), ws: 0 });
        else if (b === 0x2d || isDigit(b)) startNumber(false, b, up, out);
        else startLiteral(['true', 'false', 'null'], b, up, out);
        break;
      case 'object':
        if (b === 0x7b) out.push({ stack: push(up, { t: 'obj', node: n, seen: [], phase: 'open', key: '' }), ws: 0 });
        break;
      case 'array':
        if (b === 0x5b) out.push({ stack: push(up, { t: 'arr', node: n, n: 0, phase: 'open' }), ws: 0 });
        break;
      case 'string':
        if (b === 0x22) out.push({ stack: push(up, { t: 'str', esc: 0, n: 0, min: n.min, max: n.max }), ws: 0 });
        break;
      case 'number':
        if (b === 0x2d || isDigit(b)) startNumber(n.integer, b, up, out);
        break;
      case 'boolean':
        startLiteral(['true', 'false'], b, up, out);
        break;
      case 'null':
        startLiteral(['null'], b, up, out);
        break;
      case 'literal':
        startLiteral(n.texts, b, up, out);
        break;
    }
  }
}

function startLiteral(texts: readonly string[], b: number, up: Stack | null, out: State[]): void {
  const next = texts.filter((t) => t.charCodeAt(0) === b || utf8At(t, 0) === b);
  if (next.length === 0) return;
  const done = next.filter((t) => utf8Len(t) === 1);
  if (done.length > 0) out.push({ stack: popped(up), ws: 0 });
  const more = next.filter((t) => utf8Len(t) > 1);
  if (more.length > 0) out.push({ stack: push(up, { t: 'lit', texts: more, pos: 1 }), ws: 0 });
}

// literal texts are compared as UTF-8 bytes; cache each text's bytes
const bytesCache = new Map<string, Uint8Array>();
const enc = new TextEncoder();
function utf8(t: string): Uint8Array {
  let b = bytesCache.get(t);
  if (!b) {
    b = enc.encode(t);
    bytesCache.set(t, b);
  }
  return b;
}
const utf8At = (t: string, i: number) => utf8(t)[i];
const utf8Len = (t: string) => utf8(t).length;

/** Number phases: 0 after '-', 1 after leading 0, 2 in int digits, 3 after '.', 4 in frac, 5 after e, 6 after e sign, 7 in exp */
function startNumber(integer: boolean, b: number, up: Stack | null, out: State[]): void {
  out.push({ stack: push(up, { t: 'num', integer, phase: b === 0x2d ? 0 : b === 0x30 ? 1 : 2 }), ws: 0 });
}
const NUM_ACCEPT = new Set([1, 2, 4, 7]);
const FREE_STRING: Frame = { t: 'str', esc: 0, n: 0, min: 0, max: Infinity };
const isBounded = (f: Extract<Frame, { t: 'str' }>) => f.min > 0 || f.max !== Infinity;

/** All states after feeding byte b to state s (empty = rejected). */
export function step(s: State, b: number, out: State[] = []): State[] {
  const st = s.stack;
  if (!st) {
    // the value is complete: only trailing whitespace
    if (isWs(b) && s.ws < MAX_WS) out.push({ stack: null, ws: s.ws + 1 });
    return out;
  }
  const f = st.f;
  const up = st.up;
  switch (f.t) {
    case 'value':
      if (isWs(b)) {
        if (s.ws < MAX_WS) out.push({ stack: st, ws: s.ws + 1 });
        return out;
      }
      startValue(f.node, b, up, out);
      return out;
    case 'str': {
      const bounded = isBounded(f);
      if (f.esc > 0) {
        // f.esc: 1 after backslash, 2..5 hex digits of \u (a bounded string counts each escape as
        // one code point, so it takes no \u: a surrogate pair would be two escapes, one point)
        if (f.esc === 1) {
          if (b === 0x75) { if (!bounded) out.push({ stack: push(up, { ...f, esc: 2 }), ws: 0 }); }
          else if ('"\\/bfnrt'.includes(String.fromCharCode(b))) out.push({ stack: push(up, { ...f, esc: 0 }), ws: 0 });
        } else if (HEX(b)) out.push({ stack: push(up, { ...f, esc: f.esc === 5 ? 0 : f.esc + 1 }), ws: 0 });
        return out;
      }
      if (b === 0x22) {
        if (f.n >= f.min) out.push({ stack: popped(up), ws: 0 });
      } else if (b < 0x20) {
        // control bytes must be escaped
      } else if (!bounded) out.push({ stack: b === 0x5c ? push(up, { ...f, esc: 1 }) : st, ws: 0 });
      else if (b >= 0x80 && b < 0xc0) out.push({ stack: st, ws: 0 }); // a UTF-8 continuation byte
      else if (f.n < f.max) out.push({ stack: push(up, { ...f, n: f.n + 1, esc: b === 0x5c ? 1 : 0 }), ws: 0 });
      return out;
    }
    case 'num': {
      const p = f.phase;
      const go = (phase: number) => out.push({ stack: push(up, { ...f, phase }), ws: 0 });
      if (isDigit(b)) {
        if (p === 0) go(b === 0x30 ? 1 : 2);
        else if (p === 2) go(2);
        else if (p === 3 || p === 4) go(4);
        else if (p === 5 || p === 6 || p === 7) go(7);
        return out;
      }
      if (b === 0x2e && (p === 1 || p === 2) && !f.integer) { go(3); return out; }
      if ((b === 0x65 || b === 0x45) && (p === 1 || p === 2 || p === 4) && !f.integer) { go(5); return out; }
      if ((b === 0x2b || b === 0x2d) && p === 5) { go(6); return out; }
      // any other byte ends the number (if it may end here) and goes to the parent
      if (NUM_ACCEPT.has(p)) {
        const parent = popped(up);
        if (parent === null) {
          if (isWs(b)) out.push({ stack: null, ws: 1 });
        } else step({ stack: parent, ws: 0 }, b, out);
      }
      return out;
    }
    case 'lit': {
      const next = f.texts.filter((t) => utf8At(t, f.pos) === b);
      if (next.length === 0) return out;
      const done = next.filter((t) => utf8Len(t) === f.pos + 1);
      if (done.length > 0) out.push({ stack: popped(up), ws: 0 });
      const more = next.filter((t) => utf8Len(t) > f.pos + 1);
      if (more.length > 0) out.push({ stack: push(up, { t: 'lit', texts: more, pos: f.pos + 1 }), ws: 0 });
      return out;
    }
    case 'key': {
      // keys are matched as raw bytes (a latin1 string of UTF-8 bytes); constrained keys have no escapes
      if (f.esc > 0) {
        if (f.esc === 1) {
          if (b === 0x75) out.push({ stack: push(up, { ...f, esc: 2 }), ws: 0 });
          else if ('"\\/bfnrt'.includes(String.fromCharCode(b))) out.push({ stack: push(up, { ...f, esc: 0 }), ws: 0 });
        } else if (HEX(b)) out.push({ stack: push(up, { ...f, esc: f.esc === 5 ? 0 : f.esc + 1 }), ws: 0 });
        return out;
      }
      if (b === 0x22) {
        if (f.cands === null || f.cands.some((c) => latin1Utf8(c) === f.buf)) {
          const parent = up!.f as Extract<Frame, { t: 'obj' }>;
          out.push({ stack: push(up!.up, { ...parent, phase: 'colon', key: decodeLatin1(f.buf) }), ws: 0 });
        }
        return out;
      }
      if (b < 0x20) return out;
      if (f.cands === null) {
        // a free key: only its syntax matters
        out.push({ stack: push(up, { ...f, buf: f.buf + String.fromCharCode(b), esc: b === 0x5c ? 1 : 0 }), ws: 0 });
        return out;
      }
      if (b === 0x5c) return out;
      const buf = f.buf + String.fromCharCode(b);
      const cands = f.cands.filter((c) => latin1Utf8(c).startsWith(buf));
      if (cands.length > 0) out.push({ stack: push(up, { ...f, cands, buf }), ws: 0 });
      return out;
    }
    case 'obj': {
      const n = f.node;
      if (isWs(b)) {
        if (s.ws < MAX_WS) out.push({ stack: st, ws: s.ws + 1 });
        return out;
      }
      const remaining = [...n.props.keys()].filter((k) => !f.seen.includes(k));
      const requiredLeft = [...n.required].some((k) => !f.seen.includes(k));
      const canAddKey = remaining.length > 0 || n.extra !== null;
      if (f.phase === 'open' || f.phase === 'comma') {
        if (b === 0x7d && f.phase === 'open' && !requiredLeft) out.push({ stack: popped(up), ws: 0 });
        else if (b === 0x22 && canAddKey) {
          const cands = n.extra !== null ? null : remaining;
          out.push({ stack: push(st, { t: 'key', cands, buf: '', esc: 0 }), ws: 0 });
        }
        return out;
      }
      if (f.phase === 'colon') {
        if (b === 0x3a) {
          const node = n.props.get(f.key) ?? n.extra ?? ANY;
          const seen = n.props.has(f.key) ? [...f.seen, f.key] : f.seen;
          out.push({ stack: push(push(up, { ...f, seen, phase: 'after' }), { t: 'value', node }), ws: 0 });
        }
        return out;
      }
      // after a member: ',' or '}'
      if (b === 0x2c && canAddKey) out.push({ stack: push(up, { ...f, phase: 'comma' }), ws: 0 });
      else if (b === 0x7d && !requiredLeft) out.push({ stack: popped(up), ws: 0 });
      return out;
    }
    case 'arr': {
      const n = f.node;
      if (isWs(b)) {
        if (s.ws < MAX_WS) out.push({ stack: st, ws: s.ws + 1 });
        return out;
      }
      const itemNode = f.n < n.prefix.length ? n.prefix[f.n] : n.items;
      if (f.phase === 'open') {
        if (b === 0x5d) {
          if (n.min === 0) out.push({ stack: popped(up), ws: 0 });
          return out;
        }
        if (n.max === 0) return out;
        startValue(itemNode, b, push(up, { ...f, phase: 'after' }), out);
        // startValue pops into 'after' with n+1 via popped(); the frame below counts items
        return out;
      }
      if (f.phase === 'comma') {
        startValue(itemNode, b, push(up, { ...f, phase: 'after' }), out);
        return out;
      }
      if (b === 0x2c && f.n < n.max) out.push({ stack: push(up, { ...f, phase: 'comma' }), ws: 0 });
      else if (b === 0x5d && f.n >= n.min) out.push({ stack: popped(up), ws: 0 });
      return out;
    }
  }
}

/** Can generation stop here (the top-level value is complete)? */
export function canFinish(s: State): boolean {
  if (s.stack === null) return true;
  const f = s.stack.f;
  return f.t === 'num' && NUM_ACCEPT.has(f.phase) && s.stack.up === null;
}

const latin1Cache = new Map<string, string>();
/** a string's UTF-8 bytes as a latin1 string (one char per byte) */
function latin1Utf8(s: string): string {
  let r = latin1Cache.get(s);
  if (r === undefined) {
    r = String.fromCharCode(...enc.encode(s));
    latin1Cache.set(s, r);
  }
  return r;
}
function decodeLatin1(buf: string): string {
  const bytes = new Uint8Array(buf.length);
  for (let i = 0; i < buf.length; i++) bytes[i] = buf.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** Is the state inside an unconstrained string (any byte but '"', '\' and controls continues it)? */
export function inFreeString(s: State): boolean {
  return s.stack !== null && s.stack.f.t === 'str' && s.stack.f.esc === 0 && !isBounded(s.stack.f);
}

/** Whether constrained decoding can enforce a schema (some keywords it rejects). */
export function enforceable(schema: Record<string, unknown>): boolean {
  try {
    compileSchema(schema);
    return true;
  } catch {
    return false;
  }
}
