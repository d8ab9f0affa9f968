/**
 * What the native decode kernel (native/src/decode.cc) reads of a decoder block: the norms, the seven
 * projections (or Phi-3's fused qkv / gate_up ones) as arrays in place, and unmerged adapters as
 * per-slot low-rank terms — LoRA as `s·B(A x)`, AdaLoRA with Λ folded into A (`(A∘E)`, scale
 * `α / (ranknum + 1e-5)`, PEFT `SVDLinear`), DoRA as the per-row factor `m / ‖W + s·BA‖` (paper §4.3:
 * the norm is a constant at inference). 4-bit (QLoRA) weights are passed as codes + absmax.
 *
 * Tuner layers are read by their PEFT field names (`base_layer`, `lora_A`, `lora_B`, `lora_E`,
 * `ranknum`, `lora_magnitude_vector`) rather than imported: models/ never depends on tuners/.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../tensor/tf.js';
import type { Module, TensorLayer } from '../nn/module.js';
import { Linear, RMSNorm } from '../nn/layers.js';
import { Linear4bit } from '../nn/linear4bit.js';
import type { LinearLike } from '../nn/linear_like.js';
import { absmaxOf } from '../tensor/quant/blockwise.js';
import type { PreTrainedModel } from './base.js';
import { LlamaDecoderLayer } from './llama.js';
import { OffsetRMSNorm, RopeDecoderLayer } from './rope_decoder.js';
import { Gemma2DecoderLayer } from './gemma.js';
import { Phi3DecoderLayer } from './phi3.js';
import type { SlotSpec } from './native_decode_session.js';

/** AdaLoRA's ε in `ranknum + ε` (PEFT `SVDLinear.forward`). */
const RANKNUM_EPS = 1e-5;

/** [A, B, r, scale] of one `s·B(A x)` term. */
type Term = [Float32Array, Float32Array, number, number];
/** [DoRA row factor | null, terms]. */
type Slot = [Float32Array | null, Term[]];
/** A 4-bit weight: [packed codes, code book, absmax per block, blocksize]. */
type Quant4 = [Uint8Array, Float32Array, Float32Array, number];
/** [W | null (4-bit), bias | null, out, in, slots, 4-bit weight | null]. */
type Proj = [Float32Array | null, Float32Array | null, number, number, Slot[], Quant4 | null];

/** A model part the kernel does not cover (the message says which). */
export class Unsupported extends Error {}

function backendArrays(): MathBackendCPU {
  return tf.backend() as unknown as MathBackendCPU;
}

/** The float32 array behind `t` on the native backend (never copied). */
export function arr(t: Tensor): Float32Array {
  const v = backendArrays().data.get(t.dataId).values;
  if (t.dtype !== 'float32' || !(v instanceof Float32Array)) throw new Unsupported('non-f32 weight');
  return v;
}

export function field<T>(m: object, name: string): T | undefined {
  return (m as Record<string, unknown>)[name] as T | undefined;
}

/**
 * A plain `Linear` [out, in] (no fan-in-fan-out) or a 4-bit `Linear4bit` (QLoRA: its codes are
 * decoded blockwise inside the kernel; double-quantised absmax decoded once here) as a projection
 * without adapter terms.
 */
function plain(m: unknown): Proj {
  if (m instanceof Linear4bit) {
    const q = m.quant;
    const quant: Quant4 = [q.packed, q.code, absmaxOf(q), q.blocksize];
    return [null, m.bias ? arr(m.bias) : null, m.outFeatures, m.inFeatures, [], quant];
  }
  if (!(m instanceof Linear) || m.fanInFanOut) throw new Unsupported('projection is not a plain Linear');
  return [arr(m.weight), m.bias ? arr(m.bias) : null, m.outFeatures, m.inFeatures, [], null];
}

interface AdapterDict {
  get(name: string): unknown;
}

/** A LoRA / DoRA / AdaLoRA layer's adapters `names` (unmerged) as one slot of terms. */
function slotOf(m: Module, base: Module, names: readonly string[], keep: Tensor[]): Slot {
  const A = field<AdapterDict>(m, 'lora_A');
  const B = field<AdapterDict>(m, 'lora_B');
  const E = field<{ get(n: string): Tensor | undefined }>(m, 'lora_E');
  const ranknum = field<{ get(n: string): Tensor | undefined }>(m, 'ranknum');
  const magnitudes = field<AdapterDict>(m, 'lora_magnitude_vector');
  const scaling = field<Map<string, number>>(m, 'scaling');
  if (!A || !B || !scaling) throw new Unsupported('unknown adapter layer');
  const slot: Slot = [null, []];
  const present = names.filter((a) => A.get(a) !== undefined);
  for (const name of present) {
    const a = A.get(name) as Linear | Tensor;
    const b = B.get(name) as Linear | Tensor;
    const s = scaling.get(name)!;
    if (E) {
      // AdaLoRA: lora_A/lora_B/lora_E are parameters [r, in], [out, r], [r, 1]
      if ((a as Tensor).shape[0] === 0) continue; // a fully pruned layer (PEFT #1539) adds nothing
      const rank = arr(ranknum!.get(name)!)[0]!;
      const folded = tf.mul(a as Tensor, E.get(name)!);
      keep.push(folded);
      const scale = Math.fround(s / Math.fround(rank + RANKNUM_EPS));
      slot[1].push([arr(folded), arr(b as Tensor), (a as Tensor).shape[0]!, scale]);
      continue;
    }
    const la = a as Linear;
    const lb = b as Linear;
    if (lb.bias) throw new Unsupported('lora_bias');
    slot[1].push([arr(la.weight), arr(lb.weight), la.outFeatures, s]);
    const mag = magnitudes?.get(name) as { weight: Tensor } | undefined;
    if (mag) {
      // DoRA rescales the sum of everything before it: only a lone DoRA adapter maps to one factor.
      if (present.length !== 1) throw new Unsupported('DoRA with several active adapters');
      const f = tf.tidy(() => {
        const dense = (base as unknown as LinearLike).denseWeight(); // [out, in], dequantised if 4-bit
        const w = tf.add(dense, tf.mul(tf.matMul(lb.weight, la.weight), s));
        return tf.div(mag.weight, w.square().sum(1).sqrt()); // [out] = m / ‖W + s·BA‖
      });
      keep.push(f);
      slot[0] = arr(f);
    }
  }
  return slot;
}

