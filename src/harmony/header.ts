/**
 * Parsing a message header (the text between `<|start|>` and `<|message|>`) exactly as the
 * reference does (FORMAT.md §8.1; encoding.rs parse_header_from_string), including Rust's
 * notions of whitespace.
 */
import { InputError } from '../util/errors.js';
import { FORMATTING_TOKENS } from './special-tokens.js';
import { isRole, type Role } from './types.js';

/** Rust char::is_whitespace (Unicode White_Space) */
export function isRustWhitespace(c: string): boolean {
  const cp = c.codePointAt(0)!;
  return (cp >= 0x09 && cp <= 0x0d) || cp === 0x20 || cp === 0x85 || cp === 0xa0 || cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 || cp === 0x202f || cp === 0x205f || cp === 0x3000;
}

/** Rust str::trim() */
export function rustTrim(s: string): string {
  const chars = [...s];
  let a = 0;
  let b = chars.length;
  while (a < b && isRustWhitespace(chars[a])) a++;
  while (b > a && isRustWhitespace(chars[b - 1])) b--;
  return chars.slice(a, b).join('');
}

/** Rust str::split_ascii_whitespace() */
export function splitAsciiWhitespace(s: string): string[] {
  return s.split(/[ \t\n\f\r]+/).filter((w) => w !== '');
}

export interface ParsedHeader {
  role: Role;
  /** author name: only set for tool messages (the unknown first word) */
  name: string | null;
  recipient: string | null;
  channel: string | null;
  contentType: string | null;
}

/** §8.1 step 2: take the channel after the first `<|channel|>` out of the header text */
export function extractChannel(header: string): { channel: string | null; rest: string } {
  const marker = FORMATTING_TOKENS.channel;
  const idx = header.indexOf(marker);
  if (idx < 0) return { channel: null, rest: header };
  const after = header.slice(idx + marker.length);
  let end = 0;
  for (const c of after) {
    if (isRustWhitespace(c) || c === '<') break;
    end += c.length;
  }
  const value = after.slice(0, end);
  if (value === '') throw new InputError('channel marker present but no channel value found in header');
  return { channel: value, rest: header.slice(0, idx) + after.slice(end) };
}

/**
 * The reference's parse_header_from_string. With `parseRecipientAndType` false (a header that
 * never reached `<|message|>`), every word after the role is returned as `remaining`.
 */
export function parseHeaderString(
  headerText: string,
  knownRole: Role | null,
  parseRecipientAndType: boolean,
): { header: ParsedHeader; remaining: string | null } {
  const { channel, rest } = extractChannel(headerText);
  let text = rustTrim(rest);
  const constrain = FORMATTING_TOKENS.constrain;
  if (text.includes(constrain)) text = rustTrim(text.split(constrain).join(` ${constrain}`));
  const parts = splitAsciiWhitespace(text);

  let role: Role;
  let roleWord: string | null = null;
  if (knownRole !== null) {
    role = knownRole;
  } else {
    if (parts.length === 0) throw new InputError('message header did not contain a role');
    roleWord = parts[0];
    if (isRole(roleWord)) {
      role = roleWord;
    } else if (parts.length > 1 || parts[0].startsWith('to=')) {
      // an unknown author with a recipient: a tool speaking (e.g. `browser.search to=assistant`)
      parts.shift();
      role = 'tool';
    } else {
      throw new InputError(`Unknown role: ${roleWord}`);
    }
  }
  if (parts.length > 0 && parts[0] === role) parts.shift();

  let recipient: string | null = null;
  let contentType: string | null = null;
  if (parseRecipientAndType && parts.length > 0) {
    const n = parts.length;
    const last = parts.pop()!;
    if (last.startsWith('to=')) {
      recipient = last.slice(3);
    } else if (n === 1) {
      recipient = last;
    } else {
      contentType = last;
      const raw = parts.pop();
      if (raw !== undefined) recipient = raw.startsWith('to=') ? raw.slice(3) : raw;
    }
  }
  const remaining = parts.length > 0 ? parts.join(' ') : null;
  return {
    header: { role, name: role === 'tool' ? roleWord : null, recipient, channel, contentType },
    remaining,
  };
}

/** A complete header (ended by `<|message|>`): leftover words are an error (§8.1 step 9). */
export function parseHeader(headerText: string, knownRole: Role | null): ParsedHeader {
  const { header, remaining } = parseHeaderString(headerText, knownRole, true);
  if (remaining !== null) throw new InputError(`unexpected tokens remaining in message header: Some(${JSON.stringify(remaining)})`);
  return header;
}
