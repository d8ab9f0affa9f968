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

/**
 * Inverted dropout, `tf.dropout(x, rate, undefined, seed)` bit for bit on every backend: on `native`
 * one kernel draws tfjs's own Alea stream (see native/src/random.cc) and returns y and the mask
 * multiplier (saved for the gradient dy·mask), instead of a JS loop for the uniforms and four
 * elementwise kernels; elsewhere it is tf.dropout. x is not kept for the gradient.
 *
 * @example const y = dropout(x, 0.1, 1234); // equals tf.dropout(x, 0.1, undefined, 1234)
 */
export function dropout(x: Tensor, rate: number, seed: number): Tensor {
  if (rate === 0 || !nativeFused(x)) return tf.dropout(x, rate, undefined, seed);
  const keep = 1 - rate; // tf.dropout's keepProb, rounded to float32 in the kernel as in tfjs
  const state = aleaState(String(seed));
  const f = customGrad1((xi, save) => {
    const [y, mult] = runFused(FUSED.dropout, { x: xi }, { keep, ...state });
    save([mult!]);
    return { value: y!, gradFunc: (dy, [m]) => tf.mul(dy, m!) };
  });
  return f(x);
}
