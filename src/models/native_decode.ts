/**
 * The native decode engine (issue 17, item 1): when the `native` tfjs backend and its addon are loaded
 * and the model is a supported Llama-family decoder, `generate` hands the token loop to one addon call
 * per token (native/src/decode.cc) instead of hundreds of tfjs kernels. Weights are read in place from
 * the backend's arrays (no copy); the KV cache lives in the addon. Unmerged adapters run unmerged:
 * LoRA as `s·B(A x)` terms, AdaLoRA with Λ folded into A (`(A∘E)`, scale `α / (ranknum + 1e-5)`, PEFT
 * `SVDLinear`), DoRA as the per-row factor `m / ‖W + s·BA‖` (paper §4.3: the norm is a constant at
 * inference) applied before the bias. 4-bit (QLoRA) base weights stay 4-bit: the kernel decodes
 * each block as it multiplies. Anything else (lora_bias, Gemma 2 soft-caps,
 * sliding windows shorter than the run, fused Phi-3 projections, other backends) returns null from
 * {@link openNativeDecoder}, and `generate` keeps the tfjs path — which is also the reference the tests
 * compare against (native_decode.test.ts).
 *
 * Tuner layers are read by their PEFT field names (`base_layer`, `lora_A`, `lora_B`, `lora_E`,
 * `ranknum`, `lora_magnitude_vector`) rather than imported: models/ never depends on tuners/.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../tensor/tf.js';
import { loadAddon } from '../tensor/native/addon.js';
import { NATIVE_BACKEND } from '../tensor/native/register.js';
import type { Module, TensorLayer } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { Linear4bit } from '../nn/linear4bit.js';
import type { LinearLike } from '../nn/linear_like.js';
import { absmaxOf } from '../tensor/quant/blockwise.js';
import { ConfigError } from '../errors.js';
import type { PreTrainedModel } from './base.js';
import { DecoderForCausalLM } from './decoder_heads.js';
import { LlamaDecoderLayer, LlamaModel } from './llama.js';
import { OffsetRMSNorm, RopeDecoderLayer, RopeDecoderModel } from './rope_decoder.js';
import {
  session,
  type LayerArrays,
  type NativeDecoder,
  type NativeDecoderCtor,
  type SlotSpec,
} from './native_decode_session.js';

export type { NativeDecoder, NativeDecoderHandle, SlotSpec } from './native_decode_session.js';

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

class Unsupported extends Error {}

function backendArrays(): MathBackendCPU {
  return tf.backend() as unknown as MathBackendCPU;
}

/** The float32 array behind `t` on the native backend (never copied). */
function arr(t: Tensor): Float32Array {
  const v = backendArrays().data.get(t.dataId).values;
  if (t.dtype !== 'float32' || !(v instanceof Float32Array)) throw new Unsupported('non-f32 weight');
  return v;
}

