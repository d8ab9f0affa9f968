/**
 * Small dense linear algebra in float64 on the CPU, for data-driven adapter inits (PEFT lora/layer.py:
 * PiSSA needs `torch.linalg.svd`, OLoRA `torch.linalg.qr`). Matrices are row-major `Float64Array`s;
 * sizes are those of one weight matrix (≤ a few thousand per side), computed once at init.
 *
 * - {@link svd}: one-sided Jacobi (Hestenes), reduced form `M = U·diag(S)·Vt`, S descending. Singular
 *   vectors are unique only up to a sign per pair (as in LAPACK), so compare products, not factors.
 * - {@link qr}: Householder, reduced form `M = Q·R`, with LAPACK's sign convention (`R[i][i] = −sign(a)·‖x‖`,
 *   dlarfg), so Q and R agree with `torch.linalg.qr` up to rounding.
 *
 * @example
 * const { U, S, Vt } = svd(Float64Array.from([3, 0, 0, 4]), 2, 2); // S = [4, 3]
 */

/** Reduced SVD result: U [m, k], S [k], Vt [k, n] with k = min(m, n). */
export interface SvdResult {
  U: Float64Array;
  S: Float64Array;
  Vt: Float64Array;
  k: number;
}

/** Jacobi sweeps stop when every column pair is orthogonal to this relative level (float64 eps ~2.2e-16). */
const JACOBI_TOL = 1e-15;
/** Sweeps are quadratically convergent; 60 is far beyond what any well-formed matrix needs. */
const JACOBI_MAX_SWEEPS = 60;

/** Transpose of a row-major [m, n] matrix. */
export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

/**
 * Reduced singular value decomposition of a row-major [m, n] matrix.
 *
 * @example
 * const { U, S, Vt, k } = svd(w, out, inF); // w ≈ U·diag(S)·Vt
 */
export function svd(a: Float64Array, m: number, n: number): SvdResult {
  if (m < n) {
    // M = U S Vt  ⇔  Mᵀ = V S Uᵀ
    const r = svd(transpose(a, m, n), n, m);
    return { U: transpose(r.Vt, r.k, m), S: r.S, Vt: transpose(r.U, n, r.k), k: r.k };
  }
  // m ≥ n: orthogonalise the n columns of W = M·V by plane rotations, accumulating V.
  const W = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const wp = W[i * n + p]!;
          const wq = W[i * n + q]!;
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (gamma === 0 || Math.abs(gamma) <= JACOBI_TOL * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const wp = W[i * n + p]!;
          const wq = W[i * n + q]!;
          W[i * n + p] = c * wp - s * wq;
          W[i * n + q] = s * wp + c * wq;
        }
        for (let i = 0; i < n; i++) {
          const vp = V[i * n + p]!;
          const vq = V[i * n + q]!;
          V[i * n + p] = c * vp - s * vq;
          V[i * n + q] = s * vp + c * vq;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += W[i * n + j]! ** 2;
    norms[j] = Math.sqrt(s);
  }
  const order = [...Array(n).keys()].sort((x, y) => norms[y]! - norms[x]!);
  const k = n;
  const U = new Float64Array(m * k);
  const S = new Float64Array(k);
  const Vt = new Float64Array(k * n);
  order.forEach((j, col) => {
    const sj = norms[j]!;
    S[col] = sj;
    for (let i = 0; i < m; i++) U[i * k + col] = sj > 0 ? W[i * n + j]! / sj : 0;
    for (let i = 0; i < n; i++) Vt[col * n + i] = V[i * n + j]!;
  });
  completeZeroColumns(U, m, k, S);
  return { U, S, Vt, k };
}

/** Columns of U for zero singular values: fill with orthonormal vectors (Gram–Schmidt on unit vectors). */
function completeZeroColumns(U: Float64Array, m: number, k: number, S: Float64Array): void {
  for (let col = 0; col < k; col++) {
    if (S[col]! > 0) continue;
    for (let e = 0; e < m; e++) {
      const v = new Float64Array(m);
      v[e] = 1;
      for (let c = 0; c < k; c++) {
        if (c === col || (S[c] === 0 && c > col)) continue;
        let d = 0;
        for (let i = 0; i < m; i++) d += U[i * k + c]! * v[i]!;
        for (let i = 0; i < m; i++) v[i] = v[i]! - d * U[i * k + c]!;
      }
      const nrm = Math.hypot(...v);
      if (nrm > 1e-8) {
        for (let i = 0; i < m; i++) U[i * k + col] = v[i]! / nrm;
        break;
      }
    }
  }
}

/** Reduced QR result: Q [m, k], R [k, n] with k = min(m, n). */
export interface QrResult {
  Q: Float64Array;
  R: Float64Array;
  k: number;
}

/**
 * Reduced QR of a row-major [m, n] matrix by Householder reflections, LAPACK (dgeqrf/dorgqr) signs.
 *
 * @example
 * const { Q, R, k } = qr(w, out, inF); // w = Q·R, QᵀQ = I
 */
export function qr(a: Float64Array, m: number, n: number): QrResult {
  const k = Math.min(m, n);
  const R = Float64Array.from(a); // becomes R in its upper triangle
  const vs: Float64Array[] = [];
  const taus: number[] = [];
  for (let j = 0; j < k; j++) {
    // dlarfg on x = R[j:, j]
    const alpha = R[j * n + j]!;
    let xnorm2 = 0;
    for (let i = j + 1; i < m; i++) xnorm2 += R[i * n + j]! ** 2;
    const v = new Float64Array(m - j);
    v[0] = 1;
    if (xnorm2 === 0) {
      vs.push(v);
      taus.push(0); // H = I (LAPACK leaves the sign of alpha as is)
      continue;
    }
    const beta = -Math.sign(alpha || 1) * Math.sqrt(alpha * alpha + xnorm2);
    const tau = (beta - alpha) / beta;
    const scale = 1 / (alpha - beta);
    for (let i = j + 1; i < m; i++) v[i - j] = R[i * n + j]! * scale;
    // apply H = I − tau·v·vᵀ to R[j:, j:]
    for (let c = j; c < n; c++) {
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * R[i * n + c]!;
      d *= tau;
      for (let i = j; i < m; i++) R[i * n + c] = R[i * n + c]! - d * v[i - j]!;
    }
    R[j * n + j] = beta;
    for (let i = j + 1; i < m; i++) R[i * n + j] = 0;
    vs.push(v);
    taus.push(tau);
  }
  // Q = H0·H1·…·H(k−1) applied to the first k columns of I (dorgqr, backwards accumulation)
  const Q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) Q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j]!;
    const tau = taus[j]!;
    if (tau === 0) continue;
    for (let c = 0; c < k; c++) {
      let d = 0;
      for (let i = j; i < m; i++) d += v[i - j]! * Q[i * k + c]!;
      d *= tau;
      for (let i = j; i < m; i++) Q[i * k + c] = Q[i * k + c]! - d * v[i - j]!;
    }
  }
  const Rk = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) Rk[i * n + c] = R[i * n + c]!;
  return { Q, R: Rk, k };
}
