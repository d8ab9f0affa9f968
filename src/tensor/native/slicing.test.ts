/**
 * SplitV and StridedSlice on the native strided copy against tfjs-backend-cpu: every piece of
 * even and uneven splits on every axis (incl. size-0 pieces), and strided slices with positive and
 * negative strides, begin/end/ellipsis/new-axis/shrink masks, float32, int32 and bool.
 */
import { test } from 'node:test';
import { tf } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { assertBackendsAgree, nativeAvailable, randint, randn } from '../../testing/backend_parity.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// Pure data movement: the copy must be bit-exact.
const EXACT = { rtol: 0, atol: 0 };
const rng = new Rng(2611);

test('SplitV: every piece of even and uneven splits on every axis', { skip }, async () => {
  const x = randn(rng, [4, 3, 6, 8]);
  for (const axis of [0, 1, 2, 3, -1]) {
    const len = x.shape.at(axis)!;
    const uneven = len === 3 ? [1, 0, 2] : [1, len - 3, 2];
    for (const sizes of [uneven, len % 2 === 0 ? 2 : 3])
      for (let piece = 0; piece < (typeof sizes === 'number' ? sizes : sizes.length); piece++)
        await assertBackendsAgree(
          `split axis ${axis} sizes ${String(sizes)} piece ${piece}`,
          [x],
          (t) => tf.split(t!, sizes, axis)[piece]!,
          EXACT,
        );
  }
  await assertBackendsAgree(
    'split int32 with -1 size',
    [randint(rng, [5, 7], 50)],
    (t) => tf.split(t!, [2, -1], 1)[1]!,
    EXACT,
  );
});

test('StridedSlice: strides, negative strides and every mask', { skip }, async () => {
  const x = randn(rng, [5, 6, 7]);
  const cases: [string, Parameters<typeof tf.stridedSlice>][] = [
    ['contiguous', [x as never, [1, 0, 0], [3, 6, 7]]],
    ['stride 2 inner', [x as never, [0, 1, 0], [5, 6, 7], [1, 2, 3]]],
    ['negative stride', [x as never, [4, 5, 6], [0, 0, 0], [-1, -2, -3]]],
    ['begin/end masks', [x as never, [2, 2, 2], [4, 4, 4], [1, 1, 2], 0b101, 0b010]],
    ['ellipsis + new axis', [x as never, [0, 0, 1], [0, 0, 5], [1, 1, 2], 0, 0, 0b001, 0b010]],
    ['shrink axis', [x as never, [2, 0, 3], [3, 6, 4], [1, 1, 1], 0, 0, 0, 0, 0b101]],
    ['empty result', [x as never, [3, 0, 0], [3, 6, 7]]],
  ];
  for (const [name, args] of cases)
    await assertBackendsAgree(
      `stridedSlice ${name}`,
      [x],
      (t) => tf.stridedSlice(t!, ...(args.slice(1) as [number[], number[]])),
      EXACT,
    );
  await assertBackendsAgree(
    'stridedSlice bool reversed',
    [randint(rng, [9], 2)],
    (t) => tf.stridedSlice(t!.cast('bool'), [8], [0], [-3]).cast('int32'),
    EXACT,
  );
});
