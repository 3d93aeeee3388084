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
  log?: (line: string) => void;
}

export interface ServeBenchResult {
  clients: number;
  requests: number;
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
  const body = {
    model: o.model, stream: true, max_tokens: o.outputTokens, temperature: 0.8, seed: n, ignore_eos: true,
    messages: [{ role: 'user', content: `${n}: ${words.join(' ')}` }],
  };
  const t0 = performance.now();
  const res = await fetch(`${o.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
    body: JSON.stringify(body),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let last = -1;
  let tokens = 0;
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
      const d = j.choices?.[0]?.delta;
      if (!d || (!d.content && !d.reasoning_content && !d.tool_calls)) continue;
      const now = performance.now();
      if (last < 0) ttfts.push(now - t0);
      else itls.push(now - last);
      last = now;
      tokens++;
    }
  }
  return tokens;
}

export async function runServeBench(o: ServeBenchOptions): Promise<ServeBenchResult> {
  const ttfts: number[] = [];
  const itls: number[] = [];
  let outTokens = 0;
  let requests = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.clients }, async (_, c) => {
    for (let r = 0; r < o.requestsPerClient; r++) {
      outTokens += await oneRequest(o, c * 1000 + r, ttfts, itls);
      requests++;
      o.log?.(`client ${c}: request ${r + 1}/${o.requestsPerClient} done`);
    }
  }));
  const dur = (performance.now() - t0) / 1000;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    clients: o.clients, requests, duration_s: r2(dur),
    requests_per_s: r2(requests / dur), output_tokens_per_s: r2(outTokens / dur),
    ttft_ms: { p50: r2(pct(ttfts, 50)), p90: r2(pct(ttfts, 90)), p99: r2(pct(ttfts, 99)) },
    itl_ms: { p50: r2(pct(itls, 50)), p90: r2(pct(itls, 90)), p99: r2(pct(itls, 99)) },
  };
}
