/**
 * The llama2.c tokenizer format (`tok512.bin`, `tokenizer.bin`) and its encoder, following
 * karpathy/llama2.c run.c (`build_tokenizer`, `encode`, `decode`):
 * file = int32 max_token_length, then per token: float32 score, int32 byte length, bytes.
 * Token 0 is `<unk>`, 1 is BOS, 2 is EOS, 3..258 are the byte-fallback tokens `<0x00>`..`<0xFF>`.
 */
import { CheckpointError, NotSupportedError } from '../errors.js';
import type { EncodeOptions, DecodeOptions, PairEncoding, Tokenizer } from './tokenizer_types.js';

const BOS = 1;
const EOS = 2;
/** Byte b is token b + 3 when a character is not in the vocabulary (run.c `encode`). */
const BYTE_FALLBACK_OFFSET = 3;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

/** Key of a byte string in the lookup map (latin1: one char per byte, so any bytes round-trip). */
function key(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/**
 * A llama2.c tokenizer. `encode` adds BOS (not EOS) when `addSpecialTokens` is true (the default), like
 * run.c's generation path; `decode` strips the leading space of a piece that follows BOS, as run.c does.
 *
 * @example
 * const tok = Llama2cTokenizer.fromBytes(bytes, 'tok512.bin');
 * tok.encode('Once upon a time', { addSpecialTokens: false }); // [403, 407, 261, 378]
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c';
  readonly bosTokenId = BOS;
  readonly eosTokenId = EOS;
  readonly padTokenId = undefined;
  readonly clsTokenId = undefined;
  readonly sepTokenId = undefined;
  private readonly lookup = new Map<string, number>();

  private constructor(
    /** Each token's bytes (a piece may be a partial UTF-8 sequence). */
    readonly pieces: Uint8Array[],
    readonly scores: Float32Array,
    readonly maxTokenLength: number,
  ) {
    // First id wins for duplicate pieces, so encoding is deterministic.
    pieces.forEach((p, id) => {
      const k = key(p);
      if (!this.lookup.has(k)) this.lookup.set(k, id);
    });
  }

  /** Parses the bytes of a `tok*.bin` file; `name` is used in error messages. */
  static fromBytes(bytes: Uint8Array, name: string): Llama2cTokenizer {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (rule: string, got?: unknown) =>
      new CheckpointError(name, rule, got, 'pass a tokenizer.bin written by llama2.c tokenizer.py export');
    if (bytes.length < 4) throw fail('too short for the int32 max_token_length header', bytes.length);
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength <= 0) throw fail('max_token_length must be positive', maxTokenLength);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let pos = 4;
    while (pos < bytes.length) {
      if (pos + 8 > bytes.length)
        throw fail(`token ${pieces.length}: file ends inside its score/length`, pos);
      scores.push(view.getFloat32(pos, true));
      const len = view.getInt32(pos + 4, true);
      if (len < 0 || len > maxTokenLength || pos + 8 + len > bytes.length) {
        throw fail(
          `token ${pieces.length}: byte length must be in [0, max_token_length] and inside the file`,
          len,
        );
      }
      pieces.push(bytes.slice(pos + 8, pos + 8 + len));
      pos += 8 + len;
    }
    if (pieces.length <= EOS) throw fail('needs at least the <unk>, BOS and EOS tokens', pieces.length);
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Id of an exact piece (a JS string, UTF-8 encoded), or undefined. */
  tokenToId(piece: string): number | undefined {
    return this.lookup.get(key(utf8.encode(piece)));
  }

  /** Initial tokens: dummy prefix " ", then one token per UTF-8 character, or its bytes + 3. */
  private initialTokens(text: string): number[] {
    const ids: number[] = [];
    if (text.length > 0) {
      const space = this.lookup.get(' ');
      if (space === undefined)
        throw new CheckpointError('llama2.c tokenizer', 'has no " " token for the dummy prefix');
      ids.push(space);
    }
    for (const ch of text) {
      const bytes = utf8.encode(ch);
      const id = this.lookup.get(key(bytes));
      if (id !== undefined) ids.push(id);
      else bytes.forEach((b) => ids.push(b + BYTE_FALLBACK_OFFSET));
    }
    return ids;
  }

  /** Repeatedly merges the adjacent pair whose concatenation has the highest score (first on ties). */
  private merge(ids: number[]): number[] {
    for (;;) {
      let bestScore = -Infinity;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const id = this.lookup.get(key(this.pieces[ids[i]!]!) + key(this.pieces[ids[i + 1]!]!));
        if (id !== undefined && this.scores[id]! > bestScore) {
          bestScore = this.scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) return ids;
      ids.splice(bestIdx, 2, bestId);
    }
  }

  /**
   * Encodes text as run.c does. With `addSpecialTokens` (default true) BOS is prepended.
   *
   * @example
   * tok.encode('Once upon a time'); // [1, 403, 407, 261, 378]
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = this.merge(this.initialTokens(text));
    return opts.addSpecialTokens === false ? ids : [BOS, ...ids];
  }

  /** The bytes one token prints when it follows `prevId` (run.c `decode`). */
  pieceBytes(prevId: number | undefined, id: number): Uint8Array {
    const piece = this.pieces[id];
    if (piece === undefined) {
      throw new CheckpointError('llama2.c tokenizer', `token id out of range [0, ${this.vocabSize})`, id);
    }
    const m = BYTE_TOKEN.exec(key(piece));
    if (m) return Uint8Array.of(parseInt(m[1]!, 16));
    if (prevId === BOS && piece[0] === 0x20) return piece.subarray(1);
    return piece;
  }

  /**
   * Decodes ids to text (UTF-8 of the concatenated piece bytes). `skipSpecialTokens` drops
   * `<unk>`, BOS and EOS.
   *
   * @example
   * tok.decode([1, 403, 407, 261, 378], { skipSpecialTokens: true }); // 'Once upon a time'
   */
  decode(ids: number[], opts: DecodeOptions = {}): string {
    const parts: Uint8Array[] = [];
    let prev: number | undefined;
    for (const id of ids) {
      if (!(opts.skipSpecialTokens && id <= EOS)) parts.push(this.pieceBytes(prev, id));
      prev = id;
    }
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return utf8Decoder.decode(out);
  }

  /** llama2.c tokenizers have no sentence-pair template. */
  encodePair(_a: string, _b: string): PairEncoding {
    throw new NotSupportedError(
      'Llama2cTokenizer.encodePair',
      'sentence-pair encoding',
      'encode the texts separately',
    );
  }
}
