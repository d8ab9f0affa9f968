// The native backend's buffer pool (pool.ts): resident capacity, cold (discarded) buffers, clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool, type DiscardPages } from './pool.js';
import { loadAddon } from './addon.js';
import { processMemory } from '../../util/process_memory.js';

const KB = 1024;

/** A discard that records what it was given (the real one is the addon's madvise). */
function recorder(): { discard: DiscardPages; seen: ArrayBuffer[] } {
  const seen: ArrayBuffer[] = [];
  return { seen, discard: (b) => (seen.push(b), b.byteLength) };
}

/** Takes an array from the pool and gives it back, as a tensor's write and dispose do. */
function cycle(pool: BufferPool, floats: number): Float32Array {
  const a = pool.take<Float32Array>(Float32Array, floats);
  pool.retain(a);
  pool.release(a);
  return a;
}

test('free buffers stay resident up to the capacity; the oldest beyond it are discarded and kept cold', () => {
  const { discard, seen } = recorder();
  const pool = new BufferPool(8 * KB, discard);
  const a = cycle(pool, KB); // 4 KB
  const b = cycle(pool, KB); // the same size again: a's buffer is reused
  assert.equal(a.buffer, b.buffer, 'same-size take reuses the free buffer');
  const c = pool.take<Float32Array>(Float32Array, KB); // a's buffer once more
  const d = pool.take<Float32Array>(Float32Array, KB);
  const e = pool.take<Float32Array>(Float32Array, KB);
  for (const x of [c, d, e]) pool.retain(x);
  for (const x of [c, d, e]) pool.release(x); // 12 KB free > 8 KB
  assert.deepEqual(seen, [c.buffer], 'the oldest free buffer had its pages discarded');
  assert.deepEqual(pool.stats().freeBytes, 8 * KB);
  assert.deepEqual(pool.stats().coldBytes, 4 * KB);
  // three takes of that size: two resident, then the cold one (no new allocation)
  const taken = [0, 1, 2].map(() => pool.take<Float32Array>(Float32Array, KB));
  assert.deepEqual(
    taken.map((t) => t.buffer),
    [e.buffer, d.buffer, c.buffer],
  );
  const s = pool.stats();
  assert.equal(s.coldHits, 1);
  assert.equal(s.coldBytes, 0);
  assert.equal(s.misses, 3, 'fresh allocations: a, d and e');
});

test('a buffer larger than the capacity goes cold at once; without a discard it is dropped (the old policy)', () => {
  const { discard, seen } = recorder();
  const pool = new BufferPool(8 * KB, discard);
  const big = cycle(pool, 4 * KB); // 16 KB
  assert.deepEqual(seen, [big.buffer]);
  assert.equal(pool.stats().freeBytes, 0);
  assert.equal(pool.take<Float32Array>(Float32Array, 4 * KB).buffer, big.buffer, 'reused cold');

  const dropping = new BufferPool(8 * KB, null);
  const x = cycle(dropping, 4 * KB);
  assert.deepEqual(dropping.stats().coldBytes, 0);
  assert.notEqual(dropping.take<Float32Array>(Float32Array, 4 * KB).buffer, x.buffer, 'dropped, not reused');
});

test('cold buffers are bounded too (8 × the capacity), oldest dropped', () => {
  const { discard } = recorder();
  const pool = new BufferPool(4 * KB, discard);
  const arrays = Array.from({ length: 12 }, () => pool.take<Float32Array>(Float32Array, KB));
  for (const a of arrays) pool.retain(a);
  for (const a of arrays) pool.release(a);
  assert.equal(pool.stats().freeBytes, 4 * KB);
  assert.equal(pool.stats().coldBytes, 32 * KB);
});

test('arrays user code has read are never recycled; clear() discards resident buffers and reports them', () => {
  const { discard, seen } = recorder();
  const pool = new BufferPool(64 * KB, discard);
  const read = pool.take<Float32Array>(Float32Array, KB);
  pool.retain(read);
  pool.escape(read);
  pool.release(read);
  assert.equal(pool.stats().freeBytes, 0);
  const kept = cycle(pool, 2 * KB);
  assert.equal(pool.clear(), 8 * KB);
  assert.deepEqual(seen, [kept.buffer]);
  assert.deepEqual(pool.stats().freeBytes, 0);
});

const addon = loadAddon() as { discardPages?: DiscardPages } | null;

test(
  "the addon's discardPages gives a buffer's pages back at once; the buffer stays usable",
  { skip: addon?.discardPages ? false : 'native addon without discardPages (rebuild it)' },
  () => {
    const bytes = 64 * 2 ** 20;
    const a = new Float32Array(bytes / 4).fill(1.5);
    const before = processMemory().rss;
    const released = addon!.discardPages!(a.buffer as ArrayBuffer);
    const fell = before - processMemory().rss;
    assert.ok(released >= bytes - 8192, `released ${released} of ${bytes} B`);
    assert.ok(fell >= bytes * 0.9, `RSS fell by ${fell} B`);
    // discarded pages read as zeros (the pool never promises contents) and can be written again
    assert.equal(a[a.length >> 1], 0);
    a.fill(2);
    assert.equal(a[a.length - 1], 2);
    assert.throws(() => (addon!.discardPages as unknown as (x: unknown) => number)(a), /ArrayBuffer/);
  },
);
