/** Prometheus metrics for /metrics (prom-client, one registry per server). */
import client from 'prom-client';
import type { EngineClient } from '../engine/client.js';

export class ServerMetrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'endpoint' | 'status'>;
  readonly promptTokens: client.Counter;
  readonly generationTokens: client.Counter;
  readonly ttft: client.Histogram;
  readonly itl: client.Histogram;

  constructor(engine: EngineClient) {
    const r = this.registry;
    this.requests = new client.Counter({ name: 'tessera_requests_total', help: 'Finished HTTP generation requests', labelNames: ['endpoint', 'status'], registers: [r] });
    this.promptTokens = new client.Counter({ name: 'tessera_prompt_tokens_total', help: 'Prompt tokens processed', registers: [r] });
    this.generationTokens = new client.Counter({ name: 'tessera_generation_tokens_total', help: 'Tokens generated', registers: [r] });
    const buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
    this.ttft = new client.Histogram({ name: 'tessera_time_to_first_token_seconds', help: 'Time to first token', buckets, registers: [r] });
    this.itl = new client.Histogram({ name: 'tessera_inter_token_latency_seconds', help: 'Time between output tokens', buckets, registers: [r] });
    let last: Awaited<ReturnType<EngineClient['stats']>> | null = null;
    const stat = async () => (last = await engine.stats());
    new client.Gauge({ name: 'tessera_num_requests_running', help: 'Sequences running', registers: [r], async collect() { this.set((await stat()).running); } });
    new client.Gauge({ name: 'tessera_num_requests_waiting', help: 'Sequences waiting', registers: [r], collect() { this.set(last?.waiting ?? 0); } });
    new client.Gauge({ name: 'tessera_kv_blocks_used', help: 'KV cache blocks in use by sequences', registers: [r], collect() { this.set(last?.kvBlocksUsed ?? 0); } });
    new client.Gauge({ name: 'tessera_kv_blocks_total', help: 'KV cache blocks in the pool', registers: [r], collect() { this.set(last?.kvBlocksTotal ?? 0); } });
    new client.Gauge({ name: 'tessera_kv_window_blocks_used', help: 'sliding-window layers: KV blocks in use by sequences', registers: [r], collect() { this.set(last?.windowBlocksUsed ?? 0); } });
    new client.Gauge({ name: 'tessera_kv_window_blocks_total', help: 'sliding-window layers: KV blocks in their pool', registers: [r], collect() { this.set(last?.windowBlocksTotal ?? 0); } });
    new client.Gauge({ name: 'tessera_prefix_cache_hit_rate', help: 'Prompt tokens served from the prefix cache / prompt tokens looked up', registers: [r], collect() {
      const q = last?.prefixCacheQueriedTokens ?? 0;
      this.set(q > 0 ? (last!.prefixCacheHitTokens / q) : 0);
    } });
    new client.Gauge({ name: 'tessera_prefix_cache_hit_tokens', help: 'Prompt tokens served from the prefix cache', registers: [r], collect() { this.set(last?.prefixCacheHitTokens ?? 0); } });
    new client.Gauge({ name: 'tessera_preemptions', help: 'Sequences preempted (recomputed later)', registers: [r], collect() { this.set(last?.preemptions ?? 0); } });
  }

  /** Times tokens of one request for the latency histograms. */
  timer(): { token(n: number): void } {
    const t0 = performance.now();
    let prev = -1;
    return {
      token: (n: number) => {
        if (n <= 0) return;
        const now = performance.now();
        if (prev < 0) this.ttft.observe((now - t0) / 1000);
        else this.itl.observe((now - prev) / 1000 / n);
        prev = now;
        this.generationTokens.inc(n);
      },
    };
  }
}
