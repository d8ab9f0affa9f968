/**
 * A recycling allocator for kernel outputs. On this kind of machine the first touch of fresh
 * memory dominates elementwise kernels (a 47 MB multiply: ~7 ms into a reused array, ~450 ms into
 * a new one, measured under load), and a training step allocates the same sizes every step. So
 * arrays this pool hands out go back to it when their last tensor is disposed, unless they have
 * escaped to user code (any read such as `dataSync()` returns the live array, so those are never
 * reused). Recycled arrays are NOT zeroed: kernels must write every element or fill first.
 */

type Ctor = Float32ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor;
type Arr = Float32Array | Int32Array | Uint8Array;

/** Free bytes kept for reuse; beyond it the oldest free arrays are dropped for the GC. */
// 512 MB holds a reference-size step's transients (activations, optimizer temporaries).
const DEFAULT_CAPACITY_MB = 512;

export class BufferPool {
  /** Live tensor-data entries per buffer this pool handed out (views share a buffer). */
  private readonly live = new Map<ArrayBufferLike, number>();
  private readonly escaped = new WeakSet<ArrayBufferLike>();
  /** Free buffers by byte length, oldest first. */
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly capacityBytes = DEFAULT_CAPACITY_MB * 2 ** 20) {}

  /** An array of `n` elements, reused when a free buffer of that size exists (contents arbitrary). */
  take<T extends Arr>(ctor: Ctor, n: number): T {
    const bytes = n * ctor.BYTES_PER_ELEMENT;
    const list = this.free.get(bytes);
    let buf: ArrayBuffer;
    if (list && list.length > 0) {
      buf = list.pop()!;
      this.freeBytes -= bytes;
      this.hits++;
    } else {
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
    if (this.escaped.has(buf) || !(buf instanceof ArrayBuffer) || buf.byteLength > this.capacityBytes) return;
    const list = this.free.get(buf.byteLength) ?? [];
    list.push(buf);
    this.free.set(buf.byteLength, list);
    this.freeBytes += buf.byteLength;
    this.evict();
  }

  private evict(): void {
    for (const [bytes, list] of this.free) {
      if (this.freeBytes <= this.capacityBytes) return;
      while (list.length > 0 && this.freeBytes > this.capacityBytes) {
        list.shift();
        this.freeBytes -= bytes;
      }
      if (list.length === 0) this.free.delete(bytes);
    }
  }

  /** Drops every free buffer (memory goes back to the GC). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  stats(): { freeBytes: number; liveBuffers: number; hits: number; misses: number } {
    return { freeBytes: this.freeBytes, liveBuffers: this.live.size, hits: this.hits, misses: this.misses };
  }
}
