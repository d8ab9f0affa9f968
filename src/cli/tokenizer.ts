/** Bridges io's `Tokenizer` to the data pipeline's `TextTokenizer` (pairs, padding id, cache fingerprint). */
import { contentHash } from '../training/data/hash.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { isDirectory, joinPath, listDir, pathExists, readBytes } from '../io/source.js';

/** Bytes that define the tokenizer at `path` (tokenizer.json / tok*.bin), for the cache key. */
async function tokenizerBytes(path: string): Promise<Uint8Array> {
  if (!(await isDirectory(path))) return readBytes(path);
  const files = await listDir(path);
  const name = files.includes('tokenizer.json')
    ? 'tokenizer.json'
    : files.find((f) => /^tok\d*\.bin$|^tokenizer\.bin$/.test(f));
  const cfg = joinPath(path, 'tokenizer_config.json');
  const main = name ? await readBytes(joinPath(path, name)) : new Uint8Array();
  const extra = (await pathExists(cfg)) ? await readBytes(cfg) : new Uint8Array();
  const out = new Uint8Array(main.length + extra.length);
  out.set(main);
  out.set(extra, main.length);
  return out;
}

/**
 * @example const tok = toTextTokenizer(await loadTokenizer(dir), await tokenizerFingerprint(dir));
 */
export async function tokenizerFingerprint(path: string): Promise<string> {
  return contentHash(await tokenizerBytes(path));
}

/** Adapts an io tokenizer; padding uses the pad token, else EOS, else 0 (masked out either way). */
export function toTextTokenizer(tok: Tokenizer, fingerprint: string): TextTokenizer {
  return {
    encode: (text, pair) => {
      if (pair === undefined) return { ids: tok.encode(text) };
      // llama2.c tokenizers have no pair template: BOS a b, segment ids 0/1 (decoder models ignore them)
      if (tok.kind === 'llama2c') {
        const a = tok.encode(text);
        const b = tok.encode(' ' + pair, { addSpecialTokens: false });
        return { ids: [...a, ...b], typeIds: [...a.map(() => 0), ...b.map(() => 1)] };
      }
      return tok.encodePair(text, pair);
    },
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    padTokenId: tok.padTokenId ?? tok.eosTokenId ?? 0,
    eosTokenId: tok.kind === 'llama2c' ? undefined : tok.eosTokenId,
    bosTokenId: tok.bosTokenId,
    fingerprint: `${tok.kind}:${fingerprint}`,
  };
}
