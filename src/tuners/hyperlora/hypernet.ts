/**
 * The HyperLoRA hypernetwork (docs/hyperlora.md; in the spirit of HyperNetworks, Ha et al. 2016, and
 * of task-conditioned adapter generators such as HyperFormer, Mahabadi et al. 2021): for target layer ℓ
 * of module type t and a condition c,
 *
 *   z = [ e_c ; λ_ℓ ; μ_t ]            condition embedding (learned per id, or a projection of a given
 *                                      vector), learned layer-index and module-type embeddings
 *   h = tanh(W₁ z + b₁)                the shared hidden layer
 *   h ← h ⊙ (1 + W_γ e_c + b_γ)         only with conditioning 'film' (W_γ, b_γ start at zero)
 *   A = reshape(H^A_t h, [r, in_t])    one output head per module type, shaped for that type
 *   B = reshape(H^B_t h, [out_t, r])
 *
 * With `sharedA`, A is instead a learned [r, in] matrix per target (`shared_A.<type>` holds the
 * [layers, r, in] stack), the same for every condition, and only the B heads exist.
 *
 * H^B starts at zero, so every generated B is 0 and a fresh HyperLoRA model equals its base model (as a
 * fresh LoRA does); H^A's bias starts like LoRA's A (U(±1/√in)) and its weight small, so different
 * conditions start from nearby A's and separate as training moves them.
 *
 * @example
 * const net = new HyperNetwork(config, { q_proj: { inFeatures: 64, outFeatures: 64 } }, 5);
 * const { A, B } = net.generate(condEmb, 3, 'q_proj'); // A [N, r, 64], B [N, 64, r]
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { Embedding, Linear } from '../../nn/layers.js';
import { ModuleDict } from '../../nn/module_dict.js';
import { normal, uniform } from '../../nn/init.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { HyperLoraConfig } from './config.js';

/** Input/output sizes shared by every target of one module type. */
export interface ModuleShape {
  inFeatures: number;
  outFeatures: number;
}

/** The `sharedA` factors: one learned [layers, r, in] parameter per module type, named by the type. */
class SharedFactors extends Module {}

/** Std of H^A's weight at init: small, so all conditions start near the shared LoRA-like A (bias). */
const HEAD_A_INIT_STD = 0.02;

export class HyperNetwork extends Module {
  declare condition_embedding: Embedding | undefined;
  declare condition_proj: Linear | undefined;
  declare layer_embedding: Embedding;
  declare module_embedding: Embedding;
  declare fc1: Linear;
  declare condition_film: Linear | undefined;
  declare heads: ModuleDict<Linear>;
  declare shared_A: SharedFactors | undefined;
  readonly moduleTypes: string[];

  constructor(
    readonly config: HyperLoraConfig,
    readonly shapes: Record<string, ModuleShape>,
    readonly numLayers: number,
  ) {
    super();
    this.moduleTypes = Object.keys(shapes).sort();
    const c = config;
    if (c.conditionType === 'id')
      this.registerModule('condition_embedding', new Embedding(c.numConditions, c.embeddingDim));
    else this.registerModule('condition_proj', new Linear(c.conditionDim, c.embeddingDim));
    this.registerModule('layer_embedding', new Embedding(numLayers, c.layerEmbeddingDim));
    this.registerModule('module_embedding', new Embedding(this.moduleTypes.length, c.moduleEmbeddingDim));
    this.registerModule(
      'fc1',
      new Linear(c.embeddingDim + c.layerEmbeddingDim + c.moduleEmbeddingDim, c.hiddenDim),
    );
    this.registerModule('heads', new ModuleDict<Linear>());
    for (const t of this.moduleTypes) {
      const { inFeatures, outFeatures } = shapes[t]!;
      const headA = c.sharedA ? null : this.heads.set(`${t}_A`, new Linear(c.hiddenDim, c.r * inFeatures));
      const headB = this.heads.set(`${t}_B`, new Linear(c.hiddenDim, outFeatures * c.r));
      tf.tidy(() => {
        if (headA) {
          headA.weight.assign(normal(headA.weight.shape, 0, HEAD_A_INIT_STD));
          const bound = 1 / Math.sqrt(inFeatures);
          headA.bias!.assign(uniform([c.r * inFeatures], -bound, bound));
        }
        headB.weight.assign(tf.zerosLike(headB.weight));
        headB.bias!.assign(tf.zerosLike(headB.bias!));
      });
    }
    if (c.conditioning === 'film') {
      // registered last so the other tensors draw the same init as with 'concat'; zero, so the
      // untrained 'film' network equals the 'concat' one
      const film = this.registerModule('condition_film', new Linear(c.embeddingDim, c.hiddenDim));
      tf.tidy(() => {
        film.weight.assign(tf.zerosLike(film.weight));
        film.bias!.assign(tf.zerosLike(film.bias!));
      });
    }
    if (c.sharedA) {
      // one A per target, drawn like PEFT's LoRA A (kaiming_uniform(a=√5): U(±1/√in)); registered last,
      // so the tensors before it draw the same init as without sharedA
      const shared = this.registerModule('shared_A', new SharedFactors());
      for (const t of this.moduleTypes) {
        const { inFeatures } = shapes[t]!;
        const bound = 1 / Math.sqrt(inFeatures);
        shared.registerInitialised(t, uniform([numLayers, c.r, inFeatures], -bound, bound));
      }
    }
  }

