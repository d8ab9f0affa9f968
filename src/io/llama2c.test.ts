import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import {
  convertLlama2cToHF,
  permuteForHFRope,
  readLlama2c,
  readLlama2cHeader,
  unpermuteFromHFRope,
} from './llama2c.js';
import { readHFFolder } from './hf_folder.js';
import { loadTokenizer } from './tokenizer.js';

interface RefCase {
  name: string;
  version: 0 | 1;
  shared: boolean;
  file_b64: string;
  hf: Record<string, { shape: number[]; f32_b64: string }>;
}
const REF = JSON.parse(
  fs.readFileSync(new URL('../../tests/fixtures/io_llama2c_reference.json', import.meta.url), 'utf8'),
) as {
  params: Record<string, number>;
  permute: { n_heads: number; shape: [number, number]; w: number[]; permuted: number[] };
  cases: RefCase[];
};

const f32 = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return Array.from(new Float32Array(b.buffer, b.byteOffset, b.length / 4));
};
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));

function writeCase(dir: string, c: RefCase): string {
  const file = path.join(dir, `${c.name}.bin`);
  fs.writeFileSync(file, Buffer.from(c.file_b64, 'base64'));
  return file;
}

test('q/k RoPE permutation equals transformers’ permute (torch reference) and inverts', () => {
  const { n_heads, shape, w, permuted } = REF.permute;
  const t = tf.tensor(w, shape);
  const p = permuteForHFRope(t, n_heads);
  // A permutation moves float32 values without arithmetic: exact equality is the right check.
  assert.deepEqual(Array.from(p.dataSync()), Array.from(Float32Array.from(permuted)));
  const back = unpermuteFromHFRope(p, n_heads);
  assert.deepEqual(Array.from(back.dataSync()), Array.from(t.dataSync()));
  [t, p, back].forEach((x) => x.dispose());
});

for (const c of REF.cases) {
  test(`llama2.c ${c.name}: header, HF config and every tensor (HF names, permuted q/k) match the reference`, async () => {
    const dir = tmp();
    const file = writeCase(dir, c);
    const before = tf.memory().numTensors;
    const { config, weights, header } = await readLlama2c(file);
    const p = REF.params;
    assert.deepEqual(
      [header.version, header.sharedClassifier, header.dim, header.nKvHeads, header.vocabSize],
      [c.version, c.shared, p.dim, p.n_kv_heads, p.vocab_size],
    );
    assert.equal(config.hidden_size, p.dim);
    assert.equal(config.intermediate_size, p.hidden_dim);
    assert.equal(config.num_hidden_layers, p.n_layers);
    assert.equal(config.num_attention_heads, p.n_heads);
    assert.equal(config.num_key_value_heads, p.n_kv_heads);
    assert.equal(config.max_position_embeddings, p.seq_len);
    assert.equal(config.tie_word_embeddings, c.shared);
    assert.deepEqual(
      [config.model_type, config.architectures, config.rope_theta, config.rms_norm_eps],
      ['llama', ['LlamaForCausalLM'], 10000, 1e-5],
    );
    assert.deepEqual([...weights.keys()].sort(), Object.keys(c.hf).sort());
    for (const [k, want] of Object.entries(c.hf)) {
      assert.deepEqual(weights.get(k)!.shape, want.shape, k);
      assert.deepEqual(Array.from(weights.get(k)!.dataSync()), f32(want.f32_b64), k);
    }
    weights.forEach((t) => t.dispose());
    assert.equal(tf.memory().numTensors, before);
    assert.equal((await readLlama2cHeader(file)).version, c.version);
    fs.rmSync(dir, { recursive: true });
  });
}

