/**
 * The native row kernels run up to eight rows side by side (native/src/norm_rows.h,
 * softmax_rows.h) while each row keeps its own summation order. These tests pin that down: a
 * many-row call must give, bit for bit, what one call per row gives (where no interleaving can
 * happen), for every row count around the group size, so any change of a row's arithmetic by its
 * neighbours fails here. The values themselves are checked against tfjs-backend-cpu in
 * kernels.test.ts, mha.test.ts and fused.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from './addon.js';
import { Rng } from '../../util/rng.js';

const addon = loadAddon();
const skip = addon ? false : 'native addon not built';
const rng = new Rng(20261208);

function randn(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/**
 * N(0, 1) rows with a cancelling pair ±B (B ≈ 1e12) at random places: in a double sum the pair
 * swallows the low bits of whatever was added while it was in (ulp(1e12) = 2⁻¹²), so another
 * summation order changes the mean after the cast to float. Plain N(0, 1) rows would hide that:
 * a double sum of a few hundred floats of similar size is exact in any order.
 */
function spiky(rows: number, cols: number): Float32Array {
  const a = randn(rows * cols);
  if (cols < 2) return a;
  for (let r = 0; r < rows; r++) {
    const big = 1e12 * (1 + rng.uniform());
    const i = rng.int(cols);
    const j = (i + 1 + rng.int(cols - 1)) % cols;
    a[r * cols + i] = big;
    a[r * cols + j] = -big;
  }
  return a;
}

/** Row r of a [rows, cols] array, as a copy. */
function row(a: Float32Array, r: number, cols: number): Float32Array {
  return a.slice(r * cols, (r + 1) * cols);
}

function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++)
    assert.equal(g[i], w[i], `${what}: element ${i} (${got[i]} vs ${want[i]})`);
}

// Row counts below, at and around the group of 8, across two threads' shares; odd column counts
// (vector tails) and widths above the 16-lane maximum.
const ROWS = [1, 7, 8, 9, 17, 40];
const COLS = [1, 5, 16, 33, 130];

test(
  'normForward/normBackward: many rows equal one row at a time, bit for bit (layer and RMS)',
  { skip },
  () => {
    for (const rows of ROWS)
      for (const cols of COLS)
        for (const rms of [false, true]) {
          const x = spiky(rows, cols);
          const dy = randn(rows * cols);
          const g = randn(cols);
          const b = rms ? null : randn(cols);
          const o = new Float32Array(rows * cols),
            mu = new Float32Array(rows),
            rs = new Float32Array(rows);
          addon!.normForward(x, g, b, o, mu, rs, rows, cols, 1e-5, rms);
          const dx = new Float32Array(rows * cols),
            dg = new Float32Array(cols),
            db = new Float32Array(cols);
          addon!.normBackward(dy, x, g, mu, rs, dx, dg, rms ? null : db, rows, cols, rms);
          for (let r = 0; r < rows; r++) {
            const o1 = new Float32Array(cols),
              m1 = new Float32Array(1),
              r1 = new Float32Array(1);
            addon!.normForward(row(x, r, cols), g, b, o1, m1, r1, 1, cols, 1e-5, rms);
            const what = `norm rows=${rows} cols=${cols} rms=${rms} row ${r}`;
            assertSameBits(row(o, r, cols), o1, `${what} y`);
            assertSameBits(mu.slice(r, r + 1), m1, `${what} mean`);
            assertSameBits(rs.slice(r, r + 1), r1, `${what} rstd`);
            const dx1 = new Float32Array(cols);
            addon!.normBackward(
              row(dy, r, cols),
              row(x, r, cols),
              g,
              m1,
              r1,
              dx1,
              new Float32Array(cols),
              null,
              1,
              cols,
              rms,
            );
            assertSameBits(row(dx, r, cols), dx1, `${what} dx`);
          }
        }
  },
);

test('addNormForward/Backward: many rows equal one row at a time, bit for bit', { skip }, () => {
  for (const rows of ROWS)
    for (const cols of COLS) {
      const n = rows * cols;
      // residual 0 where the spikes are (h + r must cancel exactly for the order to show)
      const h = spiky(rows, cols),
        res = randn(n, 2).map((v, i) => (Math.abs(h[i]!) > 1e6 ? 0 : v)),
        g = randn(cols),
        b = randn(cols),
        dy = randn(n);
      const y = new Float32Array(n),
        sum = new Float32Array(n),
        mu = new Float32Array(rows),
        rs = new Float32Array(rows);
      addon!.addNormForward(h, res, g, b, y, sum, mu, rs, null, rows, cols, 1e-12, 1, null, 1);
      const dh = new Float32Array(n),
        dres = new Float32Array(n);
      addon!.addNormBackward(dy, sum, g, mu, rs, null, dh, dres, new Float32Array(cols), null, rows, cols, 1);
      for (let r = 0; r < rows; r++) {
        const y1 = new Float32Array(cols),
          s1 = new Float32Array(cols),
          m1 = new Float32Array(1),
          r1 = new Float32Array(1);
        addon!.addNormForward(
          row(h, r, cols),
          row(res, r, cols),
          g,
          b,
          y1,
          s1,
          m1,
          r1,
          null,
          1,
          cols,
          1e-12,
          1,
          null,
          1,
        );
        const what = `add-norm rows=${rows} cols=${cols} row ${r}`;
        assertSameBits(row(y, r, cols), y1, `${what} y`);
        assertSameBits(mu.slice(r, r + 1), m1, `${what} mean`);
        assertSameBits(rs.slice(r, r + 1), r1, `${what} rstd`);
        const dh1 = new Float32Array(cols),
          dres1 = new Float32Array(cols);
        addon!.addNormBackward(
          row(dy, r, cols),
          s1,
          g,
          m1,
          r1,
          null,
          dh1,
          dres1,
          new Float32Array(cols),
          null,
          1,
          cols,
          1,
        );
        assertSameBits(row(dh, r, cols), dh1, `${what} dh`);
      }
    }
});

