/**
 * Basic layers with PyTorch's parameter names and layouts, so checkpoint keys copy straight in.
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { dropout, linear, layerNorm, rmsNorm, type DropoutDraw } from '../tensor/ops/index.js';
import { ConfigError } from '../errors.js';
import { Module } from './module.js';
import { defaultRng, kaimingUniformLinear, kaimingUniformLinearTransposed, normal, uniform } from './init.js';

export interface LinearOptions {
  bias?: boolean;
  /** Weight stored [in, out] as GPT-2's Conv1D (PEFT `fan_in_fan_out`). */
  fanInFanOut?: boolean;
}

/**
 * `y = x·Wᵀ + b` with weight [out, in] (or [in, out] when `fanInFanOut`).
 * @example const fc = new Linear(768, 3072); fc.forward(x); // [.., 768] → [.., 3072]
 */
export class Linear extends Module {
  declare weight: Variable;
  declare bias: Variable | undefined;
  readonly fanInFanOut: boolean;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    this.fanInFanOut = opts.fanInFanOut ?? false;
    const shape: [number, number] = [outFeatures, inFeatures];
    this.registerInitialised(
      'weight',
      this.fanInFanOut ? kaimingUniformLinearTransposed(shape) : kaimingUniformLinear(shape),
    );
    if (opts.bias ?? true) {
      const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
      this.registerInitialised('bias', uniform([outFeatures], -bound, bound));
    }
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias ?? null, this.fanInFanOut);
  }

  /** `LinearLike` (nn/linear_like.ts): a copy of the weight in storage layout; caller disposes. */
  denseWeight(): Tensor {
    return this.weight.clone();
  }

  /** `LinearLike`: copies `w` (storage layout) into the weight; caller keeps `w`. */
  setDenseWeight(w: Tensor): void {
    this.weight.assign(w);
  }
}

/**
 * Lookup table [numEmbeddings, dim] (PyTorch init N(0, 1)).
 * @example new Embedding(512, 64).forward(ids) // ids int32 [B, T] → [B, T, 64]
 */
export class Embedding extends Module {
  declare weight: Variable;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
  ) {
    super();
    this.registerInitialised('weight', normal([numEmbeddings, embeddingDim]));
  }

  forward(ids: Tensor): Tensor {
    return tf.tidy(() => {
      const flat = ids.reshape([-1]).toInt();
      return tf.gather(this.weight, flat).reshape([...ids.shape, this.embeddingDim]);
    });
  }
}

/** `nn.LayerNorm(dim, eps)` with `weight` and `bias`. */
export class LayerNorm extends Module {
  declare weight: Variable;
  declare bias: Variable | undefined;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    withBias = true,
  ) {
    super();
    this.registerInitialised('weight', tf.ones([dim]));
    if (withBias) this.registerInitialised('bias', tf.zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias ?? null, this.eps);
  }
}

/** Llama's RMSNorm with `weight`. */
export class RMSNorm extends Module {
  declare weight: Variable;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.registerInitialised('weight', tf.ones([dim]));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/**
 * Inverted dropout (×1/(1−p) in training, identity in eval). Masks come from the seeded generator
 * of `manualSeed`, so a seed fixes them.
 */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
    if (!(p >= 0 && p < 1))
      throw new ConfigError('Dropout.p', 'must be in [0, 1)', p, 'use a probability such as 0.1');
  }

  forward(x: Tensor): Tensor {
    const d = this.draw();
    return d ? dropout(x, d.rate, d.seed) : x; // tf.dropout's exact mask; one kernel on native
  }

  /**
   * The rate and seed `forward` would use now (drawing the seed as it does), or null in eval or at
   * p = 0: for fused ops that apply the dropout themselves (`dropoutAddLayerNorm`).
   * @example const y = dropoutAddLayerNorm(h, x, ln.weight, ln.bias, ln.eps, drop.draw());
   */
  draw(): DropoutDraw | null {
    if (!this.training || this.p === 0) return null;
    return { rate: this.p, seed: defaultRng().nextUint32() };
  }
}