  /**
   * Condition embeddings, one row per batch row: ids (conditionType 'id': a number array, or an int32
   * [N] tensor such as the collator's `condition`, gathered on the device) or vectors ([N, conditionDim],
   * conditionType 'vector'). Id arrays are range-checked here; an id tensor is not (that would need a
   * read back from the device), so its producer checks it (the collator, `run/hyperlora.ts`).
   * Caller disposes.
   */
  embedCondition(condition: number[] | Tensor): Tensor {
    const c = this.config;
    if (c.conditionType === 'id') {
      if (!Array.isArray(condition)) {
        if (condition.rank !== 1 || condition.dtype !== 'int32')
          throw new ShapeError(
            'HyperLoRA condition',
            'must be an int32 [N] tensor of condition ids (or an array of ids)',
            `${condition.dtype} [${condition.shape.join(', ')}]`,
            'pass one id per batch row',
          );
        return this.condition_embedding!.forward(condition); // [N, dc]
      }
      const bad = condition.filter((i) => !Number.isInteger(i) || i < 0 || i >= c.numConditions);
      if (bad.length > 0)
        throw new ConfigError('HyperLoRA condition', `ids must be integers in [0, ${c.numConditions})`, bad);
      return tf.tidy(() => this.condition_embedding!.forward(tf.tensor1d(condition, 'int32'))); // [N, dc]
    }
    const v = Array.isArray(condition) ? null : condition;
    if (!v || v.rank !== 2 || v.shape[1] !== c.conditionDim) {
      throw new ShapeError(
        'HyperLoRA condition',
        `must be a [N, ${c.conditionDim}] tensor of condition vectors`,
        v?.shape ?? 'an array',
      );
    }
    return this.condition_proj!.forward(v); // [N, dc]
  }

  /** LoRA factors for one target: A [N, r, in], B [N, out, r] from condition embeddings [N, dc]. */
  generate(condEmb: Tensor, layerIndex: number, moduleType: string): { A: Tensor; B: Tensor } {
    const t = this.moduleTypes.indexOf(moduleType);
    if (t < 0)
      throw new ConfigError(
        'HyperNetwork.generate',
        'unknown module type',
        moduleType,
        `use one of ${this.moduleTypes.join(', ')}`,
      );
    const { inFeatures, outFeatures } = this.shapes[moduleType]!;
    const r = this.config.r;
    return tf.tidy(() => {
      const n = condEmb.shape[0]!;
      const layer = this.layer_embedding.forward(tf.tensor1d([layerIndex], 'int32')); // [1, dl]
      const mod = this.module_embedding.forward(tf.tensor1d([t], 'int32')); // [1, dm]
      const z = tf.concat([condEmb, tf.tile(layer, [n, 1]), tf.tile(mod, [n, 1])], 1); // [N, dc+dl+dm]
      let h = tf.tanh(this.fc1.forward(z)); // [N, hidden]
      if (this.condition_film) h = tf.mul(h, tf.add(this.condition_film.forward(condEmb), 1)); // [N, hidden]
      const A = this.shared_A
        ? this.sharedFactor(moduleType, layerIndex, n) // [N, r, in]
        : this.heads.get(`${moduleType}_A`)!.forward(h).reshape([n, r, inFeatures]); // [N, r, in]
      const B = this.heads.get(`${moduleType}_B`)!.forward(h).reshape([n, outFeatures, r]); // [N, out, r]
      return { A, B };
    });
  }

  /** `sharedA`: layer `layerIndex`'s A of `moduleType`, the same for all `n` rows: [n, r, in]. */
  private sharedFactor(moduleType: string, layerIndex: number, n: number): Tensor {
    const stack = this.shared_A!.getParameter(moduleType)!; // [layers, r, in]
    const [, r, inFeatures] = stack.shape as [number, number, number];
    return tf.tile(tf.slice(stack, [layerIndex, 0, 0], [1, r, inFeatures]), [n, 1, 1]); // [n, r, in]
  }
}
