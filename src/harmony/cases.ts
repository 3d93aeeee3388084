/**
 * Runs one `harmony-case/1` fixture (../shared/fixtures/harmony/README.md) against the renderer,
 * the streaming parser and the tokenizer. Everything is read from the case; nothing is assumed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { isRustWhitespace } from './header.js';
import { messageFromJson, messageToJson } from './message-json.js';
import { HarmonyRenderer, type Rendered } from './renderer.js';
import { HarmonyTokens } from './special-tokens.js';
import { StreamParser } from './stream-parser.js';
import { isRole, type Message, type Role } from './types.js';
import { decodeUtf8Lossy, decodeUtf8Strict } from './utf8.js';

export const HARMONY_CASE_SCHEMA = 'harmony-case/1';

type Obj = Record<string, any>;

export interface CaseOutcome {
  ok: boolean;
  detail: string;
}

class Mismatch extends Error {}

function fail(msg: string): never {
  throw new Mismatch(msg);
}

function show(v: unknown, max = 160): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function firstDiff(a: readonly unknown[], b: readonly unknown[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** an operation that must be rejected: it has to throw; the key phrase is only reported */
function expectError(run: () => unknown, expected: Obj, what: string): string {
  try {
    run();
  } catch (e) {
    if (e instanceof Mismatch) throw e;
    const contains = String(expected.contains ?? '');
    const matched = contains === '' || errText(e).includes(contains);
    return `${what} rejected${matched ? '' : ` (message differs: ${show(errText(e), 80)})`}`;
  }
  return fail(`${what}: expected an error (${show(expected.reference_message ?? expected.contains)}), got none`);
}

function rstrip(s: string): string {
  const chars = [...s];
  let n = chars.length;
  while (n > 0 && isRustWhitespace(chars[n - 1])) n--;
  return chars.slice(0, n).join('');
}

function normMessages(list: readonly unknown[], where: string): string[] {
  return list.map((m, i) => JSON.stringify(messageToJson(messageFromJson(m, `${where}[${i}]`))));
}

function compareMessages(got: readonly Message[], expected: readonly unknown[], where: string): void {
  const g = got.map((m) => JSON.stringify(messageToJson(m)));
  const e = normMessages(expected, where);
  if (g.length !== e.length) fail(`${where}: ${g.length} messages, expected ${e.length} (${show(g)})`);
  for (let i = 0; i < g.length; i++) if (g[i] !== e[i]) fail(`${where}[${i}]: got ${show(g[i], 300)}, expected ${show(e[i], 300)}`);
}

function roleOf(v: unknown): Role | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'string' || !isRole(v)) fail(`input.role: unknown role ${show(v)}`);
  return v;
}

export class HarmonyCaseRunner {
  readonly renderer: HarmonyRenderer;
  readonly tokens: HarmonyTokens;

  constructor(readonly tokenizer: Tokenizer) {
    this.renderer = new HarmonyRenderer(tokenizer);
    this.tokens = this.renderer.tokens;
  }

  run(c: Obj, caseDir: string): CaseOutcome {
    try {
      if (c.schema !== HARMONY_CASE_SCHEMA) fail(`schema ${show(c.schema)} is not ${HARMONY_CASE_SCHEMA}`);
      const detail = this.dispatch(c, caseDir);
      return { ok: true, detail };
    } catch (e) {
      if (e instanceof Mismatch) return { ok: false, detail: e.message };
      return { ok: false, detail: `unexpected error: ${errText(e)}` };
    }
  }

  private dispatch(c: Obj, dir: string): string {
    const input: Obj = c.input ?? {};
    const expected: Obj = c.expected ?? {};
    switch (c.kind) {
      case 'render_completion':
      case 'render_conversation':
      case 'render_training':
      case 'render_message':
        return this.render(c.kind, input, expected, dir);
      case 'parse':
        return this.parse(input, expected, dir);
      case 'stream':
        return this.stream(input, expected, dir);
      case 'tokenizer':
        return this.tokenizerOps(input, expected);
      default:
        return fail(`unknown kind ${show(c.kind)}`);
    }
  }

