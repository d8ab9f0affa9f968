/**
 * llama2.c checkpoints (karpathy/llama2.c export.py `legacy_export` = v0 and `version1_export` = v1,
 * both fp32) read into Hugging Face Llama names and config, plus conversion to an HF folder.
 *
 * RoPE layout: llama2.c rotates adjacent pairs (dims 2j, 2j+1) while HF Llama rotates halves
 * (`rotate_half`: dims j and j + headDim/2). transformers' `convert_llama_weights_to_hf.py` bridges the
 * two by permuting the rows of wq and wk inside each head ({@link permuteForHFRope}); we apply the same
 * permutation on load, so the HF-style Llama model gives llama2.c's outputs.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import { writeHFFolder, type HFConfigJson } from './hf_folder.js';
import { baseName, openRandomAccess, readBytes, type RandomAccessFile } from './source.js';
import { isLlama2cTokenizerName, Llama2cTokenizer } from './tokenizer.js';
import { llama2cToTokenizerJson } from './tokenizer_convert.js';

/** "ak42" as a little-endian uint32: the v1+ header magic. */
export const LLAMA2C_MAGIC = 0x616b3432;
/** v1 header: magic, version, 7 params, shared-classifier byte, zero-padded to 256 bytes. */
const V1_HEADER_BYTES = 256;
const V0_HEADER_BYTES = 7 * 4;
const F32 = 4;

/** The hyper-parameters of a llama2.c checkpoint. */
export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive here (v0 stores a negative value for an untied classifier). */
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Bytes before the first weight. */
  headerBytes: number;
}

function fail(path: string, rule: string, got?: unknown): CheckpointError {
  return new CheckpointError(
    path,
    rule,
    got,
    'pass an fp32 llama2.c checkpoint written by export.py (--version 0 or 1)',
  );
}

function validateParams(h: Llama2cHeader, path: string): Llama2cHeader {
  const params = {
    dim: h.dim,
    hidden_dim: h.hiddenDim,
    n_layers: h.nLayers,
    n_heads: h.nHeads,
    n_kv_heads: h.nKvHeads,
    vocab_size: h.vocabSize,
    seq_len: h.seqLen,
  };
  for (const [k, v] of Object.entries(params))
    if (!(v > 0)) throw fail(path, `header ${k} must be positive`, v);
  if (h.dim % h.nHeads !== 0) throw fail(path, `header dim must be a multiple of n_heads`, params);
  if (h.nHeads % h.nKvHeads !== 0)
    throw fail(path, 'header n_heads must be a multiple of n_kv_heads', params);
  if ((h.dim / h.nHeads) % 2 !== 0) throw fail(path, 'head size dim / n_heads must be even for RoPE', params);
  return h;
}

/**
 * Parses the header of a llama2.c checkpoint from its first bytes (at least 28; 256 for v1).
 *
 * @example
 * const h = parseLlama2cHeader(first256Bytes, 'stories260K.bin'); // {version: 0, dim: 64, ...}
 */
export function parseLlama2cHeader(first: Uint8Array, path: string): Llama2cHeader {
  if (first.length < V0_HEADER_BYTES)
    throw fail(path, 'file is shorter than the 28-byte llama2.c header', first.length);
  const v = new DataView(first.buffer, first.byteOffset, first.byteLength);
  const isV1 = v.getUint32(0, true) === LLAMA2C_MAGIC;
  if (isV1) {
    if (first.length < V1_HEADER_BYTES)
      throw fail(path, 'file is shorter than the 256-byte v1 header', first.length);
    const version = v.getInt32(4, true);
    if (version !== 1) {
      throw new CheckpointError(
        path,
        'llama2.c format version is not supported (only fp32 v0 and v1; v2 is Q8_0)',
        version,
        'export with --version 1 or 0',
      );
    }
  }
  const p = (i: number) => v.getInt32((isV1 ? 8 : 0) + 4 * i, true);
  const vocabRaw = p(5);
  const h: Llama2cHeader = {
    version: isV1 ? 1 : 0,
    dim: p(0),
    hiddenDim: p(1),
    nLayers: p(2),
    nHeads: p(3),
    nKvHeads: p(4),
    vocabSize: Math.abs(vocabRaw),
    seqLen: p(6),
    sharedClassifier: isV1 ? v.getUint8(36) !== 0 : vocabRaw > 0,
    headerBytes: isV1 ? V1_HEADER_BYTES : V0_HEADER_BYTES,
  };
  return validateParams(h, path);
}

/** One tensor in the checkpoint: HF key, shape, and (for q/k) the head count of the RoPE permutation. */
interface Segment {
  key: string | null; // null: bytes to skip (v0's unused freq_cis tables)
  shape: number[];
  permuteHeads?: number;
}

