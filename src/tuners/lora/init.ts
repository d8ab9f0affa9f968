/**
 * Data-driven LoRA inits (PEFT-SPEC §6 "Init"): PiSSA (principal singular components of W become the
 * adapter, the residual stays in the base) and OLoRA (QR of W). Both rewrite the base weight so that
 * `base + scaling·B·A` equals the original weight at init.
 *
 * Difference from PEFT, on purpose: OLoRA factorises the weight in [out, in] orientation also for
 * `fanInFanOut` (Conv1D) bases; PEFT factorises the stored [in, out] matrix there, which gives A/B
 * of the wrong shapes unless in == out.
 *
 * @example
 * new LoraLinear(base, 'default', { r: 4, loraAlpha: 4, initLoraWeights: 'pissa' });
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { ConfigError } from '../../errors.js';
import { qr, svd } from '../../tensor/linalg.js';
import type { LoraLinear } from './layer.js';

/** The base weight as float64 [out, in] plus its dims. */
function weightOutIn(layer: LoraLinear): { w: Float64Array; out: number; inF: number } {
  const dense = layer.base_layer.denseWeight();
  const oriented = layer.fanInFanOut ? tf.tidy(() => dense.transpose()) : dense;
  const w = Float64Array.from(oriented.dataSync());
  if (oriented !== dense) oriented.dispose();
  dense.dispose();
  return { w, out: layer.outFeatures, inF: layer.inFeatures };
}

function checkRank(layer: LoraLinear, adapter: string, r: number, what: string): void {
  const k = Math.min(layer.outFeatures, layer.inFeatures);
  if (r > k) {
    throw new ConfigError(
      `LoRA ${what} init, adapter "${adapter}"`,
      `r must not exceed min(out, in) = ${k} of the base weight`,
      r,
      `lower r (or its rankPattern entry) to at most ${k}`,
    );
  }
}

/** Writes A, B and the residual base weight `W − s·B·A` (computed in float32 as PEFT does). */
function install(layer: LoraLinear, adapter: string, a: Float32Array, b: Float32Array, r: number): void {
  const s = layer.scalingOf(adapter);
  tf.tidy(() => {
    const A = tf.tensor2d(a, [r, layer.inFeatures]);
    const B = tf.tensor2d(b, [layer.outFeatures, r]);
    layer.lora_A.get(adapter)!.weight.assign(A);
    layer.lora_B.get(adapter)!.weight.assign(B);
    const dense = layer.base_layer.denseWeight();
    const w: Tensor = layer.fanInFanOut ? dense.transpose() : dense; // [out, in]
    const residual = tf.sub(w, tf.mul(tf.matMul(B, A), s));
    layer.base_layer.setDenseWeight(layer.fanInFanOut ? residual.transpose() : residual);
  });
}

/**
 * PiSSA: `V,S,Uh = svd(W)`, `Sr = S[:r]/s`, `A = diag(√Sr)·Uh[:r]`, `B = V[:, :r]·diag(√Sr)`,
 * base ← W − s·B·A.
 */
export function pissaInit(layer: LoraLinear, adapter: string): void {
  const r = layer.r.get(adapter)!;
  checkRank(layer, adapter, r, 'PiSSA');
  const s = layer.scalingOf(adapter);
  const { w, out, inF } = weightOutIn(layer);
  const { U, S, Vt, k } = svd(w, out, inF);
  const a = new Float32Array(r * inF);
  const b = new Float32Array(out * r);
  for (let i = 0; i < r; i++) {
    const root = Math.sqrt(Math.fround(Math.fround(S[i]!) / s));
    for (let j = 0; j < inF; j++) a[i * inF + j] = root * Vt[i * inF + j]!;
    for (let o = 0; o < out; o++) b[o * r + i] = U[o * k + i]! * root;
  }
  install(layer, adapter, a, b, r);
}

/** OLoRA: `Q,R = qr(W)`, `A = R[:r]`, `B = Q[:, :r]`, base ← W − s·B·A. */
export function oloraInit(layer: LoraLinear, adapter: string): void {
  const r = layer.r.get(adapter)!;
  checkRank(layer, adapter, r, 'OLoRA');
  const { w, out, inF } = weightOutIn(layer);
  const { Q, R, k } = qr(w, out, inF);
  const a = new Float32Array(r * inF);
  const b = new Float32Array(out * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < inF; j++) a[i * inF + j] = R[i * inF + j]!;
  for (let o = 0; o < out; o++) for (let i = 0; i < r; i++) b[o * r + i] = Q[o * k + i]!;
  install(layer, adapter, a, b, r);
}
