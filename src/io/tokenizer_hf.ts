/**
 * Hugging Face `tokenizer.json` tokenizers through `@huggingface/tokenizers` (tokenizers.js: pure
 * JavaScript, runs in Node and browsers; see docs/tokenizers.md for why this library). Covers byte-level
 * BPE (GPT-2, Llama-3), WordPiece (BERT) and SentencePiece-style BPE with byte fallback (Llama-2).
 */
import { Tokenizer as HFTokenizerImpl } from '@huggingface/tokenizers';
import { CheckpointError, NotSupportedError } from '../errors.js';
import type { DecodeOptions, EncodeOptions, PairEncoding, Tokenizer } from './tokenizer_types.js';

type Json = Record<string, unknown>;

/** Token names tried when tokenizer_config.json does not say (only among the special added tokens). */
const WELL_KNOWN: Record<'bos' | 'eos' | 'pad' | 'cls' | 'sep', string[]> = {
  bos: ['<s>', '<|begin_of_text|>', '<|endoftext|>', '<bos>'],
  eos: ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>'],
  pad: ['[PAD]', '<pad>', '<|pad|>'],
  cls: ['[CLS]', '<s>'],
  sep: ['[SEP]', '</s>'],
};

/** A token in tokenizer_config.json is a string or an AddedToken object `{content, ...}`. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as Json).content === 'string')
    return (v as Json).content as string;
  return undefined;
}

function specialAddedTokens(tokJson: Json): Set<string> {
  const added = Array.isArray(tokJson.added_tokens) ? (tokJson.added_tokens as Json[]) : [];
  return new Set(
    added.filter((t) => t.special === true && typeof t.content === 'string').map((t) => t.content as string),
  );
}

/**
 * A `tokenizer.json` tokenizer. Special ids come from `tokenizer_config.json` (`bos_token`, …) when
 * given, else from well-known special added tokens (`[CLS]`, `<s>`, `<|endoftext|>`, …).
 *
 * @example
 * const tok = HFTokenizer.fromJson(tokenizerJson, tokenizerConfigJson, 'my-bert/tokenizer.json');
 * tok.encode('Hello, world!'); // [101, 7592, 1010, 2088, 999, 102] for bert-base-uncased
 */
export class HFTokenizer implements Tokenizer {
  readonly kind = 'huggingface';
  readonly vocabSize: number;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly clsTokenId: number | undefined;
  readonly sepTokenId: number | undefined;
  readonly unkTokenId: number | undefined;

  private constructor(
    private readonly impl: HFTokenizerImpl,
    tokJson: Json,
    config: Json,
  ) {
    const vocab = impl.get_vocab(true);
    this.vocabSize = Math.max(-1, ...vocab.values()) + 1;
    const specials = specialAddedTokens(tokJson);
    const find = (field: string, names: string[]): number | undefined => {
      const configured = tokenContent(config[`${field}_token`]);
      if (configured !== undefined) return impl.token_to_id(configured);
      const name = names.find((n) => specials.has(n));
      return name === undefined ? undefined : impl.token_to_id(name);
    };
    this.bosTokenId = find('bos', WELL_KNOWN.bos);
    this.eosTokenId = find('eos', WELL_KNOWN.eos);
    this.padTokenId = find('pad', WELL_KNOWN.pad);
    this.clsTokenId = find('cls', WELL_KNOWN.cls);
    this.sepTokenId = find('sep', WELL_KNOWN.sep);
    this.unkTokenId = find('unk', ['[UNK]', '<unk>']);
  }

  /** Builds a tokenizer from parsed `tokenizer.json` (+ optional `tokenizer_config.json`). */
  static fromJson(tokJson: unknown, config: unknown = {}, source = 'tokenizer.json'): HFTokenizer {
    if (tokJson === null || typeof tokJson !== 'object' || !('model' in tokJson)) {
      throw new CheckpointError(
        source,
        'is not a tokenizer.json (no "model" field)',
        undefined,
        'pass the tokenizer.json of a Hugging Face model',
      );
    }
    const cfg = (config ?? {}) as Json;
    try {
      return new HFTokenizer(new HFTokenizerImpl(tokJson, cfg), tokJson as Json, cfg);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new CheckpointError(
        source,
        'could not be loaded by @huggingface/tokenizers',
        msg,
        'check that the file is a complete tokenizer.json',
      );
    }
  }

  /**
   * Encodes one text; `addSpecialTokens` (default true) applies the post-processor template.
   *
   * @example
   * tok.encode('hello'); // [101, 7592, 102] for bert-base-uncased
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /**
   * Encodes a sentence pair with the tokenizer's pair template and returns segment ids.
   *
   * @example
   * tok.encodePair('a', 'b'); // { ids: [CLS, a, SEP, b, SEP], typeIds: [0, 0, 0, 1, 1] }
   */
  encodePair(a: string, b: string, opts: EncodeOptions = {}): PairEncoding {
    const enc = this.impl.encode(a, {
      text_pair: b,
      add_special_tokens: opts.addSpecialTokens ?? true,
      return_token_type_ids: true,
    });
    if ((enc.token_type_ids as number[] | undefined)?.length !== enc.ids.length) {
      throw new NotSupportedError(
        'HFTokenizer.encodePair',
        'a tokenizer whose post-processor gives no token type ids',
      );
    }
    return { ids: enc.ids, typeIds: enc.token_type_ids };
  }

  /**
   * Decodes ids to text with the tokenizer's decoder.
   *
   * @example
   * tok.decode([101, 7592, 102], { skipSpecialTokens: true }); // 'hello'
   */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    return this.impl.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** Id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  /** Token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }
}