test('maskedSoftmax/softmaxGrad: many rows equal one row at a time, bit for bit', { skip }, () => {
  for (const rows of ROWS)
    for (const cols of COLS) {
      const n = rows * cols;
      const x = randn(n, 4),
        mask = randn(n, 2),
        dy = randn(n);
      const full = Int32Array.from([0, 0, cols, 1]);
      const y = new Float32Array(n),
        dx = new Float32Array(n);
      addon!.maskedSoftmax(x, mask, y, Int32Array.from([1, 1, rows, cols]), full, 0.37);
      addon!.softmaxGrad(y, dy, dx, rows, cols, 0.37);
      for (let r = 0; r < rows; r++) {
        const y1 = new Float32Array(cols),
          dx1 = new Float32Array(cols);
        addon!.maskedSoftmax(
          row(x, r, cols),
          row(mask, r, cols),
          y1,
          Int32Array.from([1, 1, 1, cols]),
          full,
          0.37,
        );
        addon!.softmaxGrad(y1, row(dy, r, cols), dx1, 1, cols, 0.37);
        const what = `softmax rows=${rows} cols=${cols} row ${r}`;
        assertSameBits(row(y, r, cols), y1, `${what} y`);
        assertSameBits(row(dx, r, cols), dx1, `${what} dx`);
      }
    }
});

test(
  'attention kernels: the softmax rows inside equal maskedSoftmax/softmaxGrad bit for bit',
  { skip },
  () => {
    // One head, d = 1 and q = 1: the scores are k itself, so the kernel's probabilities must be
    // maskedSoftmax(k) exactly, and with dy = 1, v = 0 … the backward's dS = softmaxGrad(p, v-row).
    for (const [tq, tk] of [
      [9, 13],
      [16, 130],
      [17, 5],
    ] as const) {
      const q = new Float32Array(tq).fill(1);
      const k = randn(tk, 3),
        v = randn(tk);
      const mask = randn(tk, 2);
      const out = new Float32Array(tq),
        probs = new Float32Array(tq * tk);
      addon!.attentionForward(
        q,
        k,
        v,
        mask,
        Int32Array.from([0, 0, 0, 1]),
        out,
        probs,
        1,
        tq,
        tk,
        1,
        1,
        0.41,
      );
      const scores = new Float32Array(tq * tk);
      for (let i = 0; i < tq; i++) scores.set(k, i * tk);
      const want = new Float32Array(tq * tk);
      addon!.maskedSoftmax(
        scores,
        mask,
        want,
        Int32Array.from([1, 1, tq, tk]),
        Int32Array.from([0, 0, 0, 1]),
        0.41,
      );
      assertSameBits(probs, want, `attention probs ${tq}x${tk}`);
      // dy = 1 per query: dP[i][c] = v[c], so dq[i] = Σ_c dS[i][c]·k[c] with dS = softmaxGrad(p, dP).
      const dq = new Float32Array(tq),
        dk = new Float32Array(tk),
        dv = new Float32Array(tk);
      addon!.attentionBackward(q, q, k, v, probs, dq, dk, dv, 1, tq, tk, 1, 1, 0.41);
      const dP = new Float32Array(tq * tk);
      for (let i = 0; i < tq; i++) dP.set(v, i * tk);
      const dS = new Float32Array(tq * tk);
      addon!.softmaxGrad(probs, dP, dS, tq, tk, 0.41);
      // dk[c] = Σ_i dS[i][c]·q[i] = Σ_i dS[i][c] (q = 1): compare within a sum's rounding of dS.
      for (let c = 0; c < tk; c++) {
        let s = 0;
        for (let i = 0; i < tq; i++) s += dS[i * tk + c]!;
        assert.ok(Math.abs(dk[c]! - s) <= 1e-6 * (1 + Math.abs(s)), `dk[${c}] ${dk[c]} vs Σ dS ${s}`);
      }
    }
  },
);
