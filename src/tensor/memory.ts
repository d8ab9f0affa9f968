import { tf } from './tf.js';
import { internal } from '../errors.js';
import { loadAddon } from './native/addon.js';

/**
 * Runs `fn` and throws `internal:` if it leaves more live tensors than it found (docs/design.md "Errors,
 * memory, determinism"). `allowed` is the number of tensors `fn` is documented to hand back to the caller.
 *
 * @example
 * await assertNoLeak(() => trainer.step(batch)); // a training step owns all its intermediates
 */
export async function assertNoLeak<T>(fn: () => T | Promise<T>, allowed = 0, what = 'operation'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after - before > allowed) {
    internal(`${what} leaked ${after - before - allowed} tensor(s) (${before} before, ${after} after)`);
  }
  return result;
}

/** Disposes every tensor in a (possibly nested) record/array; ignores non-tensors. */
export function disposeAll(value: unknown): void {
  if (value instanceof tf.Tensor) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeAll);
  else if (value instanceof Map) value.forEach((v) => disposeAll(v));
  else if (value !== null && typeof value === 'object') Object.values(value).forEach(disposeAll);
}

/** What the C allocator (glibc malloc) holds, from the native addon; null without it. */
export interface AllocatorStats {
  /** Bytes in malloc's arenas (in use or free). */
  heapBytes: number;
  /** Free bytes inside those arenas: resident until trimmed. */
  freeBytes: number;
  /** Bytes in chunks mmapped one by one (large allocations; unmapped when freed). */
  mmapBytes: number;
}

interface MemoryAddon {
  mallocTrim?: () => boolean;
  mallocStats?: () => AllocatorStats;
  lowMemoryNotification?: () => void;
}

function memoryAddon(): MemoryAddon | null {
  return loadAddon() as MemoryAddon | null;
}

/**
 * glibc's arena statistics (`mallinfo2`) through the native addon: typed-array memory of disposed
 * tensors that malloc kept. Null when the addon (or a build with `memory.cc`) is absent.
 *
 * @example
 * allocatorStats()?.freeBytes; // free heap bytes that `releaseMemory()` would hand back
 */
export function allocatorStats(): AllocatorStats | null {
  return memoryAddon()?.mallocStats?.() ?? null;
}

/**
 * `malloc_trim(0)`: hands every free page of malloc's arenas back to the kernel. Returns whether
 * memory was released (false without the addon or off glibc).
 *
 * @example
 * trimAllocator(); // after a load: the read buffers' pages leave the RSS
 */
export function trimAllocator(): boolean {
  return memoryAddon()?.mallocTrim?.() ?? false;
}

let collector: (() => void) | null | undefined;

/**
 * A full garbage collection, or null outside Node. Node's `gc` when started with `--expose-gc`; else
 * the flag is set at run time (`v8.setFlagsFromString`) and `gc` taken from a fresh context, which
 * V8 then provides. Disposed tensors of the CPU-memory backends (cpu, native) keep their
 * ArrayBuffers until V8 collects them: after a plain 135M-shape training step (batch 4 × 256) that
 * is the whole 7.6 GB step peak until a GC runs, and 1.2 GB after one (bench/memory_worker.ts).
 * @example garbageCollector()?.(); // RSS samples after this exclude uncollected garbage
 */
export function garbageCollector(): (() => void) | null {
  if (collector !== undefined) return collector;
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return (collector = exposed);
  type Get = (id: string) => unknown;
  const get = (globalThis as { process?: { getBuiltinModule?: Get } }).process?.getBuiltinModule;
  if (typeof get !== 'function') return (collector = null);
  try {
    (get('node:v8') as { setFlagsFromString(f: string): void }).setFlagsFromString('--expose-gc');
    const gc = (get('node:vm') as { runInNewContext(code: string): unknown }).runInNewContext('gc');
    collector = typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    collector = null;
  }
  return collector;
}

/**
 * A full garbage collection that also gives V8's spare heap back. With the native addon it is V8's
 * low-memory collection (`Isolate::LowMemoryNotification`): besides what {@link garbageCollector}
 * frees, it shrinks the young generation, which allocation-heavy work (a model load, a training step)
 * grows to 2 × 16 MB and which otherwise stays resident until V8's idle-time memory reducer runs,
 * seconds later (135M NF4 load: 182 → 170 MB RSS, ~40 ms). Without the addon, a plain full
 * collection; outside Node, nothing. Returns which one ran.
 *
 * @example
 * collectGarbage(); // 'low-memory' with the native addon
 */
export function collectGarbage(): 'low-memory' | 'full' | 'none' {
  const notify = memoryAddon()?.lowMemoryNotification;
  if (notify) {
    notify();
    return 'low-memory';
  }
  const gc = garbageCollector();
  gc?.();
  return gc ? 'full' : 'none';
}

/**
 * Gives memory held for reuse back: the native backend's pool of free kernel-output buffers (up to
 * `LOWRANK_POOL_MB` resident, 256 MB by default, kept between training steps for speed) is dropped,
 * its pages discarded at once (native/pool.ts), a full
 * garbage collection runs ({@link collectGarbage}; in Node V8 frees the ArrayBuffers of disposed
 * tensors only then, on a background sweep shortly after), and malloc's free pages go back to the kernel (`malloc_trim(0)`,
 * native addon on glibc). Call it after loading, after training or between phases; the next step
 * refills the pool. Returns the pool bytes dropped.
 *
 * @example
 * trainer.fit(); releaseMemory(); // RSS falls back towards what the tensors hold
 */
export function releaseMemory(): number {
  const pool = (tf.backend() as unknown as { pool?: { clear(): number } }).pool;
  const freed = pool?.clear() ?? 0;
  collectGarbage();
  trimAllocator();
  return freed;
}
