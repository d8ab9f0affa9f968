/**
 * A 64-bit FNV-1a content hash (two 32-bit lanes) in plain TypeScript, so cache keys work in Node and
 * the browser alike. Not cryptographic: it only keys the tokenisation cache.
 *
 * @example
 * contentHash(new TextEncoder().encode('hello')); // '16 hex digits'
 */
export function contentHash(...parts: (Uint8Array | string)[]): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  const enc = new TextEncoder();
  for (const part of parts) {
    const bytes = typeof part === 'string' ? enc.encode(part) : part;
    for (let i = 0; i < bytes.length; i++) {
      h1 = Math.imul(h1 ^ bytes[i]!, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ bytes[i]!, 0x01000193 + 0x2000) >>> 0;
    }
    // separator so ('ab','c') and ('a','bc') differ
    h1 = Math.imul(h1 ^ 0xff, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ 0xfe, 0x01002193) >>> 0;
  }
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}
