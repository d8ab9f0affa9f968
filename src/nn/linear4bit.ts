/**
 * `Linear4bit`: a frozen linear layer whose weight is held 4-bit (NF4/FP4, blocksize 64, optional
 * double quantisation) and dequantised on the fly in every forward (QLoRA paper §3; bitsandbytes
 * `nn.Linear4bit`, bitsandbytes nn/modules.py). No fp32 copy of the weight outlives a call; the gradient with
 * respect to the input dequantises again (see `linear4bit` in tensor/quant/op.ts). The bias stays f32.
 *
 * It implements {@link LinearLike}, so LoRA/AdaLoRA layers wrap it like a `Linear`, and merging into it
 * is dequantise → add → re-quantise (`setDenseWeight`).
 *
 * @example
 * const q = Linear4bit.fromLinear(new Linear(64, 64), { quantType: 'nf4', doubleQuant: true });
 * q.forward(x);          // ≈ the dense layer's output
 * q.bytesHeld().weight;  // ≈ 64·64·4.127/8
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import {
  dequantize4bitTensor,
  linear4bit,
  quantize4bit,
  quantizedBytes,
  type Quantize4bitOptions,
  type Quantized4bit,
  type QuantType,
} from '../tensor/quant/index.js';
import { ConfigError, ShapeError } from '../errors.js';
import { Module } from './module.js';
import { isLinearLike, type LinearLike } from './linear_like.js';
import { readData, readDataSync } from '../tensor/read.js';

/** How to quantise: the data type, block size and whether the absmax constants are quantised again. */
export interface QuantizeOptions {
  quantType?: QuantType;
  blocksize?: number;
  doubleQuant?: boolean;
}

/** Bytes held by a 4-bit layer, by category. */
export interface Linear4bitBytes {
  /** Packed codes + absmax (or nested absmax). */
  weight: number;
  /** The same weight as dense f32 (`out·in·4`), for ratios. */
  weightFp32: number;
  /** The f32 bias, if any. */
  bias: number;
}

export class Linear4bit extends Module implements LinearLike {
  declare bias: Variable | undefined;
  /** Always false: a Conv1D weight is transposed to [out, in] when quantised (bitsandbytes does the same). */
  readonly fanInFanOut = false;
  private _quant: Quantized4bit;
  private readonly options: Required<QuantizeOptions>;

  /**
   * @param quant 4-bit weight of shape [outFeatures, inFeatures]
   * @param bias optional f32 bias [outFeatures]; a Variable is adopted as is (its `trainable` kept)
   */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    quant: Quantized4bit,
    bias?: Tensor | Variable | null,
  ) {
    super();
    if (quant.shape.length !== 2 || quant.shape[0] !== outFeatures || quant.shape[1] !== inFeatures) {
      throw new ShapeError('Linear4bit', `weight must be [${outFeatures}, ${inFeatures}]`, quant.shape);
    }
    this._quant = quant;
    this.options = {
      quantType: quant.quantType,
      blocksize: quant.blocksize,
      doubleQuant: quant.nested !== null,
    };
    if (bias) {
      if (bias.shape.length !== 1 || bias.shape[0] !== outFeatures) {
        throw new ShapeError('Linear4bit', `bias must be [${outFeatures}]`, bias.shape);
      }
      this.registerParameter('bias', bias, bias instanceof tf.Variable ? bias.trainable : false);
    }
  }

  /**
   * Quantises a dense linear layer (weight transposed to [out, in] first when it is fan-in-fan-out).
   * The bias variable is moved over, not copied.
   */
  static fromLinear(layer: LinearLike, opts: QuantizeOptions = {}): Linear4bit {
    const values = orientedDense(layer);
    try {
      const data = readDataSync(
        values,
        'Linear4bit.fromLinear',
        'Linear4bit.fromLinearAsync / quantizeModelAsync',
      );
      return Linear4bit.fromValues(layer, Float32Array.from(data as Float32Array), opts);
    } finally {
      values.dispose();
    }
  }

  /**
   * {@link fromLinear} reading the dense weight asynchronously (any backend, GPU included).
   * @example const q = await Linear4bit.fromLinearAsync(dense, { quantType: 'nf4' });
   */
  static async fromLinearAsync(layer: LinearLike, opts: QuantizeOptions = {}): Promise<Linear4bit> {
    const values = orientedDense(layer);
    try {
      const data = (await readData(values)) as Float32Array;
      return Linear4bit.fromValues(layer, Float32Array.from(data), opts);
    } finally {
      values.dispose();
    }
  }

  private static fromValues(layer: LinearLike, data: Float32Array, opts: QuantizeOptions): Linear4bit {
    const q = quantize4bit(data, [layer.outFeatures, layer.inFeatures], toQuantOptions(opts));
    return new Linear4bit(layer.inFeatures, layer.outFeatures, q, layer.bias ?? null);
  }

  /** The 4-bit state (read-only view; replaced as a whole by {@link setDenseWeight}). */
  get quant(): Quantized4bit {
    return this._quant;
  }

  get quantType(): QuantType {
    return this._quant.quantType;
  }

  forward(x: Tensor): Tensor {
    return linear4bit(x, this._quant, this.bias ?? null);
  }

  /** Dequantised weight [out, in], float32. Caller disposes. */
  denseWeight(): Tensor {
    return dequantize4bitTensor(this._quant);
  }

  /** Re-quantises `w` ([out, in]) with this layer's settings. The caller keeps `w`. */
  setDenseWeight(w: Tensor): void {
    if (w.shape.length !== 2 || w.shape[0] !== this.outFeatures || w.shape[1] !== this.inFeatures) {
      throw new ShapeError(
        'Linear4bit.setDenseWeight',
        `weight must be [${this.outFeatures}, ${this.inFeatures}]`,
        w.shape,
      );
    }
    const data = Float32Array.from(
      readDataSync(
        w,
        'Linear4bit.setDenseWeight',
        'merge on a CPU backend (cpu, native, wasm)',
      ) as Float32Array,
    );
    this._quant = quantize4bit(data, [this.outFeatures, this.inFeatures], toQuantOptions(this.options));
    requantizeListener?.(this);
  }

  bytesHeld(): Linear4bitBytes {
    return {
      weight: quantizedBytes(this._quant),
      weightFp32: this.inFeatures * this.outFeatures * 4,
      bias: this.bias ? this.bias.size * 4 : 0,
    };
  }
}

