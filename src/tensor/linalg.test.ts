import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { qr, svd, transpose } from './linalg.js';
import { maxDiff } from '../testing/compare.js';

/** Our SVD/QR run in float64 on float32 inputs; torch ran LAPACK in float32 (eps 1.2e-7, ×size). */
const TORCH_F32_ATOL = 2e-6;
/** Pure float64 identities (reconstruction, orthogonality) on O(1) matrices of size ≤ 8. */
const F64_ATOL = 1e-12;

const ref = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/lora/peft_gpt2_expected.json', import.meta.url), 'utf8'),
);

function matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}
function eye(n: number): Float64Array {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
}

for (const [name, W, m, n, S] of [
  ['tall 6×5', ref.pissa.W, 6, 5, ref.pissa.S],
  ['wide 3×7', ref.wide.W, 3, 7, ref.wide.S],
] as [string, number[], number, number, number[]][]) {
  test(`svd ${name}: reconstructs, orthonormal, singular values equal torch.linalg.svd`, () => {
    const a = Float64Array.from(W);
    const { U, S: s, Vt, k } = svd(a, m, n);
    assert.equal(k, Math.min(m, n));
    const US = new Float64Array(m * k);
    for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) US[i * k + j] = U[i * k + j]! * s[j]!;
    assert.ok(maxDiff(matmul(US, Vt, m, k, n), a) < F64_ATOL);
    assert.ok(maxDiff(matmul(transpose(U, m, k), U, k, m, k), eye(k)) < F64_ATOL);
    assert.ok(maxDiff(matmul(Vt, transpose(Vt, k, n), k, n, k), eye(k)) < F64_ATOL);
    assert.ok(maxDiff(s, S) < TORCH_F32_ATOL, `S ${s} vs ${S}`);
  });
}

test('qr matches torch.linalg.qr (LAPACK signs) on tall and wide matrices', () => {
  const tall = qr(Float64Array.from(ref.pissa.W), 6, 5);
  // torch Q[:, :3], R[:3] are what OLoRA keeps; compare the full reduced factors through them
  const B = new Float64Array(6 * 3);
  for (let i = 0; i < 6; i++) for (let j = 0; j < 3; j++) B[i * 3 + j] = tall.Q[i * 5 + j]!;
  assert.ok(maxDiff(B, ref.olora.B) < TORCH_F32_ATOL);
  assert.ok(maxDiff(tall.R.slice(0, 15), ref.olora.A) < TORCH_F32_ATOL);
  const wide = qr(Float64Array.from(ref.wide.W), 3, 7);
  assert.ok(maxDiff(wide.Q, ref.wide.Q) < TORCH_F32_ATOL);
  assert.ok(maxDiff(wide.R, ref.wide.R) < TORCH_F32_ATOL);
  assert.ok(maxDiff(matmul(wide.Q, wide.R, 3, 3, 7), Float64Array.from(ref.wide.W)) < F64_ATOL);
});

test('svd of rank-deficient and zero matrices keeps U orthonormal', () => {
  const a = Float64Array.from([1, 2, 2, 4, 0, 0]); // 3×2, rank 1
  const { U, S } = svd(a, 3, 2);
  assert.ok(Math.abs(S[1]!) < F64_ATOL);
  assert.ok(maxDiff(matmul(transpose(U, 3, 2), U, 2, 3, 2), eye(2)) < 1e-9);
  const z = svd(new Float64Array(4), 2, 2);
  assert.deepEqual(Array.from(z.S), [0, 0]);
  assert.ok(maxDiff(matmul(transpose(z.U, 2, 2), z.U, 2, 2, 2), eye(2)) < F64_ATOL);
});
