/**
 * The session object of an open native decoder (native_decode.ts builds it): argument checks and typed
 * arrays around the addon's `Decoder` (native/src/decode.cc), which holds the KV cache of every row.
 * A prompt runs in chunks (GEMMs over the chunk's tokens), generated tokens one call each.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';

/** The addon's `Decoder` instance (native/src/decode.cc). */
export interface NativeDecoderHandle {
  /** Token i enters row rows[i] at its next position with adapter slot slots[i]; logits [n, vocab]. */
  step(tokens: Int32Array, rows: Int32Array, slots: Int32Array, logits: Float32Array | null): void;
  /** A prompt into one row (GEMMs over chunks of it); the last token's logits into `logits` [vocab]. */
  prefill(tokens: Int32Array, row: number, slot: number, logits: Float32Array): void;
  /** Feeds `first`, then each argmax, writing up to n ids to `out` (stops after an EOS id); the count. */
  greedy(first: number, row: number, slot: number, n: number, eos: Int32Array, out: Int32Array): number;
  /** Row dst continues from row src's cache and position. */
  copyRow(src: number, dst: number): void;
  /** Replaces the per-layer arrays (other adapter slots, same weights); caches are kept. */
  setLayers(layers: unknown[]): void;
  /** The row starts over at position 0. */
  reset(row: number): void;
  /** Positions filled in the row. */
  position(row: number): number;
}

/** Constructor of the addon's `Decoder`: dims (see decode.cc), [embed, norm, lmHead], layers. */
export type NativeDecoderCtor = new (
  dims: Float64Array,
  weights: (Float32Array | null)[],
  layers: unknown[],
) => NativeDecoderHandle;

/** Adapters per slot: null = what the layer's forward runs now, else these adapter names, unmerged. */
export type SlotSpec = readonly (readonly string[] | null)[];

/** Per-layer arrays for the addon and the tensors derived for them (DoRA factors, AdaLoRA's A∘E). */
export interface LayerArrays {
  layers: unknown[];
  keep: Tensor[];
}

/** What a decode run needs: the handle, the vocabulary size and the tensors it made (disposed at the end). */
export interface NativeDecoder {
  readonly handle: NativeDecoderHandle;
  readonly vocabSize: number;
  readonly rows: number;
  /** Adapter slots (see {@link NativeDecodeOptions.adapters}). */
  readonly slots: number;
  /**
   * Feeds `tokens` in order into one row (the prompt, then each new token) with adapter slot `slot`
   * and returns the last one's logits (a fresh array owned by the caller).
   */
  feed(tokens: number[], row?: number, slot?: number): Float32Array;
  /**
   * Greedy decoding in one addon call: feeds `first` into `row`, then each argmax, and returns up to
   * `n` new ids (ending after the first id in `eos`).
   */
  greedy(first: number, n: number, eos: readonly number[], row?: number, slot?: number): number[];
  /** One token for each of several distinct rows, each with its slot: logits [n, vocab] row-major. */
  step(tokens: number[], rows: number[], slots: number[]): Float32Array;
  /** Row `dst` continues from row `src`'s cache (n > 1 choices of one prompt). */
  copyRow(src: number, dst: number): void;
  /**
   * New adapter slots (e.g. a server loaded an adapter); rows keep their caches. Returns null, or
   * the reason the native engine cannot cover them (nothing changed then).
   */
  setAdapters(adapters: SlotSpec): string | null;
  reset(row: number): void;
  position(row?: number): number;
  /** Disposes the tensors derived for adapters (DoRA factors, AdaLoRA's A∘E). */
  dispose(): void;
}

function checkIds(tokens: readonly number[], vocabSize: number): void {
  for (const id of tokens) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      const fix = 'use ids from the model’s own tokenizer';
      throw new ConfigError('generate.inputIds', `token ids must be integers in [0, ${vocabSize})`, id, fix);
    }
  }
}