let requantizeListener: ((layer: Linear4bit) => void) | null = null;

/**
 * Sets the function called whenever a 4-bit weight is overwritten and re-quantised (a LoRA merge into
 * it: lossy, PEFT warns). Returns a function restoring the previous listener. tuners/base/quantized.ts
 * installs a warning through it (nn/ cannot import the tuners' warning channel).
 *
 * @example const restore = onRequantize((l) => console.warn(`re-quantised ${l.outFeatures}×${l.inFeatures}`));
 */
export function onRequantize(listener: ((layer: Linear4bit) => void) | null): () => void {
  const prev = requantizeListener;
  requantizeListener = listener;
  return () => {
    requantizeListener = prev;
  };
}

function toQuantOptions(opts: QuantizeOptions): Quantize4bitOptions {
  const out: Quantize4bitOptions = {
    quantType: opts.quantType ?? 'nf4',
    doubleQuant: opts.doubleQuant ?? false,
  };
  if (opts.blocksize !== undefined) out.blocksize = opts.blocksize;
  return out;
}

export interface QuantizeModelOptions extends QuantizeOptions {
  /**
   * Module paths (exact, or a `.suffix`) left dense. Defaults to the model's `outputModuleNames()`
   * when it has one (the LM/classification head stays f32, as QLoRA and transformers do).
   */
  skipModules?: string[];
}

/** What {@link quantizeModel} replaced. */
export interface QuantizeModelReport {
  quantized: string[];
  skipped: string[];
}

/**
 * Replaces every dense linear layer below `model` by a {@link Linear4bit} (embeddings are not linear
 * layers and stay f32; output heads are skipped). Quantised weights are frozen by construction; a bias
 * keeps its `trainable` flag.
 *
 * @example
 * const report = quantizeModel(llama, { quantType: 'nf4', doubleQuant: true });
 * report.quantized; // ['model.layers.0.self_attn.q_proj', …] (lm_head skipped)
 */
export function quantizeModel(model: Module, opts: QuantizeModelOptions = {}): QuantizeModelReport {
  const { targets, skipped } = quantizeTargets(model, opts);
  for (const [path, m] of targets) quantizeChild(model, path, m, opts);
  return { quantized: targets.map(([p]) => p), skipped };
}

/**
 * {@link quantizeModel} reading each dense weight asynchronously: the same result on any backend,
 * and the one WebGPU/WebGL need.
 *
 * @example
 * const report = await quantizeModelAsync(llama, { quantType: 'nf4' });
 */
