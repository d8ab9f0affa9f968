/**
 * Llama-shaped Hugging Face folders with random weights, written tensor by tensor (never the whole
 * model in memory), for memory tests and the QLoRA benchmark (bench/memory.ts). The shapes of
 * published checkpoints are in {@link LLAMA_SHAPES}; values are U(−0.02, 0.02) from a seeded
 * xorshift, written as F32.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The config fields that fix a Llama checkpoint's tensor shapes. */
export interface LlamaShape {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
}

/** SmolLM-135M, SmolLM-360M and TinyLlama-1.1B shapes (their published config.json values). */
export const LLAMA_SHAPES: Record<'135M' | '360M' | '1.1B', LlamaShape> = {
  '135M': {
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
  '360M': {
    hidden_size: 960,
    intermediate_size: 2560,
    num_hidden_layers: 32,
    num_attention_heads: 15,
    num_key_value_heads: 5,
    vocab_size: 49152,
    tie_word_embeddings: true,
  },
  '1.1B': {
    hidden_size: 2048,
    intermediate_size: 5632,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    vocab_size: 32000,
    tie_word_embeddings: false,
  },
};

/** Tensor names and shapes of a Llama checkpoint (as transformers saves `LlamaForCausalLM`). */
export function llamaTensorShapes(s: LlamaShape): [string, number[]][] {
  const h = s.hidden_size;
  const kv = (h / s.num_attention_heads) * s.num_key_value_heads;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [s.vocab_size, h]]];
  for (let i = 0; i < s.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [h]],
      [`${p}.post_attention_layernorm.weight`, [h]],
      [`${p}.self_attn.q_proj.weight`, [h, h]],
      [`${p}.self_attn.k_proj.weight`, [kv, h]],
      [`${p}.self_attn.v_proj.weight`, [kv, h]],
      [`${p}.self_attn.o_proj.weight`, [h, h]],
      [`${p}.mlp.gate_proj.weight`, [s.intermediate_size, h]],
      [`${p}.mlp.up_proj.weight`, [s.intermediate_size, h]],
      [`${p}.mlp.down_proj.weight`, [h, s.intermediate_size]],
    );
  }
  out.push(['model.norm.weight', [h]]);
  if (!s.tie_word_embeddings) out.push(['lm_head.weight', [s.vocab_size, h]]);
  return out;
}

/** Bytes of the checkpoint's f32 tensors. */
export function llamaF32Bytes(s: LlamaShape): number {
  return llamaTensorShapes(s).reduce((a, [, shape]) => a + 4 * shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * Writes `dir/config.json` and `dir/model.safetensors` (F32, random weights; norms are 1). Each
 * tensor is generated into one reused buffer and appended, so memory stays at one tensor.
 *
 * @example
 * writeRandomLlama('/tmp/smollm-135m', LLAMA_SHAPES['135M'], 0);
 */
export function writeRandomLlama(dir: string, shape: LlamaShape, seed = 0): void {
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...shape,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    torch_dtype: 'float32',
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const tensors = llamaTensorShapes(shape);
  const entries: string[] = ['"__metadata__":{"format":"pt"}'];
  let offset = 0;
  for (const [name, s] of tensors) {
    const n = 4 * s.reduce((a, b) => a * b, 1);
    entries.push(
      `"${name}":{"dtype":"F32","shape":[${s.join(',')}],"data_offsets":[${offset},${offset + n}]}`,
    );
    offset += n;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  try {
    fs.writeSync(fd, head);
    const largest = Math.max(...tensors.map(([, s]) => s.reduce((a, b) => a * b, 1)));
    const buf = new Float32Array(largest);
    let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
    for (const [name, s] of tensors) {
      const n = s.reduce((a, b) => a * b, 1);
      const values = buf.subarray(0, n);
      if (name.endsWith('norm.weight')) values.fill(1);
      else {
        for (let i = 0; i < n; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          values[i] = ((x >>> 0) / 4294967296 - 0.5) * 0.04;
        }
      }
      fs.writeSync(fd, new Uint8Array(values.buffer, 0, n * 4));
    }
  } finally {
    fs.closeSync(fd);
  }
}
