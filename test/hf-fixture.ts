/**
 * A small but real byte-level BPE tokenizer.json (GPT-2 alphabet, a few merges, chat special
 * tokens) and a Nemotron/Qwen-style chat template, written into a temp folder for the tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from './helpers.js';

export const SPECIALS = ['<s>', '</s>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<tool_call>', '</tool_call>'];

function byteChars(): string[] {
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out.push(String.fromCharCode(printable ? b : 256 + n++));
  }
  return out;
}

export function tinyTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((s, i) => { vocab[s] = i; });
  let next = SPECIALS.length;
  for (const c of byteChars()) vocab[c] = next++;
  const merges: string[] = [];
  const add = (a: string, b: string) => { merges.push(`${a} ${b}`); if (!(a + b in vocab)) vocab[a + b] = next++; };
  add('Ġ', 't'); add('h', 'e'); add('Ġt', 'he'); add('l', 'l'); add('e', 'll'); add('h', 'ell'); add('hell', 'o');
  add('Ġ', 'w'); add('o', 'r'); add('Ġw', 'or'); add('l', 'd'); add('Ġwor', 'ld'); add('Ġ', 'a');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

/** Qwen3 / Nemotron-style template: system + tools, <think> handling, <tool_call> JSON blocks. */
export const CHAT_TEMPLATE = `{{- bos_token -}}
{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' %}{% if not loop.first %}{{ raise_exception('system message must be first') }}{% endif %}
{%- elif message.role == 'assistant' %}<|im_start|>assistant
{% if message.reasoning_content %}<think>{{ message.reasoning_content }}</think>{% endif %}{{ message.content or '' }}
{%- if message.tool_calls %}{% for tc in message.tool_calls %}<tool_call>
{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}
</tool_call>{% endfor %}{% endif %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>tool
{{ message.content }}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% if enable_thinking is defined and not enable_thinking %}<think></think>{% else %}<think>
{% endif %}{% endif %}`;

export function writeHfModel(opts: { template?: 'config' | 'file' | 'none'; modelType?: string; generationEos?: number[] } = {}): string {
  const dir = tmpDir('tessera-hf-');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  const cfg: Record<string, unknown> = { bos_token: '<s>', eos_token: '<|im_end|>' };
  if ((opts.template ?? 'config') === 'config') cfg.chat_template = CHAT_TEMPLATE;
  if (opts.template === 'file') fs.writeFileSync(path.join(dir, 'chat_template.jinja'), CHAT_TEMPLATE);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: opts.modelType ?? 'nemotron_h' }));
  if (opts.generationEos) fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: opts.generationEos }));
  return dir;
}
