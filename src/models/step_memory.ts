/**
 * A rough estimate of the activation memory of one training step of a decoder (issue 18), so a front
 * end can say when a plain step would not fit and the memory options would help (`lowrank info`).
 *
 * Per token and decoder layer a tfjs backward keeps the forward's intermediates: two RMSNorm inputs
 * and outputs, q/k/v before and after the rotary embedding, the attention output, o_proj, the
 * residual sums (≈ 10·H + 3·KV floats), the MLP's gate/up/activation/product (4·I) and the attention
 * scores and probabilities (2·heads·T). tfjs also keeps every intermediate gradient until the
 * backward ends, which doubles it. The loss holds logits, log-probabilities, probabilities and their
 * gradient for every token (4·V). With activation checkpointing only each layer's input stays
 * (H per token and layer) plus one layer's intermediates and gradients during its backward; with the
 * chunked vocabulary loss only one block of rows' logits exists (about 3 × 8 Mi floats).
 *
 * Checked against bench/memory_worker.ts (SmolLM-135M shape, batch 4 × 256, f32, LoRA q/v): plain
 * 5.0 GB estimated + 0.5 GB model vs 7.7 GB measured peak RSS; with both options 0.3 + 0.5 GB vs
 * 1.15 GB. It is an order-of-magnitude guide (process baseline, allocator slack and the optimizer are
 * not in it), not a bound.
 */
import type { HFConfig } from './base.js';
import { DEFAULT_CHUNK_ELEMENTS } from '../tensor/ops/chunked_ce.js';

/** Decoder dimensions the estimate needs (Hugging Face config names). */
interface DecoderDims {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

/** What {@link estimateStepActivations} returns (bytes). */
export interface StepActivationEstimate {
  /** No memory option: every intermediate and its gradient kept, full [B·T, V] logits. */
  plain: number;
  /** Activation checkpointing and the chunked vocabulary loss together. */
  withMemoryOptions: number;
}

function dimsOf(config: HFConfig): DecoderDims | null {
  const n = (k: string) => (typeof config[k] === 'number' ? (config[k] as number) : undefined);
  const hidden = n('hidden_size');
  const intermediate = n('intermediate_size');
  const layers = n('num_hidden_layers');
  const heads = n('num_attention_heads');
  const vocab = n('vocab_size');
  if (!hidden || !intermediate || !layers || !heads || !vocab) return null;
  return { hidden, intermediate, layers, heads, kvHeads: n('num_key_value_heads') ?? heads, vocab };
}

/**
 * Estimated activation bytes of one causal-LM training step at `batch` × `seq` tokens, or null when
 * `config` is not a decoder with the usual Hugging Face dimension fields.
 *
 * @example
 * estimateStepActivations(smollm135mConfig, 4, 256); // { plain: ≈5.0e9, withMemoryOptions: ≈3.1e8 }
 */
export function estimateStepActivations(
  config: HFConfig,
  batch: number,
  seq: number,
): StepActivationEstimate | null {
  const d = dimsOf(config);
  if (!d) return null;
  const tokens = batch * seq;
  const headDim = d.hidden / d.heads;
  const kv = d.kvHeads * headDim;
  const perLayer = 10 * d.hidden + 3 * kv + 4 * d.intermediate + 2 * d.heads * seq; // floats per token
  const plain = 4 * tokens * (2 * d.layers * perLayer + 4 * d.vocab);
  const chunkFloats = 3 * Math.min(tokens * d.vocab, DEFAULT_CHUNK_ELEMENTS);
  const withMemoryOptions = 4 * (tokens * (d.layers * d.hidden + 2 * perLayer) + chunkFloats);
  return { plain, withMemoryOptions };
}
