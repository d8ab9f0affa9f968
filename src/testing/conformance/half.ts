/**
 * Conformance of float16 storage (tensor/half.ts, issue 18): the widening (a loop over packed pairs
 * on CPU-memory backends, a table gather on GPU backends) must be exact on every backend, and
 * the blockwise tied-head matmul and the chunked loss over it as close as any matmul. Rounding edge
 * cases against torch are in tensor/half.test.ts.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { HalfMatrix, matMulHalfT } from '../../tensor/half.js';
import { chunkedLinearCrossEntropy } from '../../tensor/ops/chunked_ce.js';
import { readAll } from '../../tensor/read.js';
import { GRAD_TOL, OP_TOL, seeded, TRANSCENDENTAL_TOL } from './ops.js';
import type { ConformanceCase, Values } from './types.js';

/** Widening is a table lookup of exact float16 values: bit-exact on every backend. */
const EXACT = { atol: 0, rtol: 0 };

const [V, H, N] = [203, 47, 24]; // odd width: the last packed pair is padded

/** A weight with float16 edge cases (ties to even, subnormals) among seeded values. */
function weight(): Float32Array {
  const w = seeded(V * H, 31, 2);
  const edges = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -2.98023259e-8, 8.940696716308594e-8, 6.1e-5, 1e-9];
  edges.forEach((v, i) => (w[i * 13] = v));
  return w;
}

async function halfOutputs(): Promise<Record<string, Values>> {
  const w = HalfMatrix.fromFloat32(weight(), V, H);
  w.blockRows = 64; // several vocabulary blocks per matmul
  const ids = tf.tensor2d(
    Array.from({ length: 18 }, (_, i) => (i * 37 + 5) % V),
    [2, 9],
    'int32',
  );
  const x = tf.tensor2d(seeded(N * H, 32, 0.5), [N, H]);
  const labels = tf.tensor1d(
    Array.from({ length: N }, (_, i) => (i % 7 === 3 ? -100 : (i * 53 + 11) % V)),
    'int32',
  );
  const probe = tf.tensor2d(seeded(N * V, 33), [N, V]);
  let named: Record<string, Tensor> = {};
  try {
    named = tf.tidy(() => {
      const loss = tf.valueAndGrad((xs: Tensor) =>
        chunkedLinearCrossEntropy(xs, w, labels, { chunkRows: 5 }),
      )(x);
      return {
        rows: w.gatherRows(ids),
        widened: w.rowBlock(0, V),
        logits: matMulHalfT(x, w),
        gradHead: tf.grad((xs: Tensor) => tf.sum(tf.mul(matMulHalfT(xs, w), probe)))(x),
        loss: loss.value,
        gradLoss: loss.grad,
      };
    });
    const names = Object.keys(named);
    const vals = await readAll(names.map((n) => named[n]!));
    return Object.fromEntries(names.map((n, i) => [n, vals[i]!]));
  } finally {
    tf.dispose([ids, x, labels, probe, ...Object.values(named)]);
    w.dispose();
  }
}

/** The float16 storage case (group `op`). */
export function halfCases(): ConformanceCase[] {
  return [
    {
      name: `float16 storage: lookup, tied-head matmul and chunked loss [${V}×${H}]`,
      group: 'op',
      tol: {
        default: OP_TOL,
        rows: EXACT,
        widened: EXACT,
        grad: GRAD_TOL,
        loss: TRANSCENDENTAL_TOL,
      },
      run: halfOutputs,
    },
  ];
}
