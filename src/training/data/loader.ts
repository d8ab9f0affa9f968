/**
 * Seeded shuffling, train/eval splits and dynamic-padding collation. The loader's state (epoch,
 * position, RNG state at the start of the epoch) is plain JSON so a checkpoint can resume mid-epoch.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { ConfigError, DataError } from '../../errors.js';
import { Rng, type RngState } from '../../util/rng.js';
import type { DataTask, Example } from './dataset.js';

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  tokenTypeIds?: Tensor;
  labels: Tensor;
  /** Conditioned tuners (HyperLoRA): int32 [B] condition ids or float32 [B, dim] condition vectors. */
  condition?: Tensor;
}

/**
 * The examples' conditions as one tensor: int32 [B] when each is an id, float32 [B, dim] when each is
 * a vector; undefined when no example has one. A batch must be all ids or all vectors of one length.
 *
 * @example collateConditions([{ inputIds: [1], label: -1, condition: 2 }, { inputIds: [3], label: -1, condition: 0 }]); // int32 [2]
 */
export function collateConditions(examples: Example[]): Tensor | undefined {
  const conds = examples.map((e) => e.condition);
  const given = conds.filter((c) => c !== undefined).length;
  if (given === 0) return undefined;
  const bad = (rule: string, got: unknown, fix: string) => new DataError('Example.condition', rule, got, fix);
  if (given !== conds.length)
    throw bad(
      'is set on some examples of a batch and not on others',
      `${given} of ${conds.length}`,
      'give every example a condition (one id or vector per example) or none',
    );
  if (conds.every((c) => typeof c === 'number')) {
    const ids = conds as number[];
    const wrong = ids.filter((c) => !Number.isInteger(c) || c < 0 || c > 0x7fffffff);
    if (wrong.length > 0)
      throw bad('must be a non-negative integer condition id', wrong, 'number the conditions 0, 1, …');
    return tf.tensor1d(ids, 'int32'); // [B]
  }
  const dim = Array.isArray(conds[0]) ? conds[0].length : 0;
  const vecs = conds.filter((c): c is number[] => Array.isArray(c) && c.length === dim && dim > 0);
  if (vecs.length !== conds.length)
    throw bad(
      'must be all condition ids or all condition vectors of one length in a batch',
      conds.map((c) => (Array.isArray(c) ? `vector[${c.length}]` : typeof c)),
      'use one kind of condition for the whole data set',
    );
  if (vecs.some((v) => v.some((x) => !Number.isFinite(x))))
    throw bad('vectors must hold finite numbers', 'NaN or Infinity', 'fix the condition vectors');
  return tf.tensor2d(vecs, [vecs.length, dim], 'float32'); // [B, dim]
}

/**
 * Pads a list of examples to the longest one (right padding) and builds tensors; causal-LM labels are
 * the input ids with -100 at padding; examples' conditions become `condition` ({@link collateConditions}).
 * The caller owns (and disposes) the returned tensors.
 *
 * @example const b = collate(examples.slice(0, 8), 'classification', tok.padTokenId); tf.dispose(Object.values(b));
 */
export function collate(examples: Example[], task: DataTask, padId: number): Batch {
  const condition = collateConditions(examples); // first: the one check that can throw
  const B = examples.length;
  const T = Math.max(...examples.map((e) => e.inputIds.length));
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Int32Array(B * T);
  const types = examples[0]?.tokenTypeIds ? new Int32Array(B * T) : undefined;
  const lm = task === 'causal_lm' ? new Int32Array(B * T).fill(-100) : undefined;
  examples.forEach((e, b) => {
    e.inputIds.forEach((id, t) => {
      ids[b * T + t] = id;
      mask[b * T + t] = 1;
      if (lm) lm[b * T + t] = id;
    });
    if (types && e.tokenTypeIds) e.tokenTypeIds.forEach((v, t) => (types[b * T + t] = v));
  });
  const batch: Batch = {
    inputIds: tf.tensor2d(ids, [B, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, T], 'int32'),
    labels: lm
      ? tf.tensor2d(lm, [B, T], 'int32')
      : task === 'regression'
        ? tf.tensor1d(
            examples.map((e) => e.label),
            'float32',
          )
        : tf.tensor1d(
            examples.map((e) => e.label),
            'int32',
          ),
  };
  if (types) batch.tokenTypeIds = tf.tensor2d(types, [B, T], 'int32');
  if (condition) batch.condition = condition;
  return batch;
}

/**
 * Splits off `fraction` of the examples for evaluation with a seeded permutation.
 * @example const { train, evalSet } = splitExamples(all, 0.1, 42);
 */
export function splitExamples(
  all: Example[],
  fraction: number,
  seed: number,
): { train: Example[]; evalSet: Example[] } {
  if (!(fraction > 0 && fraction < 1))
    throw new ConfigError('evalFraction', 'must be in (0, 1)', fraction, 'use e.g. 0.1');
  const perm = new Rng(seed).permutation(all.length);
  const nEval = Math.max(1, Math.round(all.length * fraction));
  if (nEval >= all.length)
    throw new ConfigError(
      'evalFraction',
      'leaves no training examples',
      all.length,
      'add data or lower the fraction',
    );
  return { evalSet: perm.slice(0, nEval).map((i) => all[i]!), train: perm.slice(nEval).map((i) => all[i]!) };
}

export interface LoaderState {
  epoch: number;
  /** Index of the next example within the epoch's order. */
  position: number;
  /** RNG state that produced this epoch's permutation. */
  epochRng: RngState;
}

/**
 * An endless stream of shuffled batches (reshuffled every epoch, last partial batch dropped).
 * @example const loader = new DataLoader(train, 16, 42); const idx = loader.next();
 */
export class DataLoader {
  private rng: Rng;
  private order: number[] = [];
  private epochRng: RngState;
  epoch = 0;
  position = 0;

  constructor(
    readonly examples: Example[],
    readonly batchSize: number,
    seed: number,
    readonly shuffle = true,
  ) {
    if (!(Number.isInteger(batchSize) && batchSize >= 1))
      throw new ConfigError('batchSize', 'must be an integer >= 1', batchSize);
    if (examples.length < batchSize)
      throw new ConfigError(
        'batchSize',
        `is larger than the ${examples.length} training examples`,
        batchSize,
        'lower --batch-size',
      );
    this.rng = new Rng(seed);
    this.epochRng = this.rng.state();
    this.newOrder();
  }

  private newOrder(): void {
    this.epochRng = this.rng.state();
    this.order = this.shuffle ? this.rng.permutation(this.examples.length) : this.examples.map((_, i) => i);
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    return Math.floor(this.examples.length / this.batchSize);
  }

  /** The next batch's examples. */
  next(): Example[] {
    if (this.position + this.batchSize > this.examples.length) {
      this.epoch += 1;
      this.position = 0;
      this.newOrder();
    }
    const out = this.order.slice(this.position, this.position + this.batchSize).map((i) => this.examples[i]!);
    this.position += this.batchSize;
    return out;
  }

  state(): LoaderState {
    return { epoch: this.epoch, position: this.position, epochRng: this.epochRng };
  }

  setState(s: LoaderState): void {
    this.rng.setState(s.epochRng);
    this.newOrder();
    this.epoch = s.epoch;
    this.position = s.position;
  }
}

/**
 * Fixed-order batches for evaluation (no shuffling, keeps the last partial batch).
 * @example for (const b of evalBatches(evalSet, 32)) { ... }
 */
export function* evalBatches(examples: Example[], batchSize: number): Generator<Example[]> {
  for (let s = 0; s < examples.length; s += batchSize) yield examples.slice(s, s + batchSize);
}
