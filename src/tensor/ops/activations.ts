import { tf, type Tensor } from '../tf.js';

/** Exact GELU `x·Φ(x) = 0.5·x·(1 + erf(x/√2))` (BERT's "gelu", PyTorch's default). */
export function gelu(x: Tensor): Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/** Tanh-approximated GELU (GPT-2's "gelu_new"): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. */
export function geluTanh(x: Tensor): Tensor {
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
