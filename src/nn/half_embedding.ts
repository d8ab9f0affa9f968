/**
 * Frozen embeddings in float16 (issue 18), the storage a quantised load keeps for the modules it does
 * not quantise in transformers: its bitsandbytes 4-bit loader (`Bnb4BitHfQuantizer.update_torch_dtype`)
 * sets `torch_dtype = torch.float16` when none is given, so the embedding (and a tied `lm_head`) are
 * float16; PEFT's `prepare_model_for_kbit_training` then casts float16 parameters back to float32.
 * The numbers a QLoRA run computes with are therefore the float16-rounded weights in f32, which is
 * exactly what {@link HalfEmbedding} gives (rows widened on lookup), without holding the f32 copy.
 *
 * A tied output head becomes a {@link HalfLinear} sharing the same storage; its matmul widens one block
 * of vocabulary rows at a time (tensor/half.ts), and the chunked vocabulary loss does the same
 * (models/chunked_head.ts). Both modules are frozen: no parameter, nothing to train or merge.
 *
 * @example
 * const report = halfEmbeddings(model); // { converted: ['model.embed_tokens'], tiedHeads: ['lm_head'] }
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { HalfMatrix, matMulHalfT } from '../tensor/half.js';
import { readDataSync } from '../tensor/read.js';
import { NotSupportedError } from '../errors.js';
import { Module } from './module.js';
import { Embedding, Linear } from './layers.js';

/** `nn.Embedding` whose frozen table is float16, widened to f32 row by row on lookup. */
export class HalfEmbedding extends Module {
  constructor(readonly table: HalfMatrix) {
    super();
  }

  get numEmbeddings(): number {
    return this.table.rows;
  }

  get embeddingDim(): number {
    return this.table.cols;
  }

  /** ids (int32, any shape) → f32 [...ids.shape, dim]. */
  forward(ids: Tensor): Tensor {
    return this.table.gatherRows(ids);
  }

  /** Bytes held by the float16 storage (see `HalfMatrix.bytes`). */
  bytesHeld(): number {
    return this.table.bytes;
  }

  protected override disposeOwned(): void {
    this.table.dispose();
  }
}

/**
 * A frozen bias-free projection `y = x · Wᵀ` with W [out, in] in float16: a tied `lm_head` (sharing its
 * embedding's storage) after {@link halfEmbeddings}. Not a `LinearLike`: adapters cannot wrap it.
 */
export class HalfLinear extends Module {
  constructor(
    readonly table: HalfMatrix,
    /** True when the storage belongs to an embedding (which frees it). */
    readonly tied: boolean,
  ) {
    super();
  }

  get inFeatures(): number {
    return this.table.cols;
  }

  get outFeatures(): number {
    return this.table.rows;
  }

  /** x [..., in] → [..., out]. */
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const y = matMulHalfT(x.reshape([-1, this.inFeatures]), this.table); // [N, out]
      return y.reshape([...lead, this.outFeatures]);
    });
  }

  protected override disposeOwned(): void {
    if (!this.tied) this.table.dispose();
  }
}

/** What {@link halfEmbeddings} replaced. */
export interface HalfEmbeddingsReport {
  /** Embedding module paths now in float16. */
  converted: string[];
  /** Output heads tied to one of them, now {@link HalfLinear}s on the same storage. */
  tiedHeads: string[];
}

/** The model's `Embedding` modules (word, position, token type), by path. */
export function embeddingModules(model: Module): [string, Embedding][] {
  return model.namedModules().filter(([p, m]) => p !== '' && m instanceof Embedding) as [string, Embedding][];
}

/**
 * Puts `table` (the float16 form of `emb.weight`) in place of the embedding at `path`, turns every
 * bias-free `Linear` tied to that weight into a {@link HalfLinear} on the same storage, and frees the
 * f32 weight. Used by the streaming loader (models/stream_load.ts) and {@link halfEmbeddings}.
 * A NotSupportedError when something else shares the weight (a head with a bias, an adapter).
 *
 * @example adoptHalfEmbedding(model, 'model.embed_tokens', emb, HalfMatrix.fromFloat32(values, v, h));
 */
export function adoptHalfEmbedding(
  model: Module,
  path: string,
  emb: Embedding,
  table: HalfMatrix,
): { tiedHeads: string[] } {
  const w: Variable = emb.weight;
  const sharers = model.namedModules().filter(([p, m]) => p !== path && m.getParameter('weight') === w) as [
    string,
    Module,
  ][];
  for (const [p, m] of sharers) {
    if (!(m instanceof Linear) || m.bias || m.fanInFanOut) {
      table.dispose();
      throw new NotSupportedError(
        'embeddingDtype float16',
        `a float16 embedding whose weight is also used by "${p}" (${m.constructor.name})`,
        'keep embeddingDtype float32 for this model',
      );
    }
  }
  const half = new HalfEmbedding(table);
  model.replaceChild(path, half);
  for (const [p] of sharers) model.replaceChild(p, new HalfLinear(table, true));
  if (!w.isDisposed) w.dispose();
  return { tiedHeads: sharers.map(([p]) => p) };
}

/**
 * Converts every `Embedding` of an already loaded model to float16 storage (and tied heads with
 * them), reading each f32 table synchronously (CPU backends; a streaming load converts as it reads
 * instead, see `loadModel`'s `embeddingDtype`). Values become `weight.half().float()` exactly.
 *
 * @example
 * const report = halfEmbeddings(model);
 * report.converted; // ['model.embed_tokens']
 */
export function halfEmbeddings(model: Module): HalfEmbeddingsReport {
  const report: HalfEmbeddingsReport = { converted: [], tiedHeads: [] };
  for (const [path, emb] of embeddingModules(model)) {
    const [rows, cols] = emb.weight.shape as [number, number];
    const values = readDataSync(emb.weight, 'halfEmbeddings', 'load with embeddingDtype: float16 instead');
    const table = HalfMatrix.fromFloat32(values as Float32Array, rows, cols);
    report.converted.push(path);
    report.tiedHeads.push(...adoptHalfEmbedding(model, path, emb, table).tiedHeads);
  }
  return report;
}
