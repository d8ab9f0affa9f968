/**
 * Data-driven LoRA inits (PEFT lora/layer.py `pissa_init`, `olora_init`): PiSSA (principal singular
 * components of W become the adapter, the residual stays in the base) and OLoRA (QR of W) rewrite the base
 * weight so that `base + scaling·B·A` equals the original weight at init; LoftQ puts the base on the NF4 grid
 * and the adapter on the rank-r part of the quantisation error.
 *
 * Difference from PEFT, on purpose: OLoRA factorises the weight in [out, in] orientation also for
 * `fanInFanOut` (Conv1D) bases; PEFT factorises the stored [in, out] matrix there, which gives A/B
 * of the wrong shapes unless in == out.
 *
 * @example
 * new LoraLinear(base, 'default', { r: 4, loraAlpha: 4, initLoraWeights: 'pissa' });
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { readDataSync } from '../../tensor/read.js';
import { ConfigError } from '../../errors.js';
import { qr, svd } from '../../tensor/linalg.js';
import { dequantize4bit, quantize4bit } from '../../tensor/quant/index.js';
import { Linear4bit } from '../../nn/linear4bit.js';
import { tunerWarn } from '../base/warnings.js';
import type { LoftqOptions } from './config.js';
import type { LoraLinear } from './layer.js';

/** The base weight as float64 [out, in] plus its dims. */
function weightOutIn(layer: LoraLinear): { w: Float64Array; out: number; inF: number } {
  const dense = layer.base_layer.denseWeight();
  const oriented = layer.fanInFanOut ? tf.tidy(() => dense.transpose()) : dense;
  const w = Float64Array.from(
    readDataSync(
      oriented,
      'LoRA SVD initialisation (PiSSA/OLoRA/LoftQ)',
      'create the adapter on a CPU backend (cpu, native, wasm), save it, and load it on the GPU backend',
    ),
  );
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

/**
 * Writes A, B and the new base weight: `base` ([out, in]) when given, else the residual `W − s·B·A`
 * (computed in float32 as PEFT does).
 */
function install(
  layer: LoraLinear,
  adapter: string,
  a: Float32Array,
  b: Float32Array,
  r: number,
  base?: Float32Array,
): void {
  const s = layer.scalingOf(adapter);
  tf.tidy(() => {
    const A = tf.tensor2d(a, [r, layer.inFeatures]);
    const B = tf.tensor2d(b, [layer.outFeatures, r]);
    layer.lora_A.get(adapter)!.weight.assign(A);
    layer.lora_B.get(adapter)!.weight.assign(B);
    let next: Tensor; // [out, in]
    if (base) next = tf.tensor2d(base, [layer.outFeatures, layer.inFeatures]);
    else {
      const dense = layer.base_layer.denseWeight();
      const w: Tensor = layer.fanInFanOut ? dense.transpose() : dense; // [out, in]
      next = tf.sub(w, tf.mul(tf.matMul(B, A), s));
    }
    layer.base_layer.setDenseWeight(layer.fanInFanOut ? next.transpose() : next);
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

/**
 * LoftQ (Li et al. 2023, arXiv 2310.08659, Algorithm 1; PEFT `loftq_init` and `LoraLayer.loftq_init`):
 * starting from `res = W`, each of `iters` rounds quantises `Q = NF4(res)` and takes the rank-r SVD
 * `L·R` of `W − deq(Q)`, then sets `res = W − L·R`. The base becomes `deq(Q)` of the last round —
 * float32 values on the NF4 grid (blocksize 64, no double quantisation: PEFT quantises with
 * bitsandbytes' `compress_statistics=False`), which `quantizeModel(model, { doubleQuant: false })`
 * later packs into 4 bits without further loss — and `A = R`, `B = L`, as PEFT does, *unscaled*: so
 * `deq(Q) + s·B·A` equals the rank-r fit of W only when the scaling s is 1 (loraAlpha = r, or
 * √r with rsLoRA); otherwise a warning says so.
 *
 * @example
 * new LoraLinear(base, 'default', { r: 8, loraAlpha: 8, initLoraWeights: 'loftq', loftq: { bits: 4, iters: 5 } });
 */
export function loftqInit(layer: LoraLinear, adapter: string, opts: LoftqOptions): void {
  const r = layer.r.get(adapter)!;
  checkRank(layer, adapter, r, 'LoftQ');
  if (layer.base_layer instanceof Linear4bit) {
    throw new ConfigError(
      `LoRA LoftQ init, adapter "${adapter}"`,
      'needs the full-precision base weight, but the layer is already 4-bit',
      layer.base_layer.constructor.name,
      'load the model without quantize, build the LoftQ adapter, then quantizeModel(model, { doubleQuant: false })',
    );
  }
  const s = layer.scalingOf(adapter);
  if (s !== 1)
    tunerWarn(
      `LoRA LoftQ init, adapter "${adapter}": scaling loraAlpha / r is ${s}, not 1, so base + scaling·B·A is not the LoftQ fit of the weight (PEFT sets A and B unscaled too); use loraAlpha = r.`,
    );
  const { w, out, inF } = weightOutIn(layer);
  const w32 = Float32Array.from(w);
  let res: Float32Array = w32;
  let deq: Float32Array = new Float32Array(0);
  const a = new Float32Array(r * inF);
  const b = new Float32Array(out * r);
  for (let round = 0; round < opts.iters; round++) {
    deq = dequantize4bit(quantize4bit(res, [out, inF], { quantType: 'nf4', doubleQuant: false }));
    const err = new Float64Array(out * inF);
    for (let i = 0; i < err.length; i++) err[i] = Math.fround(w32[i]! - deq[i]!);
    const { U, S, Vt, k } = svd(err, out, inF);
    for (let i = 0; i < r; i++) {
      const root = Math.sqrt(S[i]!);
      for (let j = 0; j < inF; j++) a[i * inF + j] = root * Vt[i * inF + j]!; // R = √S·Vt
      for (let o = 0; o < out; o++) b[o * r + i] = U[o * k + i]! * root; // L = U·√S
    }
    res = lowRankResidual(w32, b, a, out, inF, r);
  }
  install(layer, adapter, a, b, r, deq);
}

/** `W − L·R` in float32 (L [out, r], R [r, in]). */
function lowRankResidual(
  w: Float32Array,
  l: Float32Array,
  rm: Float32Array,
  out: number,
  inF: number,
  r: number,
): Float32Array {
  const res = new Float32Array(out * inF);
  for (let o = 0; o < out; o++)
    for (let j = 0; j < inF; j++) {
      let acc = 0;
      for (let i = 0; i < r; i++) acc += l[o * r + i]! * rm[i * inF + j]!;
      res[o * inF + j] = w[o * inF + j]! - acc;
    }
  return res;
}
