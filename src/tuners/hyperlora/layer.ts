/**
 * `HyperLoraLinear`: a linear layer whose LoRA factors come from the hypernetwork for the condition of
 * each batch row: `y = base(x) + s · B_c(A_c(drop(x)))`, with A_c [r, in], B_c [out, r] generated per
 * row, so one batch may mix conditions. The hypernetwork and the current condition embeddings are shared
 * with the owning `HyperLoraModel` (not registered here, so they are saved once).
 *
 * @example
 * // inside HyperLoraModel.forward(inputs, [0, 2]): every HyperLoraLinear reads the two rows' embeddings
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { Dropout } from '../../nn/layers.js';
import type { LinearLike } from '../../nn/linear_like.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { HyperNetwork } from './hypernet.js';

/** What the model sets for the duration of one forward: condition embeddings [N, dc], or null. */
export interface HyperContext {
  condEmb: Tensor | null;
}

export class HyperLoraLinear extends Module {
  declare base_layer: LinearLike;
  declare lora_dropout: Dropout;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** When true the layer is its base layer (`withAdapterDisabled`). */
  disabled = false;

  constructor(
    base: LinearLike,
    readonly path: string,
    readonly layerIndex: number,
    readonly moduleType: string,
    private readonly hypernet: HyperNetwork,
    private readonly context: HyperContext,
    dropout: number,
  ) {
    super();
    this.registerModule('base_layer', base);
    this.registerModule('lora_dropout', new Dropout(dropout));
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /** The generated factors for the current rows: A [N, r, in], B [N, out, r]. Caller disposes. */
  factors(): { A: Tensor; B: Tensor } {
    const cond = this.context.condEmb;
    if (!cond) {
      throw new ConfigError(
        `HyperLoRA layer "${this.path}"`,
        'ran without a condition',
        null,
        'call hyperModel.forward(inputs, condition)',
      );
    }
    return this.hypernet.generate(cond, this.layerIndex, this.moduleType);
  }

  forward(x: Tensor): Tensor {
    if (this.disabled) return this.base_layer.forward(x);
    return tf.tidy(() => {
      const result = this.base_layer.forward(x); // [N, .., out]
      const { A, B } = this.factors();
      const n = A.shape[0]!;
      if (x.shape[0] !== n) {
        throw new ShapeError(
          `HyperLoRA layer "${this.path}"`,
          `expects [N, …] inputs with N = ${n} condition rows`,
          x.shape,
          'pass one condition per batch row',
        );
      }
      const x3 = this.lora_dropout.forward(x).reshape([n, -1, this.inFeatures]); // [N, T, in]
      const h = tf.matMul(x3, A, false, true); // [N, T, r]
      const delta = tf.matMul(h, B, false, true); // [N, T, out]
      const s = this.hypernet.config.scaling;
      return tf.add(result, tf.mul(delta.reshape(result.shape), s));
    });
  }
}
