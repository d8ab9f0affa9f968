/**
 * Test inputs shared by the quantisation tests (not exported from the package).
 */

/**
 * The integer LCG of tests/fixtures/nf4_reference.py: x = ((u − 32768)/32768)³·0.5, exact in f64
 * before the f32 cast, so the python reference sees the same values.
 *
 * @example lcgValues(603, 1) // Float32Array of 603 heavy-tailed values in [−0.5, 0.5]
 */
export function lcgValues(n: number, seed: number): Float32Array {
  let state = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    const c = (state >> 15) - 32768;
    out[i] = (c * c * c) / 2 ** 46;
  }
  return out;
}