export async function quantizeModelAsync(
  model: Module,
  opts: QuantizeModelOptions = {},
): Promise<QuantizeModelReport> {
  const { targets, skipped } = quantizeTargets(model, opts);
  for (const [path, m] of targets) {
    model.replaceChild(path, await Linear4bit.fromLinearAsync(m, opts));
    disposeReplacedWeight(model, m);
  }
  return { quantized: targets.map(([p]) => p), skipped };
}

/**
 * The layers {@link quantizeModel} would replace (`targets`, dense linear layers outside adapters and
 * heads) and the heads it leaves dense (`skipped`), without changing anything. A ConfigError when
 * there is no linear layer at all.
 *
 * @example
 * const { targets } = quantizeTargets(llama); // [['model.layers.0.self_attn.q_proj', Linear], …]
 */
export function quantizeTargets(
  model: Module,
  opts: QuantizeModelOptions = {},
): { targets: [string, LinearLike][]; skipped: string[] } {
  const heads = (model as Partial<{ outputModuleNames(): string[] }>).outputModuleNames;
  const skip = opts.skipModules ?? (typeof heads === 'function' ? heads.call(model) : []);
  const isSkipped = (path: string) => skip.some((s) => path === s || path.endsWith(`.${s}`));
  const modules = model.namedModules();
  // tuner layers (LoRA, AdaLoRA, …) hold their frozen weight as `base_layer`: only that child is base
  // model; their adapter factors (`lora_A.default`, …) are trainable f32 layers and stay as they are
  const wrappers = modules.filter(([, m]) => m.hasChild('base_layer')).map(([p]) => p);
  const isAdapterPart = (path: string) =>
    wrappers.some((w) => {
      const prefix = w === '' ? '' : `${w}.`;
      return path.startsWith(prefix) && path !== `${prefix}base_layer`;
    });
  const linear = modules.filter(
    ([path, m]) =>
      path !== '' &&
      isLinearLike(m) &&
      !(m instanceof Linear4bit) &&
      !hasLinearLikeChild(m) &&
      !isAdapterPart(path),
  );
  if (linear.length === 0) {
    throw new ConfigError(
      'quantizeModel',
      'found no linear layer to quantise',
      model.constructor.name,
      'pass a model with Linear layers',
    );
  }
  const targets: [string, LinearLike][] = [];
  const skipped: string[] = [];
  for (const [path, m] of linear) {
    if (isSkipped(path)) skipped.push(path);
    else targets.push([path, m as LinearLike]);
  }
  return { targets, skipped };
}

/**
 * Replaces the dense layer `m` at `path` by its 4-bit form and frees the dense weight (unless tied).
 * With `values` (its weight as [out, in] f32, e.g. straight from a checkpoint) the layer's own weight
 * is never read, so a placeholder weight that was never written stays untouched.
 *
 * @example quantizeChild(model, 'model.layers.0.mlp.up_proj', layer, { quantType: 'nf4' });
 */
export function quantizeChild(
  model: Module,
  path: string,
  m: LinearLike,
  opts: QuantizeOptions = {},
  values?: Float32Array,
): Linear4bit {
  const q =
    values === undefined
      ? Linear4bit.fromLinear(m, opts)
      : new Linear4bit(
          m.inFeatures,
          m.outFeatures,
          quantize4bit(values, [m.outFeatures, m.inFeatures], toQuantOptions(opts)),
          m.bias ?? null,
        );
  model.replaceChild(path, q);
  disposeReplacedWeight(model, m);
  return q;
}

/** The layer's dense weight as [out, in] (transposed when it is fan-in-fan-out). Caller disposes. */
function orientedDense(layer: LinearLike): Tensor {
  return tf.tidy(() => {
    const w = layer.denseWeight();
    return layer.fanInFanOut ? w.transpose() : w;
  });
}

/** Tuner layers wrap a linear layer (`base_layer`); only plain layers are quantised here. */
function hasLinearLikeChild(m: Module): boolean {
  return m.namedChildren().some(([, c]) => isLinearLike(c));
}

/**
 * Frees the dense weight of a replaced layer (its bias now belongs to the 4-bit layer), unless the
 * model still uses that tensor elsewhere (a tied weight).
 */
function disposeReplacedWeight(model: Module, m: LinearLike): void {
  const w = m.getParameter('weight');
  if (!w || w.isDisposed) return;
  if (model.namedParameters().some(([, p]) => p === w)) return;
  w.dispose();
}
