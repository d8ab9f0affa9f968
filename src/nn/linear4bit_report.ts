/**
 * What 4-bit quantisation costs each matrix (QLoRA, Dettmers et al. 2023 §3): per-matrix error
 * statistics of the {@link Linear4bit} weights against their f32 originals. The loss-side measure (a
 * windowed causal-LM loss of the quantised model against its f32 twin) is `models/windowed_loss.ts`.
 * Used by the 4-bit tests and `experiments/qlora.ts`.
 *
 * @example
 * const dense = denseLinearWeights(model);      // before quantizeModel
 * quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
 * const stats = quantizationErrors(model, dense); // one row per Linear4bit
 */
import { tf } from '../tensor/tf.js';
import { dequantize4bit } from '../tensor/quant/index.js';
import { Linear4bit } from './linear4bit.js';
import { isLinearLike } from './linear_like.js';
import type { Module } from './module.js';
import { CheckpointError } from '../errors.js';

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
