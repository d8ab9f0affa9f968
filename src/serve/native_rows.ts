/**
 * The server's rows on the native decode engine (issue 17: "batched decoding across adapters works
 * for the server"): one addon decoder with `maxActive` rows of the server's context length, each row a
 * sequence with its own KV cache in the addon, and one adapter slot per adapter in use. A decode turn
 * is ONE addon call for every native row — the base weights read once, each row's LoRA / DoRA /
 * AdaLoRA terms applied unmerged on its own row — so a request alone on an adapter costs the base
 * pass plus its rank-r terms, which is what the merged weights would cost within those terms.
 *
 * Slots follow the adapters in use: an adapter not yet in a slot is installed before its prompt runs
 * (the decoder's per-layer arrays are rebuilt, rows keep their caches) and slots of adapters no row
 * uses are dropped then. An adapter the kernel does not cover (modules_to_save copies, adapters on
 * layers other than the block projections, lora_bias …) decodes on the tfjs path instead.
 *
 * @example
 * const rows = NativeRows.open(store, 16, 2048); // or a string: why the server stays on tfjs
 * if (typeof rows !== 'string' && rows.covers(handle)) { const { row, logits } = rows.prefill(ids, handle); }
 */
import type { PreTrainedModel } from '../models/base.js';
import {
  nativeDecodeSupport,
  nativeProjections,
  openNativeDecoder,
  type NativeDecoder,
} from '../models/native_decode.js';
import type { AdapterHandle, AdapterStore } from './adapters.js';

/** The slot key of a handle: its internal adapter name, or '' for the base model. */
const keyOf = (h: AdapterHandle) => h.internal ?? '';

export class NativeRows {
  private readonly free: number[];
  /** Adapter of each slot ('' = base). */
  private slotKeys: string[] = [''];
  /** Slot key of each row in use. */
  private readonly used = new Map<number, string>();
  /** Adapters the kernel cannot run, with the reason (decoded on tfjs). */
  private readonly refused = new Map<string, string>();

  private constructor(
    private readonly dec: NativeDecoder,
    private readonly model: PreTrainedModel,
    private readonly store: AdapterStore,
    rows: number,
  ) {
    this.free = Array.from({ length: rows }, (_, i) => rows - 1 - i);
  }

  /**
   * A native decoder over the store's base model with `rows` rows of `maxSeq` positions, or the
   * reason the server decodes on tfjs (another backend, no addon, a model the kernel does not cover,
   * `LOWRANK_NATIVE_DECODE=0`).
   */
  static open(store: AdapterStore, rows: number, maxSeq: number): NativeRows | string {
    const model = store.base;
    const cfg = { rows, adapters: [[]] };
    const dec = openNativeDecoder(model, maxSeq, cfg);
    if (!dec) return nativeDecodeSupport(model, maxSeq, cfg) ?? 'unknown';
    return new NativeRows(dec, model, store, rows);
  }

  /** Why `h` decodes on tfjs, or null when it runs here (its slot installed if needed). */
  refusal(h: AdapterHandle): string | null {
    const key = keyOf(h);
    if (this.slotKeys.includes(key)) return null;
    const known = this.refused.get(key);
    if (known !== undefined) return known;
    const why = this.install(h);
    if (why !== null) this.refused.set(key, why);
    return why;
  }

  private install(h: AdapterHandle): string | null {
    if (h.copies) return 'modules_to_save copies';
    const peft = this.store.peft;
    if (peft && h.internal !== null) {
      const projections = nativeProjections(this.model);
      const outside = peft.base_model
        .tunerLayers()
        .find(([, l]) => l.adapterNames().includes(h.internal!) && !projections.has(l));
      if (outside) return `adapter on ${outside[0]}, outside the block projections`;
    }
    const keep = [...new Set(['', ...this.used.values()])];
    const next = [...keep, keyOf(h)];
    const why = this.dec.setAdapters(next.map((k) => (k === '' ? [] : [k])));
    if (why === null) this.slotKeys = next;
    return why;
  }

  private slot(h: AdapterHandle): number {
    const s = this.slotKeys.indexOf(keyOf(h));
    if (s < 0) throw new Error(`internal: adapter ${h.name} has no native slot`);
    return s;
  }

  /** Free rows. */
  get available(): number {
    return this.free.length;
  }

  /** Runs a prompt into a free row with `h`'s adapter (call {@link refusal} first); its last logits. */
  prefill(ids: number[], h: AdapterHandle): { row: number; logits: Float32Array } {
    const row = this.take(h);
    try {
      return { row, logits: this.dec.feed(ids, row, this.slot(h)) };
    } catch (e) {
      this.release(row);
      throw e;
    }
  }

  /** A new row continuing from `row` (another choice of the same prompt). */
  fork(row: number): number {
    const h = this.used.get(row)!;
    const dst = this.free.pop()!;
    this.used.set(dst, h);
    this.dec.copyRow(row, dst);
    return dst;
  }

  private take(h: AdapterHandle): number {
    const row = this.free.pop();
    if (row === undefined) throw new Error('internal: no free native row');
    this.used.set(row, keyOf(h));
    this.dec.reset(row);
    return row;
  }

  /** One token for each row (each with its adapter); logits per row. */
  step(rows: number[], tokens: number[], handles: AdapterHandle[]): Float32Array[] {
    const v = this.dec.vocabSize;
    const flat = this.dec.step(
      tokens,
      rows,
      handles.map((h) => this.slot(h)),
    );
    return rows.map((_, i) => flat.subarray(i * v, (i + 1) * v));
  }

  /** The row is free again. */
  release(row: number): void {
    if (!this.used.delete(row)) return;
    this.free.push(row);
  }

  /** Forgets refusals (an adapter reloaded under a new internal name gets a new key anyway). */
  dispose(): void {
    this.dec.dispose();
  }
}
