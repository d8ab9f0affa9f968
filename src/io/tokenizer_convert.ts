/**
 * llama2.c tokenizer → Hugging Face `tokenizer.json` (Llama-2 style SentencePiece BPE), so that a
 * converted folder also loads in Python's `AutoTokenizer`.
 *
 * llama2.c merges, at each step, the adjacent pair whose concatenation has the highest score (leftmost
 * on ties). The BPE model built here holds every pair (l, r) with l, r and l+r in the vocabulary, ranked
 * by the score of l+r (highest first), as transformers' SentencePiece extractor builds Llama-2 merges;
 * it merges the same pairs in the same order with two known exceptions: (1) text that spells a special
 * token (`<s>`) becomes that token in tokenizer.json but plain characters in llama2.c; (2) when one piece
 * has several splits that overlap in a sequence (`a|aa` and `aa|a` in `a aa a`), BPE's fixed ranks may
 * choose the other split than llama2.c's leftmost rule. Two different pieces with equal scores would break
 * the ranking altogether, so such vocabularies are refused. For tok512.bin the encodings agree on 300
 * TinyStories/Shakespeare passages (src/io/tokenizer_convert.test.ts).
 */
import { CheckpointError } from '../errors.js';
import type { Llama2cTokenizer } from './tokenizer_llama2c.js';

/** SentencePiece's word-boundary mark; llama2.c's export replaced it with a plain space. */
const SPIECE_UNDERLINE = '\u2581';
/** Names of ids 0..2 in SentencePiece (llama2.c stores BOS/EOS as "\n<s>\n" / "\n</s>\n"). */
const SPECIALS = ['<unk>', '<s>', '</s>'];

type Json = Record<string, unknown>;

function pieceStrings(tok: Llama2cTokenizer): string[] {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return tok.pieces.map((bytes, id) => {
    if (id < SPECIALS.length) return SPECIALS[id]!;
    try {
      return decoder.decode(bytes).replaceAll(' ', SPIECE_UNDERLINE);
    } catch {
      throw new CheckpointError(
        'llama2.c tokenizer',
        `piece ${id} is not valid UTF-8, so it has no tokenizer.json form`,
        Array.from(bytes),
      );
    }
  });
}

function buildVocab(pieces: string[]): Map<string, number> {
  const vocab = new Map<string, number>();
  pieces.forEach((p, id) => {
    if (vocab.has(p)) {
      throw new CheckpointError(
        'llama2.c tokenizer',
        `piece ${id} repeats piece ${vocab.get(p)}; tokenizer.json needs unique pieces`,
        p,
      );
    }
    vocab.set(p, id);
  });
  return vocab;
}

/** Every (l, r) with l, r, l+r in the vocabulary, ranked by score of l+r (highest first). */
function buildMerges(pieces: string[], scores: Float32Array, vocab: Map<string, number>): [string, string][] {
  const merges: { l: string; r: string; score: number; id: number }[] = [];
  pieces.forEach((piece, id) => {
    if (id < SPECIALS.length) return;
    const chars = Array.from(piece); // split by code point, as Python's str slicing does
    const local: { l: string; r: string; score: number; id: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push({ l, r, score: scores[id]!, id });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    merges.push(...local);
  });
  merges.sort((a, b) => b.score - a.score); // stable: ties keep vocabulary order
  for (let i = 1; i < merges.length; i++) {
    const [a, b] = [merges[i - 1]!, merges[i]!];
    if (a.score === b.score && a.id !== b.id) {
      throw new CheckpointError(
        'llama2.c tokenizer',
        `pieces ${a.id} and ${b.id} are both merge results with score ${a.score}; BPE ranks cannot reproduce llama2.c's tie-break`,
        [pieces[a.id], pieces[b.id]],
        'keep using the tok*.bin file',
      );
    }
  }
  return merges.map((m) => [m.l, m.r]);
}

/**
 * The `added_tokens` entry of `tokenizer.json` for a special token (matched whole, before normalisation,
 * as Hugging Face tokenizers' `AddedToken(special=True)` serialises).
 *
 * @example
 * addedToken('<s>', 1); // { id: 1, content: '<s>', single_word: false, …, special: true }
 */
export function addedToken(content: string, id: number): Json {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/**
 * `TemplateProcessing` pieces: a special token, or sequence A / B, with its token-type id.
 *
 * @example
 * const single = [templateToken('[CLS]'), templateSequence('A'), templateToken('[SEP]')];
 */
export const templateToken = (id: string, typeId = 0): Json => ({ SpecialToken: { id, type_id: typeId } });
/** Sequence A or B of a `TemplateProcessing` template (see {@link templateToken}). */
export const templateSequence = (id: 'A' | 'B', typeId = 0): Json => ({ Sequence: { id, type_id: typeId } });

/**
 * A Llama-2 SentencePiece BPE `tokenizer.json` over the given vocabulary (ids 0–2 `<unk>`, `<s>`,
 * `</s>`) and merges, as transformers' Llama converter writes it: prepend ▁ and spaces → ▁, BOS
 * template, byte fallback, and the decoder that undoes the normaliser.
 *
 * @example
 * const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3, H: 4, '▁H': 5 };
 * HFTokenizer.fromJson(llama2TokenizerJson(vocab, [['▁', 'H']])).encode('H'); // [1, 5]
 */
export function llama2TokenizerJson(
  vocab: Record<string, number>,
  merges: [string, string][] | string[],
): Json {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s, id) => addedToken(s, id)),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPIECE_UNDERLINE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPIECE_UNDERLINE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [templateToken('<s>'), templateSequence('A')],
      pair: [templateToken('<s>'), templateSequence('A'), templateToken('<s>', 1), templateSequence('B', 1)],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPIECE_UNDERLINE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * A BERT-uncased WordPiece `tokenizer.json`: lower-casing `BertNormalizer`, `BertPreTokenizer`, `##`
 * continuations, `[UNK]` for unknown words, the given added tokens and post-processor.
 *
 * @example
 * const vocab = { '[UNK]': 0, '[CLS]': 1, '[SEP]': 2, hello: 3 };
 * const doc = wordPieceTokenizerJson(vocab, [addedToken('[UNK]', 0)], null);
 * HFTokenizer.fromJson(doc).encode('Hello'); // [3]
 */
export function wordPieceTokenizerJson(
  vocab: Record<string, number>,
  addedTokens: Json[],
  postProcessor: Json | null,
): Json {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: postProcessor,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/**
 * Builds `tokenizer.json` and `tokenizer_config.json` contents equivalent to a llama2.c tokenizer
 * (BOS added on encode, EOS not, as llama2.c's generation does).
 *
 * @example
 * const { tokenizerJson, tokenizerConfig } = llama2cToTokenizerJson(tok512);
 * HFTokenizer.fromJson(tokenizerJson, tokenizerConfig).encode('Once upon a time'); // [1, 403, 407, 261, 378]
 */
export function llama2cToTokenizerJson(tok: Llama2cTokenizer): {
  tokenizerJson: Json;
  tokenizerConfig: Json;
} {
  const pieces = pieceStrings(tok);
  const vocab = buildVocab(pieces);
  const merges = buildMerges(pieces, tok.scores, vocab);
  const tokenizerJson = llama2TokenizerJson(Object.fromEntries(vocab), merges);
  const tokenizerConfig: Json = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: false,
    tokenizer_class: 'LlamaTokenizerFast',
  };
  return { tokenizerJson, tokenizerConfig };
}
