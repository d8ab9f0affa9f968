import { tf, type Tensor } from '../tf.js';
import { FUSED, customGrad1, nativeFused, runFused } from './fused.js';

/** GELU as one native kernel, with its derivative as another (x is saved, nothing else). */
function fusedGelu(x: Tensor, tanh: boolean): Tensor {
  const f = customGrad1((xi, save) => {
    save([xi]);
    return {
      value: runFused(FUSED.gelu, { x: xi }, { tanh })[0]!,
      gradFunc: (dy, [sx]) => runFused(FUSED.geluGrad, { x: sx!, dy }, { tanh })[0]!,
    };
  });
  return f(x);
}

/**
 * Exact GELU `x·Φ(x) = 0.5·x·(1 + erf(x/√2))` (BERT's "gelu", PyTorch's default); fused on native.
 * @example gelu(tf.tensor([-1, 0, 1])) // ≈ [-0.1587, 0, 0.8413]
 */
export function gelu(x: Tensor): Tensor {
  if (nativeFused(x)) return tf.tidy(() => fusedGelu(x, false));
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/**
 * Tanh-approximated GELU (GPT-2's "gelu_new"): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`;
 * fused on native.
 * @example geluTanh(tf.tensor([1])) // ≈ [0.8412]
 */
export function geluTanh(x: Tensor): Tensor {
  if (nativeFused(x)) return tf.tidy(() => fusedGelu(x, true));
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** SiLU / swish `x·σ(x)` (Llama's MLP activation). */
export function silu(x: Tensor): Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

export type ActivationName = 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu' | 'silu' | 'tanh';

/** Looks up a Hugging Face `hidden_act` name. */
export function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu':
      return gelu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return geluTanh;
    case 'relu':
      return (x) => tf.relu(x);
    case 'silu':
    case 'swish':
      return silu;
    case 'tanh':
      return (x) => tf.tanh(x);
    default:
      throw new Error(`activation "${name}" is not supported yet`);
  }
}
