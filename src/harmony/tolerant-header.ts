/**
 * Header interpretation for model output that may be malformed (the engine-facing parser).
 * Unlike the reference (header.ts) it never fails and never drops text: whatever is not
 * recognised as role, channel, recipient or content type is returned verbatim as `leftover`,
 * which the caller turns into message content.
 */
import { isRustWhitespace } from './header.js';
import { FORMATTING_TOKENS } from './special-tokens.js';
import { isRole, type Role } from './types.js';

export const KNOWN_CHANNELS = ['analysis', 'commentary', 'final'] as const;
/** bare content types the model writes instead of `<|constrain|>json` */
const BARE_CONTENT_TYPES = new Set(['json', 'code']);
/** recipients the model may write without `to=` */
const BARE_RECIPIENT = /^(functions\.[^\s<]+|browser\.[^\s<]+|python|container\.[^\s<]+)$/;
const NAME_CHARS = /^[A-Za-z0-9_.\-:\/]+/;
const CONTENT_TYPE_SUFFIX = /^[A-Za-z0-9_.+\-/]*/;
/** content types written after `<|constrain|>`; a known one is taken even when text follows it */
const KNOWN_CONTENT_TYPES = ['json', 'code', 'text', 'python', 'markdown', 'yaml', 'xml', 'html'];

export interface TolerantHeader {
  role: Role;
  name: string | null;
  channel: string | null;
  recipient: string | null;
  contentType: string | null;
  /** header text that is not structure, verbatim ('' when none) */
  leftover: string;
  /** something did not follow the format */
  malformed: boolean;
}

interface Word {
  text: string;
  start: number;
}

/**
 * words split on whitespace, before every `<|constrain|>` and at `seam` (where a channel was
 * cut out), with their offsets
 */
function words(s: string, seam: number): Word[] {
  const out: Word[] = [];
  let i = 0;
  const c = FORMATTING_TOKENS.constrain;
  while (i < s.length) {
    while (i < s.length && isRustWhitespace(s[i])) i++;
    if (i >= s.length) break;
    const start = i;
    i++;
    while (i < s.length && i !== seam && !isRustWhitespace(s[i]) && !s.startsWith(c, i)) i++;
    out.push({ text: s.slice(start, i), start });
  }
  return out;
}

/**
 * @param knownRole the role already given by the prompt (`<|start|>assistant`), or null
 * @param complete true when the header ended with `<|message|>`; otherwise bare words are
 *   never taken as recipient/content type (they are more likely content)
 */
export function parseTolerantHeader(text: string, knownRole: Role | null, complete: boolean): TolerantHeader {
  let malformed = false;
  let channel: string | null = null;
  let rest = text;
  let seam = -1;
  const marker = FORMATTING_TOKENS.channel;
  const idx = rest.indexOf(marker);
  if (idx >= 0) {
    const after = rest.slice(idx + marker.length);
    // the longest known channel name that starts the text after the marker
    const known = KNOWN_CHANNELS.filter((ch) => after.startsWith(ch)).sort((a, b) => b.length - a.length)[0];
    if (known !== undefined) {
      channel = known;
      rest = rest.slice(0, idx) + after.slice(known.length);
      seam = idx;
      const next = after.slice(known.length, known.length + 1);
      if (next !== '' && !isRustWhitespace(next) && next !== '<') malformed = true;
    } else {
      // no channel we know: drop only the marker, keep what follows as text
      rest = rest.slice(0, idx) + after;
      seam = idx;
      malformed = true;
    }
  }

  const ws = words(rest, seam);
  let k = 0;
  let role: Role = knownRole ?? 'assistant';
  let name: string | null = null;
  /** end of the last structural word: leftover starts here, its leading whitespace kept */
  let prevEnd = 0;
  const consume = (w: Word) => {
    k++;
    prevEnd = w.start + w.text.length;
  };
  if (knownRole !== null) {
    if (ws[k]?.text === knownRole) consume(ws[k]);
  } else if (ws[k] && isRole(ws[k].text)) {
    role = ws[k].text as Role;
    consume(ws[k]);
  } else if (ws[k] && ws[k + 1]?.text.startsWith('to=') && !ws[k].text.startsWith('to=') && !ws[k].text.startsWith(FORMATTING_TOKENS.constrain)) {
    // `browser.search to=assistant`: a tool speaking (only with a recipient: a lone word is more likely text)
    role = 'tool';
    name = ws[k].text;
    consume(ws[k]);
  } else {
    malformed = true; // no role word: assume the assistant
  }

  let recipient: string | null = null;
  let contentType: string | null = null;
  let leftoverFrom = -1;
  while (k < ws.length) {
    const word = ws[k];
    const w = word.text;
    if (recipient === null && w.startsWith('to=') && NAME_CHARS.test(w.slice(3))) {
      const nm = NAME_CHARS.exec(w.slice(3))![0];
      recipient = nm;
      if (nm.length + 3 < w.length) { leftoverFrom = word.start + 3 + nm.length; break; }
      consume(word);
      continue;
    }
    if (contentType === null && w.startsWith(FORMATTING_TOKENS.constrain)) {
      const after = w.slice(FORMATTING_TOKENS.constrain.length);
      const known = KNOWN_CONTENT_TYPES.filter((t) => after.startsWith(t)).sort((a, b) => b.length - a.length)[0];
      // an unknown type only in a complete header: in a cut-short one the word is more likely content
      const sfx = known ?? (complete ? CONTENT_TYPE_SUFFIX.exec(after)![0] : '');
      contentType = FORMATTING_TOKENS.constrain + sfx;
      const used = FORMATTING_TOKENS.constrain.length + sfx.length;
      if (used < w.length) { leftoverFrom = word.start + used; break; }
      consume(word);
      continue;
    }
    if (complete && k === ws.length - 1 && contentType === null && BARE_CONTENT_TYPES.has(w)) {
      contentType = w;
      consume(word);
      continue;
    }
    if (complete && recipient === null && BARE_RECIPIENT.test(w)) {
      recipient = w;
      consume(word);
      continue;
    }
    leftoverFrom = prevEnd;
    break;
  }
  let leftover = '';
  if (leftoverFrom >= 0) {
    leftover = rest.slice(leftoverFrom);
    malformed = true;
  } else {
    // whitespace after the last structural word: the model's separator, or content that slipped
    // into the header when `<|message|>` moved; kept so that no byte is lost
    leftover = rest.slice(prevEnd);
  }
  return { role, name, channel, recipient, contentType, leftover, malformed };
}
