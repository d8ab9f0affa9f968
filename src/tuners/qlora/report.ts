/**
 * Measuring what 4-bit quantisation costs (QLoRA, PEFT-SPEC §8): per-matrix error statistics of the
 * quantised weights against their f32 originals, and a windowed causal-LM loss to compare a quantised
 * model with its f32 twin. Used by the QLoRA integration test and `experiments/qlora.ts`.
 *
 * @example
 * const dense = denseLinearWeights(model);      // before quantizeModel
 * quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
 * const stats = quantizationErrors(model, dense); // one row per Linear4bit
 */
import { tf } from '../../tensor/tf.js';
import { dequantize4bit } from '../../tensor/quant/index.js';
import { Linear4bit } from '../../nn/linear4bit.js';
import { isLinearLike } from '../../nn/linear_like.js';
import type { Module } from '../../nn/module.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';
import { CheckpointError, DataError } from '../../errors.js';

/** Error of one quantised matrix against its f32 original. */
export interface QuantErrorRow {
  path: string;
  shape: number[];
  /** mean |ŵ − w| */
  meanAbs: number;
  /** max |ŵ − w| / max |w| over the matrix */
  maxRelToAbsmax: number;
  /** ‖ŵ − w‖_F / ‖w‖_F */
  relFrobenius: number;
}

/**
 * Copies of the weights ([out, in] row-major) of every dense linear layer, keyed by module path: the
 * f32 originals to compare against after quantisation.
 */
export function denseLinearWeights(model: Module): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [path, m] of model.namedModules()) {
    if (path === '' || !isLinearLike(m) || m instanceof Linear4bit) continue;
    if (m.namedChildren().some(([, c]) => isLinearLike(c))) continue; // a wrapper, not a weight holder
    // The tensor leaves the tidy, not its data: tf.tidy walks a returned TypedArray element by element.
    const w = tf.tidy(() => {
      const d = m.denseWeight();
      return m.fanInFanOut ? d.transpose() : d;
    });
    out.set(path, Float32Array.from(w.dataSync() as Float32Array));
    w.dispose();
  }
  return out;
}

/** Per-matrix error statistics of every {@link Linear4bit} below `model` against `dense`. */
export function quantizationErrors(model: Module, dense: Map<string, Float32Array>): QuantErrorRow[] {
  const rows: QuantErrorRow[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear4bit)) continue;
    const w = dense.get(path);
    if (!w)
      throw new CheckpointError(
        'quantizationErrors',
        'no f32 original for a quantised layer',
        path,
        'collect denseLinearWeights before quantizeModel',
      );
    const q = dequantize4bit(m.quant);
    let absSum = 0;
    let maxErr = 0;
    let maxW = 0;
    let errSq = 0;
    let wSq = 0;
    for (let i = 0; i < w.length; i++) {
      const e = Math.abs(q[i]! - w[i]!);
      absSum += e;
      errSq += e * e;
      wSq += w[i]! * w[i]!;
      maxErr = Math.max(maxErr, e);
      maxW = Math.max(maxW, Math.abs(w[i]!));
    }
    rows.push({
      path,
      shape: [...m.quant.shape],
      meanAbs: absSum / w.length,
      maxRelToAbsmax: maxW > 0 ? maxErr / maxW : 0,
      relFrobenius: wSq > 0 ? Math.sqrt(errSq / wSq) : 0,
    });
  }
  return rows;
}

/**
 * Token ids for causal-LM evaluation the way the stories260K oracle was computed: every blank-line
 * separated block is encoded with BOS in front, the blocks are concatenated and cut after `maxTokens`.
 */
export function corpusIds(
  text: string,
  encode: (block: string) => number[],
  bos: number,
  maxTokens: number,
): number[] {
  const ids: number[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    if (block.trim().length === 0) continue;
    ids.push(bos, ...encode(block.trim()));
    if (ids.length >= maxTokens) break;
  }
  return ids.slice(0, maxTokens);
}

/**
 * Mean next-token cross-entropy (nats/token) over non-overlapping windows of `window` tokens, `batch`
 * windows per forward. The model's mode is left as found; every tensor is disposed.
 *
 * @example windowedLoss(llama, ids, 256) // ≈ 1.43 for stories260K on TinyStories val
 */
export function windowedLoss(
  model: { forward(inputs: ModelInputs): ModelOutput },
  ids: number[],
  window: number,
  batch = 4,
): number {
  const windows: number[][] = [];
  for (let s = 0; s + window <= ids.length; s += window) windows.push(ids.slice(s, s + window));
  if (windows.length === 0)
    throw new DataError('windowedLoss', `needs at least ${window} tokens`, ids.length, 'pass more text');
  let sum = 0;
  for (let i = 0; i < windows.length; i += batch) {
    const group = windows.slice(i, i + batch);
    sum +=
      tf.tidy(() => {
        const input = tf.tensor2d(group, [group.length, window], 'int32');
        return model.forward({ inputIds: input, labels: input }).loss!.dataSync()[0]!;
      }) * group.length;
  }
  return sum / windows.length;
}
