/** Incremental UTF-8 → text for streamed tokens: whole characters only, lossy on invalid bytes. */

const STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** strict decoding (the reference's decode_utf8); throws on invalid UTF-8 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  return STRICT.decode(bytes);
}

export function decodeUtf8Lossy(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
}

/**
 * Emits the longest decodable prefix of the bytes seen so far; an incomplete sequence at the end
 * waits for more bytes; an invalid sequence becomes U+FFFD (maximal subparts, as Rust's
 * from_utf8_lossy). `flush()` decodes what is still pending, lossily.
 */
export class Utf8Stream {
  private dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  push(bytes: Uint8Array): string {
    return this.dec.decode(bytes, { stream: true });
  }

  flush(): string {
    return this.dec.decode();
  }
}