  private render(kind: string, input: Obj, expected: Obj, dir: string): string {
    const config = { autoDropAnalysis: input.config?.auto_drop_analysis !== false };
    const run = (): Rendered => {
      if (kind === 'render_message') {
        const opts = { conversationHasFunctionTools: input.render_options?.conversation_has_function_tools === true };
        return this.renderer.renderMessage(messageFromJson(input.message, 'input.message'), opts);
      }
      const msgs = (input.messages as unknown[]).map((m, i) => messageFromJson(m, `input.messages[${i}]`));
      if (kind === 'render_completion') return this.renderer.renderCompletion(msgs, roleOf(input.next_role) ?? fail('input.next_role missing'), config);
      if (kind === 'render_training') return this.renderer.renderTraining(msgs, config);
      return this.renderer.renderConversation(msgs, config);
    };
    if (expected.error) return expectError(run, expected.error, kind);
    const r = run();
    if (r.text !== expected.text) {
      const i = firstDiff([...r.text], [...String(expected.text)]);
      fail(`text differs at char ${i}: got ${show([...r.text].slice(i, i + 40).join(''))}, expected ${show([...String(expected.text)].slice(i, i + 40).join(''))}`);
    }
    const exp = expected.tokens as number[];
    if (r.ids.length !== exp.length || firstDiff(r.ids, exp) < exp.length) {
      const i = firstDiff(r.ids, exp);
      fail(`tokens differ at ${i}: got ${show(r.ids.slice(i, i + 8))}, expected ${show(exp.slice(i, i + 8))} (${r.ids.length} vs ${exp.length})`);
    }
    if (expected.tokens_equal_encode_of_text === true) {
      const enc = this.tokenizer.encode(r.text, { allowedSpecial: 'all' });
      if (enc.length !== exp.length || firstDiff(enc, exp) < exp.length) fail('encode(text, allowed_special=all) differs from the expected tokens');
    }
    if (typeof expected.text_file === 'string') {
      const file = fs.readFileSync(path.join(dir, expected.text_file), 'utf8');
      const want = expected.text_file_compare === 'rstrip' ? rstrip(file) : file;
      if (want !== r.text) fail(`text differs from ${expected.text_file}`);
    }
    return `${r.ids.length} tokens`;
  }

  private inputTokens(input: Obj, dir: string): number[] {
    if (Array.isArray(input.tokens)) return input.tokens as number[];
    if (typeof input.tokens_file === 'string') {
      return fs.readFileSync(path.join(dir, input.tokens_file), 'utf8').split(/\s+/).filter((s) => s !== '').map(Number);
    }
    // README: tokens == encode(text, allowed_special=all); used when no ids are given
    if (typeof input.text === 'string') return this.tokenizer.encode(input.text, { allowedSpecial: 'all' });
    if (typeof input.text_file === 'string') return this.tokenizer.encode(fs.readFileSync(path.join(dir, input.text_file), 'utf8'), { allowedSpecial: 'all' });
    return fail('input has no tokens, tokens_file or text');
  }

  private parse(input: Obj, expected: Obj, dir: string): string {
    const ids = this.inputTokens(input, dir);
    const run = (): Message[] => {
      const p = new StreamParser(this.tokenizer, { role: roleOf(input.role), strict: input.strict !== false }, this.tokens);
      for (const id of ids) p.process(id);
      p.processEos();
      return p.messages;
    };
    if (expected.error) return expectError(run, expected.error, 'parse');
    const msgs = run();
    compareMessages(msgs, expected.messages ?? [], 'messages');
    return `${msgs.length} messages`;
  }