/** The sizes a session checks arguments against. */
export interface SessionSize {
  vocabSize: number;
  rows: number;
  slots: number;
  maxSeq: number;
}

/**
 * Wraps an addon handle. `relayer` builds the per-layer arrays for other slots (a string: why not).
 * @example const dec = session(handle, { vocabSize, rows: 1, slots: 1, maxSeq }, keep, relayer);
 */
export function session(
  handle: NativeDecoderHandle,
  size: SessionSize,
  keep: Tensor[],
  relayer: (adapters: SlotSpec) => LayerArrays | string,
): NativeDecoder {
  const { vocabSize, rows, maxSeq } = size;
  let slots = size.slots;
  const where = 'NativeDecoder.step';
  const checkRow = (r: number) => {
    if (!(Number.isInteger(r) && r >= 0 && r < rows))
      throw new ConfigError(where, `rows must be distinct integers in [0, ${rows})`, r, 'fix the row ids');
  };
  const checkSlot = (s: number) => {
    if (!(Number.isInteger(s) && s >= 0 && s < slots))
      throw new ConfigError(where, `slots must be integers in [0, ${slots})`, s, 'fix the slot ids');
  };
  const checkRoom = (r: number, n: number) => {
    if (handle.position(r) + n > maxSeq)
      throw new ConfigError(
        where,
        `row is full (maxSeq ${maxSeq})`,
        r,
        'reset the row or open a longer decoder',
      );
  };
  return {
    handle,
    vocabSize,
    rows,
    get slots() {
      return slots;
    },
    feed(tokens: number[], row = 0, slot = 0): Float32Array {
      checkIds(tokens, vocabSize);
      checkRow(row);
      checkSlot(slot);
      checkRoom(row, tokens.length);
      if (tokens.length === 0)
        throw new ConfigError('NativeDecoder.feed', 'needs at least one token', 0, 'pass the prompt ids');
      const logits = new Float32Array(vocabSize);
      handle.prefill(Int32Array.from(tokens), row, slot, logits);
      return logits;
    },
    greedy(first: number, n: number, eos: readonly number[], row = 0, slot = 0): number[] {
      checkIds([first], vocabSize);
      checkRow(row);
      checkSlot(slot);
      checkRoom(row, n);
      const out = new Int32Array(n);
      const count = handle.greedy(first, row, slot, n, Int32Array.from(eos), out);
      return Array.from(out.subarray(0, count));
    },
    step(tokens: number[], rowIds: number[], slotIds: number[]): Float32Array {
      checkIds(tokens, vocabSize);
      if (rowIds.length !== tokens.length || slotIds.length !== tokens.length)
        throw new ConfigError(
          where,
          'needs one row and one slot per token',
          rowIds.length,
          'align the arrays',
        );
      rowIds.forEach(checkRow);
      if (new Set(rowIds).size !== rowIds.length)
        throw new ConfigError(
          where,
          `rows must be distinct integers in [0, ${rows})`,
          rowIds,
          'fix the row ids',
        );
      slotIds.forEach(checkSlot);
      rowIds.forEach((r) => checkRoom(r, 1));
      const logits = new Float32Array(tokens.length * vocabSize);
      handle.step(Int32Array.from(tokens), Int32Array.from(rowIds), Int32Array.from(slotIds), logits);
      return logits;
    },
    copyRow(src: number, dst: number): void {
      checkRow(src);
      checkRow(dst);
      handle.copyRow(src, dst);
    },
    setAdapters(adapters: SlotSpec): string | null {
      const next = relayer(adapters);
      if (typeof next === 'string') return next;
      handle.setLayers(next.layers);
      tf.dispose(keep.splice(0, keep.length, ...next.keep));
      slots = adapters.length;
      return null;
    },
    reset: (row: number) => handle.reset(row),
    position: (row = 0) => handle.position(row),
    dispose: () => tf.dispose(keep),
  };
}
