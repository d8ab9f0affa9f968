/**
 * Every native kernel against tfjs-backend-cpu on fresh random inputs: odd sizes, size-1 and size-0
 * dims, every broadcasting pattern, every transpose flag, non-trivial permutations.
 */
import { test } from 'node:test';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { assertBackendsAgree, nativeAvailable, randint, randn } from '../../testing/backend_parity.js';
import type { HostTensor } from '../../testing/backend_parity.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// BLAS sums k products in a different (blocked, FMA) order than the cpu kernel's loop: float32
// rounding differences grow like k·eps·|partial sums| ≈ 65 · 6e-8 · 10 for these N(0,1) inputs.
const MATMUL_TOL = { rtol: 1e-5, atol: 1e-4 };
// The cpu kernels compute in double and round once; native rounds each float32 step, so compound
// ops ((a−b)², a/b·c) may differ in the last two bits. Data movement is bit-exact within this.
const EXACT_TOL = { rtol: 2.5e-7, atol: 0 };
// libm's float functions (≤ 1-2 ulp) vs the cpu backend's double Math.* rounded to float32; the cpu
// kernel's erf is the Abramowitz–Stegun fit with |error| ≤ 1.5e-7, hence the absolute term.
const TRANSCENDENTAL_TOL = { rtol: 4e-7, atol: 4e-7 };
// Reductions sum in a different order (8 partial sums vs one running sum).
const REDUCE_TOL = { rtol: 1e-5, atol: 1e-5 };

const rng = new Rng(20261124);

test('BatchMatMul: every transpose flag, odd, unit and empty sizes', { skip }, async () => {
  for (const [m, n, k] of [
    [1, 1, 1],
    [7, 5, 3],
    [33, 17, 65],
    [0, 3, 4],
    [4, 0, 3],
    [3, 4, 0],
  ] as const) {
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const a = randn(rng, ta ? [k, m] : [m, k]);
        const b = randn(rng, tb ? [n, k] : [k, n]);
        await assertBackendsAgree(
          `matmul ${m}x${n}x${k} ta=${ta} tb=${tb}`,
          [a, b],
          (x, y) => tf.matMul(x!, y!, ta, tb),
          MATMUL_TOL,
        );
      }
  }
});

// tfjs-backend-cpu 4.22 mis-indexes some broadcast batches ([2,1,5,3]·[3,3,4] is wrong there), so the
// cpu reference runs on explicitly broadcast operands.
function broadcastBatches(a: Tensor, b: Tensor): [Tensor, Tensor] {
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return [
    tf.broadcastTo(a, [...batch, ...a.shape.slice(-2)]),
    tf.broadcastTo(b, [...batch, ...b.shape.slice(-2)]),
  ];
}

test('BatchMatMul: batch dims broadcast', { skip }, async () => {
  const cases: [number[], number[]][] = [
    [
      [2, 1, 5, 3],
      [3, 3, 4],
    ],
    [
      [1, 5, 3],
      [4, 3, 4],
    ],
    [
      [4, 5, 3],
      [3, 4],
    ],
    [
      [6, 5, 3],
      [6, 3, 4],
    ],
    [
      [2, 3, 5, 3],
      [2, 3, 3, 4],
    ],
  ];
  for (const [sa, sb] of cases)
    for (const tb of [false, true]) {
      const b = tb ? [...sb.slice(0, -2), sb[sb.length - 1]!, sb[sb.length - 2]!] : sb;
      await assertBackendsAgree(
        `matmul ${sa}·${b} tb=${tb}`,
        [randn(rng, sa), randn(rng, b)],
        (x, y) => tf.matMul(x!, y!, false, tb),
        MATMUL_TOL,
        (x, y) => {
          const [bx, by] = broadcastBatches(x!, y!);
          return tf.matMul(bx, by, false, tb);
        },
      );
    }
});

