import { tf, type Tensor } from '../tf.js';
import { FUSED, customGrad1, nativeFused, runFused } from './fused.js';

/** Alea's state as integers: s0..s2 scaled by 2³² (each < 2³²) and the carry c. */
export interface AleaState {
  s0: number;
  s1: number;
  s2: number;
  c: number;
}

/**
 * The initial state of Alea (J. Baagøe's generator, the one tfjs's random ops use through
 * seedrandom) for a seed string: Mash hashes ' ' three times, then the seed three times, and each
 * state word is the first hash minus the second, wrapped into [0, 1). Every Mash output is a
 * multiple of 2⁻³², so the words are returned as exact integers.
 */
export function aleaState(seed: string): AleaState {
  let n = 0xefc8249d;
  const mash = (data: string): number => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return n >>> 0; // Mash returns this · 2⁻³²
  };
  const blank = [mash(' '), mash(' '), mash(' ')];
  const [s0, s1, s2] = blank.map((b) => {
    const d = b - mash(seed);
    return d < 0 ? d + 0x100000000 : d;
  }) as [number, number, number];
  return { s0, s1, s2, c: 1 };
}

// Alea as a lag-3 multiply-with-carry generator (native/src/alea.h): base b = 2³², multiplier
// a = 2091639; the state W = s0 + s1·b + s2·b² + c·b³ steps as W ← W·b⁻¹ mod m, m = a·b³ − 1, and
// b⁻¹ = a·b² mod m because a·b³ = m + 1.
const ALEA_B = 2n ** 32n;
const ALEA_M = 2091639n * ALEA_B ** 3n - 1n;
const ALEA_B_INV = 2091639n * ALEA_B ** 2n;
/** Substreams per draw (four per thread, interleaved) and the smallest chunk worth splitting off. */
const MAX_STREAMS = 16;
const MIN_CHUNK = 4096;
const jumps = new Map<number, bigint>(); // b⁻ᶜʰᵘⁿᵏ mod m by chunk length
const MAX_CACHED_JUMPS = 256; // tensor sizes vary with dynamic padding: keep the cache bounded

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let x = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * x) % mod;
    x = (x * x) % mod;
  }
  return r;
}

/**
 * The Alea state after `k` steps from `state` (what `k` draws of tfjs's generator leave), by the
 * multiply-with-carry jump W·b⁻ᵏ mod m instead of k steps.
 * @example aleaJump(aleaState('7'), 1000); // the state before the 1001st uniform of seed '7'
 */
export function aleaJump(state: AleaState, k: number, jump?: bigint): AleaState {
  return fromW((toW(state) * (jump ?? modPow(ALEA_B_INV, BigInt(k), ALEA_M))) % ALEA_M);
}

const MASK32 = 0xffffffffn;
/** Alea's state as the MWC integer W = s0 + s1·b + s2·b² + c·b³ (b = 2³²), and back. */
const toW = (st: AleaState): bigint =>
  BigInt(st.s0) | (BigInt(st.s1) << 32n) | (BigInt(st.s2) << 64n) | (BigInt(st.c) << 96n);
const fromW = (w: bigint): AleaState => ({
  s0: Number(w & MASK32),
  s1: Number((w >> 32n) & MASK32),
  s2: Number((w >> 64n) & MASK32),
  c: Number(w >> 96n),
});

/**
 * The start states of the substreams the native kernels draw `n` uniforms of `seed` with: chunk j
 * covers elements [j·chunk, (j+1)·chunk) and starts from the state j·chunk steps in, so every
 * element gets the uniform of the single stream (tf.randomUniform's). `states` holds (s0, s1, s2,
 * c) per substream.
 * @example const { states, chunk } = aleaStreams('42', 1 << 20); // 16 substreams of 65536
 */
export function aleaStreams(seed: string, n: number): { states: number[]; chunk: number } {
  const streams = Math.max(1, Math.min(MAX_STREAMS, Math.floor(n / MIN_CHUNK)));
  const chunk = Math.max(1, Math.ceil(n / streams));
  let jump = jumps.get(chunk);
  if (jump === undefined) {
    jump = modPow(ALEA_B_INV, BigInt(chunk), ALEA_M);
    if (jumps.size >= MAX_CACHED_JUMPS) jumps.clear();
    jumps.set(chunk, jump);
  }
  const first = aleaState(seed);
  const states = [first.s0, first.s1, first.s2, first.c];
  let w = toW(first);
  for (let j = 1; j < streams; j++) {
    w = (w * jump) % ALEA_M;
    const st = fromW(w);
    states.push(st.s0, st.s1, st.s2, st.c);
  }
  return { states, chunk };
}

/**
 * Inverted dropout, `tf.dropout(x, rate, undefined, seed)` bit for bit on every backend: on `native`
 * one kernel draws tfjs's own Alea stream (native/src/random.cc, in the substreams of
 * {@link aleaStreams}) and returns y and the mask multiplier (saved for the gradient dy·mask),
 * instead of a JS loop for the uniforms and four elementwise kernels; elsewhere it is tf.dropout.
 * x is not kept for the gradient.
 *
 * @example const y = dropout(x, 0.1, 1234); // equals tf.dropout(x, 0.1, undefined, 1234)
 */
export function dropout(x: Tensor, rate: number, seed: number): Tensor {
  if (rate === 0 || !nativeFused(x)) return tf.dropout(x, rate, undefined, seed);
  const keep = 1 - rate; // tf.dropout's keepProb, rounded to float32 in the kernel as in tfjs
  const streams = aleaStreams(String(seed), x.size);
  const f = customGrad1((xi, save) => {
    const [y, mult] = runFused(FUSED.dropout, { x: xi }, { keep, ...streams });
    save([mult!]);
    return { value: y!, gradFunc: (dy, [m]) => tf.mul(dy, m!) };
  });
  return f(x);
}
