import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.js';
import { initBackend } from './backend.js';
import { releaseMemory } from './memory.js';
import { nativeAvailable } from '../testing/backend_parity.js';

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
