/**
 * The native decode engine (issue 17, item 1): when the `native` tfjs backend and its addon are loaded
 * and the model is a supported decoder — Llama (llama2.c checkpoints), Qwen2, Mistral, Gemma, Gemma 2
 * (soft-capping, alternating sliding windows, post norms), Phi-3 (fused qkv / gate_up) — `generate`
 * hands the token loop to the addon (native/src/decode.cc) instead of hundreds of tfjs kernels per
 * token. Weights are read in place from the backend's arrays (no copy); the KV cache lives in the
 * addon; adapters run unmerged per row (native_layers.ts). Anything else (lora_bias, other
 * architectures, other backends) returns null from {@link openNativeDecoder}, and `generate` keeps the
 * tfjs path — which is also the reference the tests compare against (native_decode.test.ts).
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { loadAddon } from '../tensor/native/addon.js';
import { NATIVE_BACKEND } from '../tensor/native/register.js';
import type { Module } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { ConfigError } from '../errors.js';
import type { PreTrainedModel } from './base.js';
import { DecoderForCausalLM } from './decoder_heads.js';
import { LlamaModel, type LlamaDims } from './llama.js';
import { RopeDecoderModel } from './rope_decoder.js';
import { arr, blockArrays, field, normWeight, Unsupported } from './native_layers.js';
import {
  session,
  type LayerArrays,
  type NativeDecoder,
  type NativeDecoderCtor,
  type SlotSpec,
} from './native_decode_session.js';

export type { NativeDecoder, NativeDecoderHandle, SlotSpec } from './native_decode_session.js';
export { nativeProjections } from './native_layers.js';

const ACTIVATIONS: Record<string, number> = {
  silu: 0,
  swish: 0,
  gelu_pytorch_tanh: 1,
  gelu_new: 1,
  gelu_fast: 1,
};

/** Llama's dims without the bias and tying flags, plus what a rope_decoder trunk adds. */
interface TrunkDims extends Omit<LlamaDims, 'attentionBias' | 'mlpBias' | 'tieWordEmbeddings'> {
  normOffset: boolean;
  embedScale: number;
  scoreScale: number;
  /** Per layer: sliding window or null. */
  windows: (number | null)[];
  attnSoftcap: number | null;
  finalSoftcap: number | null;
}

/** The trunk's dims when it is Llama or a rope_decoder trunk. */
function trunkDims(trunk: Module): TrunkDims {
  if (trunk instanceof LlamaModel) {
    const d = trunk.dims;
    const none = { windows: [], attnSoftcap: null, finalSoftcap: null };
    return { ...d, ...none, normOffset: false, embedScale: 1, scoreScale: 1 / Math.sqrt(d.headDim) };
  }
  if (trunk instanceof RopeDecoderModel) return { ...trunk.dims, embedScale: trunk.dims.embedScale ?? 1 };
  throw new Unsupported('trunk');
}

function layersOf(trunk: LlamaModel, dims: TrunkDims, slots: SlotSpec, keep: Tensor[]): unknown[] {
  return trunk.layers
    .namedChildren()
    .map(([, l], i) => blockArrays(l, dims.normOffset, dims.windows[i] ?? null, slots, keep));
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
    const dims = trunkDims(trunk);
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
      d.attnSoftcap ?? 0,
      d.finalSoftcap ?? 0,
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
