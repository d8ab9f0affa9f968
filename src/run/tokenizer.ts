/**
 * The one bridge from io's `Tokenizer` to the data pipeline's `TextTokenizer` (pairs, padding id,
 * cache fingerprint), used by the CLI, the harness and the web page alike. Browser-safe: no file
 * system here (the fingerprint of a tokenizer file is `tokenizerFingerprint` in `run/data.ts`).
 *
 * Decided behaviour (the CLI's and the web page's copies used to differ):
 * - decode skips special tokens (`<s>`, `[CLS]`, `<|endoftext|>`), as transformers'
 *   `decode(ids, skip_special_tokens=True)` does for generated text shown to a user;
 * - llama2.c tokenizers have no pair template, so a pair is `BOS a ␣b` with segment ids 0/1 (decoder
 *   models ignore them) instead of the tokenizer's NotSupportedError; the one space is the tokenizer's
 *   dummy prefix (the CLI's copy added a second one);
 * - llama2.c text is not EOS-separated when packed: its encode already starts every paragraph with
 *   BOS, which is how llama2.c's own pretraining data is laid out (one BOS per story, no EOS).
 */
import type { TextTokenizer } from '../training/data/tokenizer.js';
import type { Tokenizer } from '../io/tokenizer.js';

/**
 * Adapts an io tokenizer; padding uses the pad token, else EOS, else 0 (masked out either way).
 * `fingerprint` identifies the tokenizer's bytes for the tokenisation cache.
 * @example const tok = toTextTokenizer(await loadTokenizer(dir), await tokenizerFingerprint(dir));
 */
export function toTextTokenizer(tok: Tokenizer, fingerprint: string): TextTokenizer {
  return {
    encode: (text, pair) => {
      if (pair === undefined) return { ids: tok.encode(text) };
      if (tok.kind === 'llama2c') {
        const a = tok.encode(text);
        // the tokenizer's own dummy prefix supplies the one space between the segments (SentencePiece
        // add_dummy_prefix); an extra ' ' here would encode two spaces
        const b = tok.encode(pair, { addSpecialTokens: false });
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