/** A tuner layer as a projection with one slot per entry of `slots` (see {@link SlotSpec}). */
function adapted(m: Module, slots: SlotSpec, keep: Tensor[]): Proj {
  const base = field<Module>(m, 'base_layer')!;
  const merged = field<boolean>(m, 'merged') ?? false;
  const disabled = field<boolean>(m, 'disableAdapters') ?? false;
  if (disabled && merged) throw new Unsupported('adapters disabled on a merged layer');
  const proj = plain(base);
  proj[4] = slots.map((names): Slot => {
    if (names === null) {
      if (disabled || merged) return [null, []];
      return slotOf(m, base, field<string[]>(m, 'activeAdapterNames') ?? [], keep);
    }
    if (merged) throw new Unsupported('choosing adapters per row on a merged layer');
    return slotOf(m, base, names, keep);
  });
  return proj;
}

function projection(m: TensorLayer, slots: SlotSpec, keep: Tensor[]): Proj {
  if (m instanceof Linear || m instanceof Linear4bit) return plain(m);
  if (field(m, 'base_layer') !== undefined) return adapted(m as unknown as Module, slots, keep);
  throw new Unsupported('unknown projection layer');
}

export function normWeight(m: TensorLayer, offset: boolean): Float32Array {
  if (offset ? !(m instanceof OffsetRMSNorm) : !(m instanceof RMSNorm) || m instanceof OffsetRMSNorm)
    throw new Unsupported('norm');
  return arr((m as RMSNorm).weight);
}

/** A block's norms and projections in the kernel's order (null: fused into the one before). */
interface Block {
  ln1: TensorLayer;
  ln2: TensorLayer;
  postAttn: TensorLayer | null;
  postFfn: TensorLayer | null;
  projs: (TensorLayer | null)[]; // q, k, v, o, gate, up, down
}

/** Llama / Qwen2 / Mistral / Gemma, Gemma 2 (post norms) and Phi-3 (fused) blocks. */
function blockOf(layer: Module): Block {
  if (layer instanceof Phi3DecoderLayer) {
    const { self_attn: at, mlp } = layer;
    const projs = [at.qkv_proj, null, null, at.o_proj, mlp.gate_up_proj, null, mlp.down_proj];
    return {
      ln1: layer.input_layernorm,
      ln2: layer.post_attention_layernorm,
      postAttn: null,
      postFfn: null,
      projs,
    };
  }
  const gemma2 = layer instanceof Gemma2DecoderLayer;
  if (!gemma2 && !(layer instanceof LlamaDecoderLayer) && layer.constructor !== RopeDecoderLayer)
    throw new Unsupported('layer');
  const l = layer as LlamaDecoderLayer;
  const { self_attn: at, mlp } = l;
  const projs = [at.q_proj, at.k_proj, at.v_proj, at.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj];
  if (!gemma2)
    return { ln1: l.input_layernorm, ln2: l.post_attention_layernorm, postAttn: null, postFfn: null, projs };
  const g = layer as Gemma2DecoderLayer;
  return {
    ln1: g.input_layernorm,
    ln2: g.pre_feedforward_layernorm,
    postAttn: g.post_attention_layernorm,
    postFfn: g.post_feedforward_layernorm,
    projs,
  };
}

/**
 * One block as the kernel's arrays [ln1, ln2, q, k|null, v|null, o, gate, up|null, down, postAttn|null,
 * postFfn|null, window (0 = none)].
 * @example blockArrays(layer, false, null, [null], keep)
 */
export function blockArrays(
  layer: Module,
  normOffset: boolean,
  window: number | null,
  slots: SlotSpec,
  keep: Tensor[],
): unknown[] {
  const b = blockOf(layer);
  const norm = (m: TensorLayer | null) => (m === null ? null : normWeight(m, normOffset));
  return [
    norm(b.ln1),
    norm(b.ln2),
    ...b.projs.map((p) => (p === null ? null : projection(p, slots, keep))),
    norm(b.postAttn),
    norm(b.postFfn),
    window ?? 0,
  ];
}

/**
 * The projection modules the native kernel reads (q, k, v, o, gate, up, down of every layer, or
 * Phi-3's qkv / gate_up): an adapter whose tuner layers all lie in this set runs per row natively
 * (one elsewhere — lm_head, embeddings — would be ignored, so callers keep such adapters on tfjs).
 * @example nativeProjections(model).has(model.model.layers.get('0').self_attn.q_proj) // true
 */
export function nativeProjections(model: PreTrainedModel): Set<object> {
  const trunk = field<{ layers?: { namedChildren(): [string, Module][] } }>(model, 'model');
  const out = new Set<object>();
  for (const [, l] of trunk?.layers?.namedChildren() ?? []) {
    try {
      blockOf(l).projs.forEach((p) => p && out.add(p));
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e;
    }
  }
  return out;
}
