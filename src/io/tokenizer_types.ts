/** The tokenizer contract shared by Hugging Face `tokenizer.json` tokenizers and llama2.c ones. */

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the model's special tokens (BOS, or [CLS] … [SEP]); default true, as in transformers. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, PAD, [CLS], [SEP], …); default false, as in transformers. */
  skipSpecialTokens?: boolean;
}

/** A sentence pair encoded with the tokenizer's pair template (BERT: [CLS] a [SEP] b [SEP]). */
export interface PairEncoding {
  ids: number[];
  /** Segment ids (`token_type_ids`): 0 for the first sentence and its specials, 1 for the second. */
  typeIds: number[];
}

/**
 * A tokenizer. Special-token ids are undefined when the tokenizer has no such token.
 *
 * @example
 * const tok = await loadTokenizer('./my-bert');
 * const { ids, typeIds } = tok.encodePair('a premise', 'a hypothesis');
 */
export interface Tokenizer {
  /** Which implementation backs it. */
  readonly kind: 'huggingface' | 'llama2c';
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[], opts?: DecodeOptions): string;
  /** Sentence-pair encoding; throws NotSupportedError when the tokenizer has no pair template. */
  encodePair(a: string, b: string, opts?: EncodeOptions): PairEncoding;
  /** Number of ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly bosTokenId?: number | undefined;
  readonly eosTokenId?: number | undefined;
  readonly padTokenId?: number | undefined;
  readonly clsTokenId?: number | undefined;
  readonly sepTokenId?: number | undefined;
}
