/**
 * LoRA on an embedding table (PEFT `lora.Embedding`, lora/layer.py):
 * `lora_embedding_A` (r × numEmbeddings) and `lora_embedding_B` (dim × r) are parameters held
 * directly in per-adapter dicts, so their keys have no `.weight` (§5.1). The adapter output is
 * `embedding(ids, Aᵀ)·Bᵀ·scaling`; PEFT applies no dropout here, and neither do we.
 *
 * @example
 * const emb = new LoraEmbedding(new Embedding(100, 16), 'default', { r: 4, loraAlpha: 8 });
 * emb.forward(ids); // equals the base lookup at init (A = 0)
 */
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { ParameterDict } from '../../nn/module_dict.js';
import type { Module } from '../../nn/module.js';
import { normal } from '../../nn/init.js';
import { NotSupportedError } from '../../errors.js';
import type { LoraInit } from './config.js';
import { LoraLayer, type LoraLayerOptions } from './layer.js';

/** What LoRA needs from an embedding base: the [num, dim] table and a lookup. */
export interface EmbeddingLike extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly weight: Variable;
  forward(ids: Tensor): Tensor;
}

/** Structural check for {@link EmbeddingLike}. */
export function isEmbeddingLike(m: unknown): m is EmbeddingLike {
  const o = m as Partial<EmbeddingLike> | null;
  return (
    o !== null &&
    typeof o === 'object' &&
    typeof o.numEmbeddings === 'number' &&
    typeof o.embeddingDim === 'number' &&
    o.weight instanceof tf.Variable
  );
}

export class LoraEmbedding extends LoraLayer {
  readonly kind = 'embedding' as const;
  declare base_layer: EmbeddingLike;
  declare lora_embedding_A: ParameterDict;
  declare lora_embedding_B: ParameterDict;

  constructor(baseLayer: EmbeddingLike, adapter: string, opts: LoraLayerOptions) {
    super(baseLayer);
    this.registerModule('lora_embedding_A', new ParameterDict());
    this.registerModule('lora_embedding_B', new ParameterDict());
    this.activeAdapterNames = [adapter];
    this.updateLayer(adapter, opts);
  }

  override updateLayer(adapter: string, opts: LoraLayerOptions): void {
    this.setAdapterScalars(adapter, opts);
    const { r } = opts;
    const { numEmbeddings: num, embeddingDim: dim } = this.base_layer;
    // PEFT creates both with torch.randn, then re-initialises them unless init is False.
    const a = normal([r, num]);
    const b = normal([dim, r]);
    this.lora_embedding_A.set(adapter, a);
    this.lora_embedding_B.set(adapter, b);
    a.dispose();
    b.dispose();
    this.resetLoraParameters(adapter, opts.initLoraWeights ?? true);
    this.initVariant(adapter, opts.useDora ?? false);
    this.setAdapter(this.activeAdapterNames);
  }

  /** Any truthy init (incl. data-driven names, as in PEFT): A = 0, B ~ N(0, 1). False: both N(0, 1). */
  resetLoraParameters(adapter: string, init: LoraInit): void {
    if (init === false) return;
    if (init === 'loftq')
      throw new NotSupportedError(
        `LoRA embedding, adapter "${adapter}"`,
        "init 'loftq' on an embedding (tables stay f32 under QLoRA)",
        'leave embeddings out of targetModules, or use another init',
      );
    const A = this.lora_embedding_A.get(adapter)!;
    const B = this.lora_embedding_B.get(adapter)!;
    tf.tidy(() => A.assign(tf.zerosLike(A)));
    const b = normal(B.shape);
    B.assign(b);
    b.dispose();
  }

  protected override loraForward(a: string, ids: Tensor, result: Tensor): Tensor {
    const flat = ids.reshape([-1]).toInt();
    const r = this.r.get(a)!;
    const A = this.lora_embedding_A.get(a)!;
    const afterA = tf.gather(A.transpose(), flat).reshape([...ids.shape, r]); // [.., r]
    const B = this.lora_embedding_B.get(a)!;
    const out = tf.matMul(afterA.reshape([-1, r]), B, false, true); // [N, dim]
    return tf.add(result, tf.mul(out.reshape(result.shape), this.scaling.get(a)!));
  }

  /** `(B·A)ᵀ·scaling`, shaped like the table [num, dim]. Caller disposes. */
  override getDeltaWeight(adapter: string): Tensor {
    return tf.tidy(() => {
      const ba = tf.matMul(this.lora_embedding_B.get(adapter)!, this.lora_embedding_A.get(adapter)!); // [dim, num]
      return tf.mul(ba.transpose(), this.scalingOf(adapter));
    });
  }

  protected override readBaseWeight(): Tensor {
    return this.base_layer.weight;
  }

  protected override writeBaseWeight(w: Tensor): void {
    this.base_layer.weight.assign(w);
  }
}