function field<T>(m: object, name: string): T | undefined {
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

function normWeight(m: TensorLayer, offset: boolean): Float32Array {
  if (offset ? !(m instanceof OffsetRMSNorm) : !(m instanceof RMSNorm) || m instanceof OffsetRMSNorm)
    throw new Unsupported('norm');
  return arr((m as RMSNorm).weight);
}

const ACTIVATIONS: Record<string, number> = {
  silu: 0,
  swish: 0,
  gelu_pytorch_tanh: 1,
  gelu_new: 1,
  gelu_fast: 1,
};

interface TrunkDims {
  hidden: number;
  intermediate: number;
  nLayers: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  vocabSize: number;
  eps: number;
  ropeTheta: number;
  act: string;
  normOffset: boolean;
  embedScale: number;
  scoreScale: number;
}

/** The trunk's dims when it is Llama, or a rope_decoder trunk the native kernel covers for `maxSeq`. */
function trunkDims(trunk: Module, maxSeq: number): TrunkDims {
  if (trunk instanceof LlamaModel) {
    const d = trunk.dims;
    return { ...d, normOffset: false, embedScale: 1, scoreScale: 1 / Math.sqrt(d.headDim) };
  }
  if (trunk instanceof RopeDecoderModel) {
    const d = trunk.dims;
    if (d.attnSoftcap !== null || d.finalSoftcap !== null) throw new Unsupported('soft-capping');
    if (d.windows.some((w) => w !== null && w < maxSeq)) throw new Unsupported('sliding window');
    return { ...d, embedScale: d.embedScale ?? 1 };
  }
  throw new Unsupported('trunk');
}

function layerArrays(layer: Module, dims: TrunkDims, slots: SlotSpec, keep: Tensor[]): unknown[] {
  if (!(layer instanceof LlamaDecoderLayer) && layer.constructor !== RopeDecoderLayer)
    throw new Unsupported('layer');
  const l = layer as LlamaDecoderLayer;
  const { self_attn: at, mlp } = l;
  return [
    normWeight(l.input_layernorm, dims.normOffset),
    normWeight(l.post_attention_layernorm, dims.normOffset),
    ...[at.q_proj, at.k_proj, at.v_proj, at.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj].map((p) =>
      projection(p, slots, keep),
    ),
  ];
}

function layersOf(trunk: LlamaModel, dims: TrunkDims, slots: SlotSpec, keep: Tensor[]): unknown[] {
  return trunk.layers.namedChildren().map(([, l]) => layerArrays(l, dims, slots, keep));
}

/**
 * The projection modules the native kernel reads (q, k, v, o, gate, up, down of every layer): an
 * adapter whose tuner layers all lie in this set runs per row natively (one elsewhere — lm_head,
 * embeddings — would be ignored, so callers keep such adapters on tfjs).
 * @example nativeProjections(model).has(model.model.layers.get('0').self_attn.q_proj) // true
 */
export function nativeProjections(model: PreTrainedModel): Set<object> {
  const trunk = field<LlamaModel>(model, 'model');
  const out = new Set<object>();
  for (const [, l] of trunk?.layers?.namedChildren() ?? []) {
    const { self_attn: at, mlp } = l as LlamaDecoderLayer;
    if (!at || !mlp) continue;
    [at.q_proj, at.k_proj, at.v_proj, at.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj].forEach((p) =>
      out.add(p),
    );
  }
  return out;
}

/** Rows and adapter slots of a native decoder (defaults: one row, one slot = the active adapters). */
export interface NativeDecodeOptions {
  /** Sequences decoded side by side, each with its own KV cache and position (default 1). */
  rows?: number;
  /**
   * Adapter slots a row can pick per step: null = the model's current state (active adapters, or
   * merged/disabled ones as they are), or a list of adapter names applied unmerged (PEFT's
   * mixed-batch inference; [] = the base model). Default `[null]`.
   */
  adapters?: (readonly string[] | null)[];
}

/**
 * A native decoder for `model` with room for `maxSeq` positions per row, or null when the native
 * path does not apply (another backend, no addon, `LOWRANK_NATIVE_DECODE=0`, or a model/adapter it
 * does not cover); {@link nativeDecodeSupport} says why. The decoder reads the model's weights in
 * place, so the model must not be trained, changed or disposed while it is open; `dispose()` it first.
 *
 * @example
 * const dec = openNativeDecoder(model, prompt.length + 64);
 * if (dec) try { const logits = dec.feed(prompt); } finally { dec.dispose(); }
 * const two = openNativeDecoder(peftBase, 128, { rows: 2, adapters: [['sql'], ['chat']] });
 * two?.step([1, 1], [0, 1], [0, 1]); // row 0 with adapter "sql", row 1 with "chat": logits [2, V]
 */
export function openNativeDecoder(
  model: PreTrainedModel,
  maxSeq: number,
  opts: NativeDecodeOptions = {},
): NativeDecoder | null {
  const r = build(model, maxSeq, opts);
  return typeof r === 'string' ? null : r;
}

/**
 * Null when {@link openNativeDecoder} would run `model` natively, else the reason it would not.
 * @example nativeDecodeSupport(model) // null, or e.g. 'tfjs backend is cpu, not native'
 */
export function nativeDecodeSupport(
  model: PreTrainedModel,
  maxSeq = 1,
  opts: NativeDecodeOptions = {},
): string | null {
  const r = build(model, maxSeq, opts);
  if (typeof r === 'string') return r;
  r.dispose();
  return null;
}

function build(model: PreTrainedModel, maxSeq: number, opts: NativeDecodeOptions): NativeDecoder | string {
  // The backend first: in a browser it is never native, and `process` may not exist there.
  if (tf.getBackend() !== NATIVE_BACKEND) return `tfjs backend is ${tf.getBackend()}, not ${NATIVE_BACKEND}`;
  if (process.env.LOWRANK_NATIVE_DECODE === '0') return 'disabled by LOWRANK_NATIVE_DECODE=0';
  const Ctor = (loadAddon() as unknown as { Decoder?: NativeDecoderCtor } | null)?.Decoder;
  if (!Ctor) return 'the native addon has no Decoder (rebuild it: npm rebuild lowrank)';
  const rows = opts.rows ?? 1;
  const slots = opts.adapters ?? [null];
  if (!Number.isInteger(rows) || rows < 1)
    throw new ConfigError('NativeDecodeOptions.rows', 'must be a positive integer', rows, 'pass e.g. 4');
  if (!Number.isInteger(maxSeq) || maxSeq < 1)
    throw new ConfigError(
      'native decode maxSeq',
      'must be a positive integer',
      maxSeq,
      'prompt + new tokens',
    );
  const keep: Tensor[] = [];
  try {
    if (!(model instanceof DecoderForCausalLM)) throw new Unsupported(`${model.architecture}`);
    const trunk = field<Module>(model, 'model');
    if (!trunk) throw new Unsupported('trunk');
    const dims = trunkDims(trunk, maxSeq);
    const act = ACTIVATIONS[dims.act];
    if (act === undefined) throw new Unsupported(`activation ${dims.act}`);
    const t = trunk as LlamaModel;
    if (!(t.embed_tokens instanceof Embedding)) throw new Unsupported('embedding layer');
    const head = model.lm_head;
    if (!(head instanceof Linear) || head.bias || head.fanInFanOut) throw new Unsupported('lm_head');
    const layers = layersOf(t, dims, slots, keep);
    const d = dims;
    const vec = new Float64Array([
      d.hidden,
      d.intermediate,
      d.nLayers,
      d.nHead,
      d.nKvHead,
      d.headDim,
      d.vocabSize,
      maxSeq,
      d.eps,
      d.ropeTheta,
      act,
      d.normOffset ? 1 : 0,
      Math.fround(d.embedScale),
      d.scoreScale,
      rows,
    ]);
    const weights = [arr(t.embed_tokens.weight), normWeight(t.norm, d.normOffset), arr(head.weight)];
    const handle = new Ctor(vec, weights, layers);
    const relayer = (spec: SlotSpec): LayerArrays | string => {
      const fresh: Tensor[] = [];
      try {
        return { layers: layersOf(t, dims, spec, fresh), keep: fresh };
      } catch (e) {
        tf.dispose(fresh);
        if (e instanceof Unsupported) return `not covered natively: ${e.message}`;
        throw e;
      }
    };
    return session(handle, { vocabSize: d.vocabSize, rows, slots: slots.length, maxSeq }, keep, relayer);
  } catch (e) {
    tf.dispose(keep);
    if (e instanceof Unsupported) return `not covered natively: ${e.message}`;
    throw e;
  }
}
