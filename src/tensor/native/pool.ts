/**
 * A recycling allocator for kernel outputs. On this kind of machine the first touch of fresh
 * memory dominates elementwise kernels (a 47 MB multiply: ~7 ms into a reused array, ~450 ms into
 * a new one, measured under load), and a training step allocates the same sizes every step. So
 * arrays this pool hands out go back to it when their last tensor is disposed, unless they have
 * escaped to user code (any read such as `dataSync()` returns the live array, so those are never
 * reused). Recycled arrays are NOT zeroed: kernels must write every element or fill first.
 *
 * Memory (issue 18): free buffers are kept resident ("hot") up to a capacity; beyond it the oldest
 * are not dropped for the garbage collector — V8 frees a dropped ArrayBuffer only at its next full
 * collection and malloc keeps the pages until trimmed, so dropped buffers stayed resident for the
 * rest of a step (a 360M QLoRA step with a 128 MB pool ended with ~550 MB of such garbage) — but
 * have their pages discarded at once (`discardPages`, madvise in native/src/memory.cc) and are kept
 * "cold": a cold buffer holds no memory, and reusing one costs the page faults a fresh array costs
 * without a new allocation. Without the addon's `discardPages` (an older build), buffers beyond the
 * capacity are dropped as before.
 */
import { loadAddon } from './addon.js';

type Ctor = Float32ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor;
type Arr = Float32Array | Int32Array | Uint8Array;

/**
 * Resident free bytes kept for reuse by default (`LOWRANK_POOL_MB` overrides it; it was 512). With
 * buffers beyond it going cold instead of to the GC, a batch-4 × 256 step with checkpointing and the
 * chunked loss peaks ~90 MB lower at 135M f32 and ~70 MB lower at 360M QLoRA than with 512 MB; 128 MB
 * cut no more at 135M but refaulted 4× as many buffers (docs/qlora.md, "Process memory").
 */
export const DEFAULT_POOL_MB = 256;
/** Cold (discarded) buffers kept, as a multiple of the resident capacity: address space only. */
const COLD_FACTOR = 8;

/** Gives a buffer's physical pages back; returns the bytes released (0 when it cannot). */
export type DiscardPages = (buffer: ArrayBuffer) => number;

function addonDiscard(): DiscardPages | null {
  return (loadAddon() as { discardPages?: DiscardPages } | null)?.discardPages ?? null;
}

/** Free buffers by byte length, oldest first, with their total. */
class FreeLists {
  readonly lists = new Map<number, ArrayBuffer[]>();
  bytes = 0;

  push(buf: ArrayBuffer): void {
    const list = this.lists.get(buf.byteLength);
    if (list) list.push(buf);
    else this.lists.set(buf.byteLength, [buf]);
    this.bytes += buf.byteLength;
  }

  /** The newest free buffer of `bytes` length, if any. */
  pop(bytes: number): ArrayBuffer | undefined {
    const buf = this.lists.get(bytes)?.pop();
    if (buf) this.bytes -= bytes;
    return buf;
  }

  /** Removes the oldest buffers (sizes in first-freed order) until at most `limit` bytes remain. */
  evictTo(limit: number, sink: (buf: ArrayBuffer) => void): void {
    for (const [bytes, list] of this.lists) {
      while (list.length > 0 && this.bytes > limit) {
        this.bytes -= bytes;
        sink(list.shift()!);
      }
      if (list.length === 0) this.lists.delete(bytes);
      if (this.bytes <= limit) return;
    }
  }

  clear(): ArrayBuffer[] {
    const all = [...this.lists.values()].flat();
    this.lists.clear();
    this.bytes = 0;
    return all;
  }
}

export class BufferPool {
  /** Live tensor-data entries per buffer this pool handed out (views share a buffer). */
  private readonly live = new Map<ArrayBufferLike, number>();
  private readonly escaped = new WeakSet<ArrayBufferLike>();
  private readonly hot = new FreeLists();
  private readonly cold = new FreeLists();
  hits = 0;
  coldHits = 0;
  misses = 0;

  /**
   * @param capacityBytes resident free bytes kept (hot)
   * @param discard how a buffer's pages are given back; default the native addon's, null to drop
   *   buffers beyond the capacity for the GC instead
   * @example
   * const pool = new BufferPool(128 * 2 ** 20);
   * const out = pool.take<Float32Array>(Float32Array, 1024);
   */
  constructor(
    private readonly capacityBytes = DEFAULT_POOL_MB * 2 ** 20,
    private readonly discard: DiscardPages | null = addonDiscard(),
  ) {}

  /** An array of `n` elements, reused when a free buffer of that size exists (contents arbitrary). */
  take<T extends Arr>(ctor: Ctor, n: number): T {
    const bytes = n * ctor.BYTES_PER_ELEMENT;
    let buf = this.hot.pop(bytes);
    if (buf) this.hits++;
    else if ((buf = this.cold.pop(bytes))) this.coldHits++;
    else {
      buf = new ArrayBuffer(bytes);
      this.misses++;
    }
    this.live.set(buf, 0);
    return new ctor(buf) as T;
  }

  /** A tensor entry now holds `values` (call on every backend write/move). */
  retain(values: unknown): void {
    const buf = (values as Arr | undefined)?.buffer;
    if (buf === undefined) return;
    const count = this.live.get(buf);
    if (count !== undefined) this.live.set(buf, count + 1);
  }

  /** User code saw `values`: never recycle its buffer. */
  escape(values: unknown): void {
    const buf = (values as Arr | undefined)?.buffer;
    if (buf !== undefined && this.live.has(buf)) this.escaped.add(buf);
  }

  /** A tensor entry holding `values` was deleted; the buffer is freed when none remain. */
  release(values: unknown): void {
    const buf = (values as Arr | undefined)?.buffer;
    if (buf === undefined) return;
    const count = this.live.get(buf);
    if (count === undefined) return;
    if (count > 1) {
      this.live.set(buf, count - 1);
      return;
    }
    this.live.delete(buf);
    if (this.escaped.has(buf) || !(buf instanceof ArrayBuffer)) return;
    if (buf.byteLength > this.capacityBytes) {
      this.toCold(buf);
      return;
    }
    this.hot.push(buf);
    this.hot.evictTo(this.capacityBytes, (old) => this.toCold(old));
  }

  /** Discards a buffer's pages and keeps it cold (or drops it: no discard, or cold is full). */
  private toCold(buf: ArrayBuffer): void {
    if (!this.discard) return;
    this.discard(buf);
    this.cold.push(buf);
    this.cold.evictTo(COLD_FACTOR * this.capacityBytes, () => {}); // dropped: they hold no memory
  }

  /**
   * Drops every free buffer, discarding the pages of the resident ones first, so their memory goes
   * back now rather than at the next garbage collection. Returns the resident bytes dropped.
   */
  clear(): number {
    const hot = this.hot.bytes;
    for (const buf of this.hot.clear()) this.discard?.(buf);
    this.cold.clear();
    return hot;
  }

  /** `freeBytes`: resident free bytes; `coldBytes`: free buffers holding no memory. */
  stats(): {
    freeBytes: number;
    coldBytes: number;
    liveBuffers: number;
    hits: number;
    coldHits: number;
    misses: number;
  } {
    return {
      freeBytes: this.hot.bytes,
      coldBytes: this.cold.bytes,
      liveBuffers: this.live.size,
      hits: this.hits,
      coldHits: this.coldHits,
      misses: this.misses,
    };
  }
}