function perLayer(
  h: Llama2cHeader,
  name: (i: number) => string,
  shape: number[],
  permuteHeads?: number,
): Segment[] {
  return Array.from({ length: h.nLayers }, (_, i) => ({ key: name(i), shape, permuteHeads }));
}

/** The tensors of the file in file order (export.py `legacy_export` / `version1_export`). */
function layout(h: Llama2cHeader): Segment[] {
  const kvDim = (h.dim / h.nHeads) * h.nKvHeads;
  const L = (i: number, s: string) => `model.layers.${i}.${s}.weight`;
  const rmsAtt = perLayer(h, (i) => L(i, 'input_layernorm'), [h.dim]);
  const rmsFfn = perLayer(h, (i) => L(i, 'post_attention_layernorm'), [h.dim]);
  const embed: Segment = { key: 'model.embed_tokens.weight', shape: [h.vocabSize, h.dim] };
  const norm: Segment = { key: 'model.norm.weight', shape: [h.dim] };
  const attn = [
    ...perLayer(h, (i) => L(i, 'self_attn.q_proj'), [h.dim, h.dim], h.nHeads),
    ...perLayer(h, (i) => L(i, 'self_attn.k_proj'), [kvDim, h.dim], h.nKvHeads),
    ...perLayer(h, (i) => L(i, 'self_attn.v_proj'), [kvDim, h.dim]),
    ...perLayer(h, (i) => L(i, 'self_attn.o_proj'), [h.dim, h.dim]),
  ];
  const mlp = [
    ...perLayer(h, (i) => L(i, 'mlp.gate_proj'), [h.hiddenDim, h.dim]), // w1
    ...perLayer(h, (i) => L(i, 'mlp.down_proj'), [h.dim, h.hiddenDim]), // w2
    ...perLayer(h, (i) => L(i, 'mlp.up_proj'), [h.hiddenDim, h.dim]), // w3
  ];
  const head: Segment[] = h.sharedClassifier ? [] : [{ key: 'lm_head.weight', shape: [h.vocabSize, h.dim] }];
  if (h.version === 1) return [...rmsAtt, ...rmsFfn, norm, embed, ...attn, ...mlp, ...head];
  const headSize = h.dim / h.nHeads;
  const freqs: Segment = { key: null, shape: [2, h.seqLen, headSize / 2] }; // freq_cis real + imag, unused
  return [embed, ...rmsAtt, ...attn.slice(0, 4 * h.nLayers), ...rmsFfn, ...mlp, norm, freqs, ...head];
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * HF's RoPE permutation of a q/k projection (transformers convert_llama_weights_to_hf.py `permute`):
 * `w.view(nHeads, rows/nHeads/2, 2, cols).transpose(1, 2).reshape(rows, cols)`. Within each head, row
 * 2j (the first of llama2.c's adjacent pair j) moves to j and row 2j+1 moves to j + headDim/2.
 *
 * @example
 * const qHF = permuteForHFRope(wq, nHeads);    // wq: [dim, dim]
 * const kHF = permuteForHFRope(wk, nKvHeads);  // wk: [kvDim, dim]
 */
export function permuteForHFRope(w: Tensor, nHeads: number): Tensor {
  const [rows, cols] = w.shape as [number, number];
  return tf.tidy(() =>
    w
      .reshape([nHeads, rows / nHeads / 2, 2, cols])
      .transpose([0, 2, 1, 3])
      .reshape([rows, cols]),
  );
}

/**
 * Inverse of {@link permuteForHFRope} (HF rotate_half layout → llama2.c adjacent pairs).
 *
 * @example
 * const wq = unpermuteFromHFRope(qHF, nHeads);
 */
export function unpermuteFromHFRope(w: Tensor, nHeads: number): Tensor {
  const [rows, cols] = w.shape as [number, number];
  return tf.tidy(() =>
    w
      .reshape([nHeads, 2, rows / nHeads / 2, cols])
      .transpose([0, 2, 1, 3])
      .reshape([rows, cols]),
  );
}

/**
 * The Hugging Face LlamaConfig of a llama2.c checkpoint (llama2.c: RMSNorm eps 1e-5, RoPE theta 10000,
 * SwiGLU, no biases; BOS 1, EOS 2).
 *
 * @example
 * llama2cToHFConfig(header).num_key_value_heads; // 4 for stories260K
 */
export function llama2cToHFConfig(h: Llama2cHeader): HFConfigJson {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: h.dim,
    intermediate_size: h.hiddenDim,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    head_dim: h.dim / h.nHeads,
    vocab_size: h.vocabSize,
    max_position_embeddings: h.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: h.sharedClassifier,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}

async function readSegments(file: RandomAccessFile, h: Llama2cHeader): Promise<Map<string, Tensor>> {
  const segments = layout(h);
  const expected = h.headerBytes + F32 * segments.reduce((a, s) => a + numel(s.shape), 0);
  if (file.size !== expected) {
    throw fail(
      file.path,
      `file size does not match its header (expected ${expected} bytes for v${h.version}, shared_classifier=${h.sharedClassifier})`,
      file.size,
    );
  }
  const weights = new Map<string, Tensor>();
  let offset = h.headerBytes;
  try {
    for (const s of segments) {
      const bytes = F32 * numel(s.shape);
      if (s.key !== null) {
        const raw = await file.read(offset, bytes);
        const t = tf.tensor(
          new Float32Array(raw.buffer, raw.byteOffset, raw.length / F32),
          s.shape,
          'float32',
        );
        if (s.permuteHeads === undefined) weights.set(s.key, t);
        else {
          weights.set(s.key, permuteForHFRope(t, s.permuteHeads));
          t.dispose();
        }
      }
      offset += bytes;
    }
  } catch (err) {
    weights.forEach((t) => t.dispose());
    throw err;
  }
  return weights;
}

/**
 * Reads only the header of a llama2.c checkpoint (e.g. to tell it apart from other files).
 *
 * @example
 * const h = await readLlama2cHeader('stories260K.bin'); // h.version === 0
 */
export async function readLlama2cHeader(path: string): Promise<Llama2cHeader> {
  const file = await openRandomAccess(path);
  try {
    return parseLlama2cHeader(await file.read(0, Math.min(V1_HEADER_BYTES, file.size)), path);
  } finally {
    await file.close();
  }
}

/** A llama2.c checkpoint in Hugging Face form. The caller owns `weights`. */
export interface Llama2cCheckpoint {
  config: HFConfigJson;
  weights: Map<string, Tensor>;
  header: Llama2cHeader;
}

/**
 * Reads a llama2.c fp32 checkpoint (v0 or v1) into HF Llama names, with q/k permuted for HF RoPE.
 * `lm_head.weight` is present only when the classifier is not shared (as in an HF folder with
 * `tie_word_embeddings`). Tensors are read one at a time by byte range.
 *
 * @example
 * const { config, weights } = await readLlama2c('stories260K.bin');
 * weights.get('model.layers.0.self_attn.q_proj.weight')!.shape; // [64, 64]
 */
export async function readLlama2c(path: string): Promise<Llama2cCheckpoint> {
  const file = await openRandomAccess(path);
  try {
    const header = parseLlama2cHeader(await file.read(0, Math.min(V1_HEADER_BYTES, file.size)), path);
    const weights = await readSegments(file, header);
    return { config: llama2cToHFConfig(header), weights, header };
  } finally {
    await file.close();
  }
}

/** Options of {@link convertLlama2cToHF}. */
export interface ConvertLlama2cOptions {
  /** Also write tokenizer.json + tokenizer_config.json converted from the llama2.c tokenizer (default true). */
  tokenizerJson?: boolean;
}

/** The tokenizer files of the converted folder: the original tok file, plus its tokenizer.json form. */
async function tokenizerFilesFor(
  tokPath: string,
  withJson: boolean,
): Promise<Record<string, Uint8Array | string>> {
  const bytes = await readBytes(tokPath);
  // Keep the tokenizer's own name when loadTokenizer recognises it (tok512.bin), else tokenizer.bin.
  const name = isLlama2cTokenizerName(baseName(tokPath)) ? baseName(tokPath) : 'tokenizer.bin';
  const files: Record<string, Uint8Array | string> = { [name]: bytes };
  if (withJson) {
    const { tokenizerJson, tokenizerConfig } = llama2cToTokenizerJson(
      Llama2cTokenizer.fromBytes(bytes, tokPath),
    );
    files['tokenizer.json'] = JSON.stringify(tokenizerJson, null, 2) + '\n';
    files['tokenizer_config.json'] = JSON.stringify(tokenizerConfig, null, 2) + '\n';
  }
  return files;
}

/**
 * Converts a llama2.c checkpoint to a Hugging Face Llama folder: `config.json` + `model.safetensors`
 * (q/k permuted as transformers does) and, given a tokenizer, the llama2.c tokenizer file (under its own
 * name if it is `tok*.bin`/`tokenizer.bin`, else as `tokenizer.bin`; `loadTokenizer(outDir)` uses it)
 * plus `tokenizer.json`/`tokenizer_config.json` converted from it for Python's AutoTokenizer.
 *
 * @example
 * await convertLlama2cToHF('stories260K.bin', 'tok512.bin', './stories260K-hf');
 */
export async function convertLlama2cToHF(
  binPath: string,
  tokPath: string | undefined,
  outDir: string,
  opts: ConvertLlama2cOptions = {},
): Promise<void> {
  const tokenizerFiles =
    tokPath === undefined ? {} : await tokenizerFilesFor(tokPath, opts.tokenizerJson ?? true);
  const { config, weights } = await readLlama2c(binPath);
  try {
    await writeHFFolder(outDir, config, weights, { tokenizerFiles });
  } finally {
    weights.forEach((t) => t.dispose());
  }
}
