import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.js';
import { initBackend } from './backend.js';
import { runInNewContext } from 'node:vm';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { allocatorStats, collectGarbage, releaseMemory, trimAllocator } from './memory.js';
import { processMemory } from '../util/process_memory.js';
import { nativeAvailable } from '../testing/backend_parity.js';

setFlagsFromString('--expose-gc');

const skip = nativeAvailable() ? false : 'native addon not built';

test(
  'releaseMemory drops the native pool of free buffers and keeps live tensors intact',
  { skip },
  async () => {
    const previous = tf.getBackend();
    await initBackend('native');
    try {
      const pool = (tf.backend() as unknown as { pool: { stats(): { freeBytes: number } } }).pool;
      const keep = tf.tensor1d([1, 2, 3]);
      // kernel outputs go back to the pool when disposed: 1000 floats each
      tf.tidy(() => tf.add(tf.ones([1000]), tf.ones([1000])).mul(2));
      const free = pool.stats().freeBytes;
      assert.ok(free >= 4000, `pool holds freed outputs (${free} B)`);
      assert.equal(releaseMemory(), free, 'reports what it dropped');
      assert.equal(pool.stats().freeBytes, 0);
      assert.deepEqual(Array.from(await keep.data()), [1, 2, 3]);
      keep.dispose();
    } finally {
      await initBackend(previous);
    }
  },
);

const trimSkip = allocatorStats() === null ? 'native addon without memory.cc (rebuild it)' : false;

test(
  'trimAllocator hands malloc free heap pages back to the kernel (RSS falls)',
  { skip: trimSkip },
  async () => {
    // 64 KB arrays sit below glibc's mmap threshold, so they live in the heap, and freeing them leaves
    // free heap pages resident until trimmed
    const bytes = 160 * 2 ** 20;
    let arrays: Float32Array[] | null = Array.from({ length: bytes / 65536 }, () =>
      new Float32Array(16384).fill(1),
    );
    assert.equal(arrays.length, 2560);
    arrays = null;
    const gc = runInNewContext('gc') as () => void; // exposed below by --expose-gc through v8 flags
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 200)); // the sweeper frees backing stores in the background
    }
    const free = allocatorStats()!.freeBytes;
    const rssBefore = processMemory().rss;
    assert.ok(free >= bytes / 2, `malloc holds the freed arrays as free heap (${free} B)`);
    assert.equal(trimAllocator(), true);
    const dropped = rssBefore - processMemory().rss;
    assert.ok(dropped >= bytes / 2, `RSS fell by ${dropped} B after malloc_trim (free heap was ${free} B)`);
  },
);

test('releaseMemory runs a full garbage collection even without --expose-gc (disposed tensor data goes)', async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this process has no global gc');
  let garbage: number[][] | null = Array.from({ length: 100 }, () => new Array(100).fill(1));
  const ref = new WeakRef(garbage);
  garbage = null;
  await new Promise((r) => setTimeout(r, 0)); // WeakRef targets are kept until the current job ends
  releaseMemory();
  assert.equal(ref.deref(), undefined, 'collected');
});

/** Resident bytes of V8's young generation. */
function youngResident(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.physical_space_size;
}

test(
  "collectGarbage shrinks V8's grown young generation, which a plain full collection leaves resident",
  { skip },
  () => {
    // many short-lived objects, some surviving a scavenge: V8 grows the young generation to its maximum
    const grow = () => {
      let keep: { i: number; a: number[] }[] = [];
      for (let i = 0; i < 3e6; i++) {
        keep.push({ i, a: [i] });
        if (keep.length > 2e4) keep = [];
      }
    };
    grow();
    const gc = runInNewContext('gc') as () => void;
    gc();
    const afterPlain = youngResident();
    assert.ok(afterPlain >= 8 * 2 ** 20, `young generation grew (${afterPlain} B resident after a full gc)`);
    assert.equal(collectGarbage(), 'low-memory');
    const after = youngResident();
    assert.ok(after <= afterPlain / 4, `young generation ${afterPlain} → ${after} B resident`);
  },
);