test('malformed llama2.c files raise CheckpointErrors naming the file', async () => {
  const dir = tmp();
  const good = Buffer.from(REF.cases[0]!.file_b64, 'base64');
  const write = (name: string, bytes: Uint8Array) => {
    fs.writeFileSync(path.join(dir, name), bytes);
    return path.join(dir, name);
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['short.bin', good.subarray(0, 10), /shorter than the 28-byte/],
    ['cut.bin', good.subarray(0, good.length - 4), /file size does not match its header/],
    ['long.bin', Buffer.concat([good, Buffer.alloc(4)]), /file size does not match its header/],
  ];
  const heads = Buffer.from(good);
  heads.writeInt32LE(3, 12); // n_heads 3 does not divide dim 8
  cases.push(['heads.bin', heads, /dim must be a multiple of n_heads/]);
  const v2 = Buffer.from(REF.cases[1]!.file_b64, 'base64');
  v2.writeInt32LE(2, 4);
  cases.push(['v2.bin', v2, /version is not supported.*\(got 2\)/]);
  for (const [name, bytes, rule] of cases) {
    const file = write(name, bytes);
    await assert.rejects(
      readLlama2c(file),
      (e: unknown) => e instanceof CheckpointError && e.message.startsWith(file) && rule.test(e.message),
      name,
    );
  }
  fs.rmSync(dir, { recursive: true });
});

/** Smallest valid llama2.c tokenizer: <unk>, BOS, EOS, ' ', 'a'. */
function tinyTokenizer(): Buffer {
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ' ', 'a'];
  const parts = pieces.map((p) => {
    const b = Buffer.alloc(8 + Buffer.byteLength(p));
    b.writeFloatLE(0, 0);
    b.writeInt32LE(Buffer.byteLength(p), 4);
    b.write(p, 8);
    return b;
  });
  const head = Buffer.alloc(4);
  head.writeInt32LE(7, 0);
  return Buffer.concat([head, ...parts]);
}

async function assertSame(a: Map<string, Tensor>, b: Map<string, Tensor>): Promise<void> {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a) assert.deepEqual(Array.from(await b.get(k)!.data()), Array.from(await t.data()), k);
}

test('convertLlama2cToHF writes a folder that reads back to the same config, tensors and tokenizer', async () => {
  const dir = tmp();
  for (const c of REF.cases) {
    const bin = writeCase(dir, c);
    const tok = path.join(dir, 'tok5.bin');
    fs.writeFileSync(tok, tinyTokenizer());
    const out = path.join(dir, `${c.name}-hf`);
    await convertLlama2cToHF(bin, tok, out);
    assert.deepEqual(fs.readdirSync(out).sort(), [
      'config.json',
      'model.safetensors',
      'tok5.bin',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const direct = await readLlama2c(bin);
    const folder = await readHFFolder(out);
    assert.deepEqual(folder.config, direct.config);
    await assertSame(direct.weights, folder.weights);
    [...direct.weights.values(), ...folder.weights.values()].forEach((t) => t.dispose());
    assert.deepEqual((await loadTokenizer(out)).encode('a'), [1, 3, 4]);
  }
  fs.rmSync(dir, { recursive: true });
});

const DATA = new URL('../../../shared/data/models/stories260K/', import.meta.url);
const haveData = fs.existsSync(new URL('stories260K.bin', DATA));

test(
  'stories260K.bin: header equals the oracle’s, converts to an HF folder',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const oracle = JSON.parse(fs.readFileSync(new URL('oracle.json', DATA), 'utf8'));
    const bin = new URL('stories260K.bin', DATA).pathname;
    const h = await readLlama2cHeader(bin);
    assert.deepEqual(
      {
        dim: h.dim,
        hidden_dim: h.hiddenDim,
        n_layers: h.nLayers,
        n_heads: h.nHeads,
        n_kv_heads: h.nKvHeads,
        vocab_size: h.vocabSize,
        seq_len: h.seqLen,
        shared_classifier: h.sharedClassifier,
      },
      oracle.header,
    );
    const out = path.join(tmp(), 'hf');
    await convertLlama2cToHF(bin, new URL('tok512.bin', DATA).pathname, out);
    const folder = await readHFFolder(out);
    assert.equal(folder.weights.size, 2 + 9 * h.nLayers); // embed, final norm, 9 per layer; lm_head tied
    assert.deepEqual(folder.weights.get('model.layers.4.self_attn.k_proj.weight')!.shape, [32, 64]);
    folder.weights.forEach((t) => t.dispose());
    assert.deepEqual(
      (await loadTokenizer(out)).encode('Once upon a time', { addSpecialTokens: false }),
      oracle.encode_examples['Once upon a time'],
    );
    fs.rmSync(path.dirname(out), { recursive: true });
  },
);