test('_FusedMatMul: bias shapes and activations', { skip }, async () => {
  const acts = ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid'] as const;
  for (const activation of acts)
    for (const biasShape of [[6], [1], [5, 6], null]) {
      const ins: HostTensor[] = [randn(rng, [5, 7]), randn(rng, [6, 7])];
      if (biasShape) ins.push(randn(rng, biasShape));
      await assertBackendsAgree(
        `fused ${activation} bias ${biasShape}`,
        ins,
        (a, b, bias) =>
          tf.fused.matMul({
            a: a as tf.Tensor2D,
            b: b as tf.Tensor2D,
            transposeB: true,
            bias,
            activation,
            leakyreluAlpha: 0.1,
          }),
        MATMUL_TOL,
      );
    }
  const prelu = [randn(rng, [5, 7]), randn(rng, [7, 6]), randn(rng, [6])];
  await assertBackendsAgree(
    'fused prelu (cpu fallback)',
    prelu,
    (a, b, w) =>
      tf.fused.matMul({
        a: a as tf.Tensor2D,
        b: b as tf.Tensor2D,
        activation: 'prelu',
        preluActivationWeights: w,
      }),
    MATMUL_TOL,
  );
});

const BROADCASTS: [number[], number[]][] = [
  [
    [3, 5],
    [3, 5],
  ],
  [[], [4, 3]],
  [[4, 3], []],
  [
    [3, 1, 5],
    [4, 1],
  ],
  [
    [1, 5],
    [3, 1],
  ],
  [[2, 3, 4], [4]],
  [
    [2, 3, 4],
    [3, 1],
  ],
  [[0, 3], [3]],
  [[1], [1]],
  [
    [2, 1, 3, 1],
    [1, 4, 1, 5],
  ],
  [
    [7, 1],
    [1, 1],
  ],
];

