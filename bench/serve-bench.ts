/**
 * Serving benchmark: N concurrent clients stream chat completions from a Tessera (or any
 * OpenAI-compatible) server; reports requests/s, output tokens/s, TTFT and inter-token latency
 * percentiles. Each client sends its next request as soon as the previous one finishes.
 */
export interface ServeBenchOptions {
  url: string;
  model?: string;
  apiKey?: string;
  clients: number;
  requestsPerClient: number;
  /** approximate prompt length in tokens (a repeated word list; a distinct prefix per request) */
  promptTokens: number;
  outputTokens: number;
  /**
   * `completions` (default): raw text, every token streams as it is made (what this measures is
   * the engine, as vLLM's benchmark does); `chat`: through the chat format's parser, which
   * holds back text until it knows which channel it belongs to (synthetic weights write no
   * channel headers, so their whole answer arrives at the end)
   */
  endpoint?: 'completions' | 'chat';
  log?: (line: string) => void;
}

export interface ServeBenchResult {
  clients: number;
  requests: number;
  output_tokens: number;
  duration_s: number;
  requests_per_s: number;
  output_tokens_per_s: number;
  ttft_ms: { p50: number; p90: number; p99: number };
  itl_ms: { p50: number; p90: number; p99: number };
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa'.split(' ');

async function oneRequest(o: ServeBenchOptions, n: number, ttfts: number[], itls: number[]): Promise<number> {
  const words = Array.from({ length: o.promptTokens }, (_, i) => WORDS[(i * 7 + n) % WORDS.length]);
  const chat = o.endpoint === 'chat';
  const text = `${n}: ${words.join(' ')}`;
  const body = {
    model: o.model, stream: true, stream_options: { include_usage: true },
    max_tokens: o.outputTokens, temperature: 0.8, seed: n, ignore_eos: true,
    ...(chat ? { messages: [{ role: 'user', content: text }] } : { prompt: text }),
  };
  const t0 = performance.now();
  const res = await fetch(`${o.url}/v1/${chat ? 'chat/completions' : 'completions'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
    body: JSON.stringify(body),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let last = -1;
  let chunks = 0;
  let usage: number | undefined;
  let buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = ev.split('\n').find((l) => l.startsWith('data: '))?.slice(6);
      if (!data || data === '[DONE]') continue;
      const j = JSON.parse(data);
      if (j.usage?.completion_tokens !== undefined) usage = j.usage.completion_tokens;
      const c = j.choices?.[0];
      const d = chat ? c?.delta : c;
      if (!d || (!d.content && !d.reasoning_content && !d.tool_calls && !d.text)) continue;
      const now = performance.now();
      if (last < 0) ttfts.push(now - t0);
      else itls.push(now - last);
      last = now;
      chunks++;
    }
  }
  // tokens from the usage record (a chunk may carry several tokens)
  return usage ?? chunks;
}

export async function runServeBench(o: ServeBenchOptions): Promise<ServeBenchResult> {
  const ttfts: number[] = [];
  const itls: number[] = [];
  let outTokens = 0;
  let requests = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.clients }, async (_, c) => {
    for (let r = 0; r < o.requestsPerClient; r++) {
      // (not `outTokens += await …`: that reads outTokens before the await and loses the other clients' counts)
      const n = await oneRequest(o, c * 1000 + r, ttfts, itls);
      outTokens += n;
      requests++;
      o.log?.(`client ${c}: request ${r + 1}/${o.requestsPerClient} done`);
    }
  }));
  const dur = (performance.now() - t0) / 1000;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    clients: o.clients, requests, output_tokens: outTokens, duration_s: r2(dur),
    requests_per_s: r2(requests / dur), output_tokens_per_s: r2(outTokens / dur),
    ttft_ms: { p50: r2(pct(ttfts, 50)), p90: r2(pct(ttfts, 90)), p99: r2(pct(ttfts, 99)) },
    itl_ms: { p50: r2(pct(itls, 50)), p90: r2(pct(itls, 90)), p99: r2(pct(itls, 99)) },
  };
}
