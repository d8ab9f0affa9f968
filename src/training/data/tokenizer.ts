/**
 * What the data pipeline needs from a tokenizer. `io`'s `loadTokenizer` results and the demo's word
 * tokenizer both fit; `fingerprint` keys the tokenisation cache.
 */
export interface TextTokenizer {
  /** Token ids for one text, or a pair for sentence-pair tasks, with special tokens added. */
  encode(text: string, pair?: string): { ids: number[]; typeIds?: number[] };
  decode(ids: number[]): string;
  /** Id used for padding (the attention mask hides it). */
  readonly padTokenId: number;
  readonly eosTokenId?: number;
  readonly bosTokenId?: number;
  /** Changes whenever the vocabulary or rules change (e.g. a hash of tokenizer.json). */
  readonly fingerprint: string;
}