test('binary ops and comparisons under every broadcasting pattern', { skip }, async () => {
  const ops: [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
    ['div', tf.div],
    ['maximum', tf.maximum],
    ['minimum', tf.minimum],
    ['squaredDifference', tf.squaredDifference],
    ['equal', tf.equal],
    ['notEqual', tf.notEqual],
    ['less', tf.less],
    ['lessEqual', tf.lessEqual],
    ['greater', tf.greater],
    ['greaterEqual', tf.greaterEqual],
  ];
  for (const [sa, sb] of BROADCASTS)
    for (const [name, op] of ops) {
      const a = randn(rng, sa);
      const b = randn(rng, sb);
      if (name.includes('qual') && b.values.length > 0 && a.values.length > 0) b.values[0] = a.values[0]!;
      await assertBackendsAgree(
        `${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        [a, b],
        (x, y) => op(x!, y!),
        EXACT_TOL,
      );
    }
  const base = randn(rng, [3, 4]);
  base.values = base.values.map(Math.abs) as Float32Array;
  await assertBackendsAgree('pow', [base, randn(rng, [4])], (x, y) => tf.pow(x!, y!), TRANSCENDENTAL_TOL);
});

test('unary ops', { skip }, async () => {
  const x = randn(rng, [3, 7, 5]);
  const pos: HostTensor = { ...x, values: x.values.map((v) => Math.abs(v) + 0.1) as Float32Array };
  const ops: [string, (t: Tensor) => Tensor, HostTensor][] = [
    ['exp', tf.exp, x],
    ['log', tf.log, pos],
    ['log1p', tf.log1p, pos],
    ['sqrt', tf.sqrt, pos],
    ['rsqrt', tf.rsqrt, pos],
    ['square', tf.square, x],
    ['neg', tf.neg, x],
    ['abs', tf.abs, x],
    ['tanh', tf.tanh, x],
    ['sigmoid', tf.sigmoid, x],
    ['erf', tf.erf, x],
    ['relu', tf.relu, x],
    ['step', (t) => tf.step(t, 0.3), x],
    ['reciprocal', tf.reciprocal, pos],
    ['expm1', tf.expm1, x],
    ['softplus', tf.softplus, x],
    ['sign', tf.sign, x],
    ['relu6', tf.relu6, x],
    ['elu', tf.elu, x],
    ['leakyRelu', (t) => tf.leakyRelu(t, 0.1), x],
    ['sin', tf.sin, x],
    ['cos', tf.cos, x],
    ['floor', tf.floor, x],
    ['ceil', tf.ceil, x],
    ['clip', (t) => tf.clipByValue(t, -0.5, 0.7), x],
  ];
  for (const [name, op, input] of ops)
    await assertBackendsAgree(name, [input], (t) => op(t!), TRANSCENDENTAL_TOL);
  await assertBackendsAgree('exp of empty', [randn(rng, [0, 4])], (t) => tf.exp(t!), EXACT_TOL);
});

test('reductions over every axis set, with and without keepDims', { skip }, async () => {
  const x = randn(rng, [3, 4, 5, 2]);
  const axesList = [[0], [1], [3], [1, 2], [0, 2], [0, 3], [1, 3], [0, 1, 2, 3], [-1], [2, 0]];
  for (const axes of axesList)
    for (const keep of [false, true]) {
      for (const [name, op] of [
        ['sum', tf.sum],
        ['mean', tf.mean],
        ['max', tf.max],
        ['min', tf.min],
        ['prod', tf.prod],
      ] as const)
        await assertBackendsAgree(`${name} ${axes} keep=${keep}`, [x], (t) => op(t!, axes, keep), REDUCE_TOL);
    }
  for (const axis of [0, 1, 2, -1]) {
    await assertBackendsAgree(`argMax ${axis}`, [x], (t) => tf.argMax(t!, axis), EXACT_TOL);
    await assertBackendsAgree(`argMin ${axis}`, [x], (t) => tf.argMin(t!, axis), EXACT_TOL);
  }
  await assertBackendsAgree('sum of size-1 axis', [randn(rng, [1, 5])], (t) => tf.sum(t!, 0), REDUCE_TOL);
  await assertBackendsAgree('sum over empty axis', [randn(rng, [0, 5])], (t) => tf.sum(t!, 0), REDUCE_TOL);
});

test('softmax over the last axis', { skip }, async () => {
  for (const shape of [[5], [3, 7], [2, 3, 4, 9], [4, 1]])
    await assertBackendsAgree(
      `softmax ${shape}`,
      [randn(rng, shape)],
      (t) => tf.softmax(t!),
      TRANSCENDENTAL_TOL,
    );
});

test('Transpose: every permutation of a rank-4 tensor, float32, int32 and bool', { skip }, async () => {
  const perms: number[][] = [];
  const permute = (rest: number[], acc: number[]) => {
    if (rest.length === 0) perms.push(acc);
    rest.forEach((r, i) => permute([...rest.slice(0, i), ...rest.slice(i + 1)], [...acc, r]));
  };
  permute([0, 1, 2, 3], []);
  const x = randn(rng, [2, 3, 1, 5]);
  for (const perm of perms)
    await assertBackendsAgree(`transpose ${perm}`, [x], (t) => tf.transpose(t!, perm), EXACT_TOL);
  await assertBackendsAgree('transpose 2-D large', [randn(rng, [67, 45])], (t) => t!.transpose(), EXACT_TOL);
  await assertBackendsAgree(
    'transpose int32',
    [randint(rng, [4, 3, 2], 9)],
    (t) => tf.transpose(t!, [2, 0, 1]),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'transpose bool',
    [randint(rng, [4, 3], 2)],
    (t) => tf.transpose(t!.cast('bool')),
    EXACT_TOL,
  );
  await assertBackendsAgree('transpose empty', [randn(rng, [0, 3])], (t) => t!.transpose(), EXACT_TOL);
});

test('GatherV2, UnsortedSegmentSum, OneHot', { skip }, async () => {
  const table = randn(rng, [11, 6]);
  await assertBackendsAgree(
    'gather axis 0',
    [table, randint(rng, [3, 4], 11)],
    (t, i) => tf.gather(t!, i!),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'gather axis 1',
    [table, randint(rng, [5], 6)],
    (t, i) => tf.gather(t!, i!, 1),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'gather int32',
    [randint(rng, [7, 3], 50), randint(rng, [9], 7)],
    (t, i) => tf.gather(t!, i!),
    EXACT_TOL,
  );
  const ids = randint(rng, [9], 5);
  ids.values[2] = 7; // out of range: dropped, as TensorFlow does
  await assertBackendsAgree(
    'unsortedSegmentSum',
    [randn(rng, [9, 4]), ids],
    (x, s) => tf.unsortedSegmentSum(x!, s as tf.Tensor1D, 6),
    REDUCE_TOL,
  );
  await assertBackendsAgree(
    'gather gradient',
    [table, randint(rng, [8], 11)],
    (t, i) => tf.grad((w: Tensor) => tf.sum(tf.gather(w, i!)))(t!),
    REDUCE_TOL,
  );
  await assertBackendsAgree('oneHot', [randint(rng, [6], 4)], (i) => tf.oneHot(i!, 4), EXACT_TOL);
});

test('Select, Concat, Slice, Tile, Pad, BroadcastTo, Cast', { skip }, async () => {
  const a = randn(rng, [4, 5]);
  const b = randn(rng, [4, 5]);
  await assertBackendsAgree(
    'where full',
    [randint(rng, [4, 5], 2), a, b],
    (c, x, y) => tf.where(c!.cast('bool'), x!, y!),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'where broadcast',
    [randint(rng, [4, 1], 2), a, randn(rng, [5])],
    (c, x, y) => tf.where(c!.cast('bool'), x!, y!),
    EXACT_TOL,
  );
  for (const axis of [0, 1, -1])
    await assertBackendsAgree(
      `concat axis ${axis}`,
      [a, b, randn(rng, [4, 5])],
      (x, y, z) => tf.concat([x!, y!, z!], axis),
      EXACT_TOL,
    );
  await assertBackendsAgree(
    'concat with empty',
    [randn(rng, [2, 3, 0]), randn(rng, [2, 3, 2])],
    (x, y) => tf.concat([x!, y!], 2),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'concat int32',
    [randint(rng, [3, 2], 9), randint(rng, [3, 4], 9)],
    (x, y) => tf.concat([x!, y!], 1),
    EXACT_TOL,
  );
  const x4 = randn(rng, [3, 4, 5, 2]);
  await assertBackendsAgree('slice', [x4], (t) => tf.slice(t!, [1, 0, 2, 1], [2, -1, 3, 1]), EXACT_TOL);
  await assertBackendsAgree('tile', [randn(rng, [2, 1, 3])], (t) => tf.tile(t!, [2, 3, 1]), EXACT_TOL);
  await assertBackendsAgree(
    'pad',
    [randn(rng, [2, 3])],
    (t) =>
      tf.pad(
        t!,
        [
          [1, 0],
          [2, 3],
        ],
        0.5,
      ),
    EXACT_TOL,
  );
  await assertBackendsAgree(
    'broadcastTo',
    [randn(rng, [3, 1])],
    (t) => tf.broadcastTo(t!, [2, 3, 4]),
    EXACT_TOL,
  );
  const mixed = randn(rng, [10]);
  mixed.values[0] = NaN;
  await assertBackendsAgree('cast float→int32', [mixed], (t) => t!.cast('int32'), EXACT_TOL);
  await assertBackendsAgree('cast float→bool', [mixed], (t) => t!.cast('bool'), EXACT_TOL);
  await assertBackendsAgree(
    'cast int32→float',
    [randint(rng, [7], 100)],
    (t) => t!.cast('float32'),
    EXACT_TOL,
  );
});
