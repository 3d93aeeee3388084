/** Server-sent events on a raw response; notices when the client goes away. */
import type { ServerResponse } from 'node:http';

export class SseStream {
  closed = false;
  constructor(private readonly res: ServerResponse, onClose: () => void) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    res.on('close', () => {
      if (!this.closed) {
        this.closed = true;
        onClose();
      }
    });
  }
  /** `data: <json>` (and `event: <name>` for the Responses API) */
  send(data: unknown, event?: string): void {
    if (this.closed) return;
    this.res.write((event ? `event: ${event}\n` : '') + `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  }
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.end();
  }
}