  private stream(input: Obj, expected: Obj, dir: string): string {
    const ids = this.inputTokens(input, dir);
    const exact = expected.steps_exact !== false;
    const p = new StreamParser(this.tokenizer, { role: roleOf(input.role), strict: input.strict !== false }, this.tokens);
    const steps: Obj[] = expected.steps ?? [];
    const inputs: (number | 'EOS')[] = [...ids, ...(input.eos === true ? ['EOS' as const] : [])];
    let errored = false;
    for (let k = 0; k < inputs.length; k++) {
      const step = steps[k];
      if (!step) fail(`step ${k}: no expected step for input ${inputs[k]}`);
      const before = p.messages.length;
      const feed = () => (inputs[k] === 'EOS' ? p.processEos() : p.process(inputs[k] as number));
      if (step.error) {
        expectError(feed, step.error, `step ${k}`);
        errored = true;
        break;
      }
      try {
        feed();
      } catch (e) {
        fail(`step ${k} (token ${inputs[k]}): unexpected error: ${errText(e)}`);
      }
      const got: Obj = {
        state: p.state,
        current_role: p.currentRole,
        current_channel: p.currentChannel,
        current_recipient: p.currentRecipient,
        current_content_type: p.currentContentType,
      };
      if (exact) {
        got.last_content_delta = p.lastContentDelta;
        got.current_content = p.currentContent;
      }
      for (const [key, v] of Object.entries(got)) {
        if (v !== (step[key] ?? null)) fail(`step ${k} (token ${inputs[k]}): ${key} = ${show(v)}, expected ${show(step[key])}`);
      }
      compareMessages(p.messages.slice(before), step.new_messages ?? [], `step ${k} new_messages`);
    }
    if (expected.error && !errored) fail('expected the stream to be rejected');
    if (!errored && steps.length !== inputs.length) fail(`${steps.length} expected steps for ${inputs.length} inputs`);
    compareMessages(p.messages, expected.messages ?? [], 'messages');
    return `${inputs.length} steps${exact ? '' : ' (deltas informative)'}`;
  }

  private tokenizerOps(input: Obj, expected: Obj): string {
    const ops: Obj[] = input.ops ?? [];
    const results: Obj[] = expected.results ?? [];
    if (ops.length !== results.length) fail(`${ops.length} ops but ${results.length} results`);
    ops.forEach((op, i) => {
      const want = results[i];
      const where = `ops[${i}] ${op.op}`;
      const run = (): Obj => this.tokenizerOp(op);
      if (want.error) {
        expectError(run, want.error, where);
        return;
      }
      const got = run();
      for (const key of Object.keys(want)) {
        if (JSON.stringify(got[key]) !== JSON.stringify(want[key])) fail(`${where}: ${key} = ${show(got[key])}, expected ${show(want[key])}`);
      }
    });
    return `${ops.length} ops`;
  }

  private tokenizerOp(op: Obj): Obj {
    const tk = this.tokenizer;
    switch (op.op) {
      case 'encode': {
        const opts: { allowedSpecial: 'all' | string[]; disallowedSpecial?: 'all' | string[] } = { allowedSpecial: op.allowed_special ?? [] };
        if (op.disallowed_special !== undefined) opts.disallowedSpecial = op.disallowed_special;
        return { tokens: tk.encode(op.text, opts) };
      }
      case 'decode_utf8':
        return { text: decodeUtf8Strict(tk.decodeBytes(op.tokens)) };
      case 'decode_lossy': {
        const bytes = tk.decodeBytes(op.tokens);
        return { text: decodeUtf8Lossy(bytes), bytes: [...bytes] };
      }
      case 'is_special_token':
        return { is_special: tk.isSpecial(op.token) };
      case 'stop_tokens':
        return {
          stop_tokens: [...this.tokens.stopTokens].sort((a, b) => a - b),
          stop_tokens_for_assistant_actions: [...this.tokens.stopTokensForAssistantActions].sort((a, b) => a - b),
        };
      default:
        return fail(`unknown tokenizer op ${show(op.op)}`);
    }
  }
}
