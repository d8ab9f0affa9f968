/**
 * The wasm backend's `_FusedMatMul` fix (wasm_kernels.ts): tfjs-backend-wasm 4.22 gets a bias wrong
 * when either operand is transposed and the output has more than one row. Every transpose combination,
 * with and without bias and activation, against a float64 product computed here by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf as tfc } from './tf.js';
import { initBackend } from './backend.js';
import { maxDiff } from '../testing/compare.js';

/** float32 dot products of length ≤ 128 with |terms| ≤ 0.25 against float64: well under 2e-5. */
const MATMUL_ATOL = 2e-5;

const values = (n: number, seed: number): number[] =>
  Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);

const ACTS: Record<string, (v: number) => number> = {
  linear: (v) => v,
  relu: (v) => Math.max(v, 0),
  relu6: (v) => Math.min(Math.max(v, 0), 6),
  sigmoid: (v) => 1 / (1 + Math.exp(-v)),
  elu: (v) => (v > 0 ? v : Math.exp(v) - 1),
  leakyrelu: (v) => (v > 0 ? v : 0.2 * v),
};

/** act(op(A)·op(B) + bias) in float64 from row-major buffers. */
function reference(
  a: number[],
  b: number[],
  bias: number[] | null,
  [M, K, N]: number[],
  tA: boolean,
  tB: boolean,
  act: (v: number) => number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < M!; i++)
    for (let j = 0; j < N!; j++) {
      let s = bias ? bias[j]! : 0;
      for (let k = 0; k < K!; k++) s += a[tA ? k * M! + i : i * K! + k]! * b[tB ? j * K! + k : k * N! + j]!;
      out.push(act(s));
    }
  return out;
}

test('wasm fused matMul: every transpose × bias × activation equals a float64 reference', async () => {
  const why = await initBackend('wasm').then(
    () => undefined,
    (e: Error) => e.message,
  );
  if (why) return void console.log(`# skipped: wasm backend unavailable (${why})`);
  let checked = 0;
  for (const dims of [
    [1, 32, 32],
    [6, 32, 32],
    [6, 32, 16],
    [3, 5, 7],
    [24, 128, 512], // relu without bias goes wrong only at larger shapes
  ])
    for (const tA of [false, true])
      for (const tB of [false, true])
        for (const withBias of [false, true])
          for (const [act, f] of Object.entries(ACTS)) {
            const [M, K, N] = dims as [number, number, number];
            const av = values(M * K, 1);
            const bv = values(K * N, 2);
            const biasV = withBias ? values(N, 3) : null;
            const before = tfc.memory().numTensors;
            const y = tfc.tidy(() =>
              tfc.fused.matMul({
                a: tfc.tensor2d(av, tA ? [K, M] : [M, K]),
                b: tfc.tensor2d(bv, tB ? [N, K] : [K, N]),
                transposeA: tA,
                transposeB: tB,
                bias: biasV ? tfc.tensor1d(biasV) : undefined,
                activation: act as Parameters<typeof tfc.fused.matMul>[0]['activation'],
              }),
            );
            const got = await y.data();
            y.dispose();
            assert.equal(tfc.memory().numTensors, before, 'no tensor left behind');
            const want = reference(av, bv, biasV, dims, tA, tB, f);
            const err = maxDiff(want, got);
            assert.ok(
              err <= MATMUL_ATOL,
              `${dims} tA=${tA} tB=${tB} bias=${withBias} ${act}: max error ${err}`,
            );
            checked++;
          }
  assert.equal(checked, 5 * 4 * 2 * 6);
});
