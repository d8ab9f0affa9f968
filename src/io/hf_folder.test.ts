import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import { readHFFolder, writeHFFolder } from './hf_folder.js';
import { type SafeTensorInput } from './safetensors.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
}

function weights(): Map<string, Tensor> {
  return new Map([
    ['model.embed_tokens.weight', tf.tensor([1, 2, 3, 4, 5, 6], [3, 2])],
    ['model.norm.weight', tf.tensor([0.5, -0.5])],
    ['lm_head.weight', tf.tensor([9, 8, 7, 6, 5, 4], [3, 2])],
  ]);
}

async function assertSameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): Promise<void> {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a) {
    assert.deepEqual(b.get(k)!.shape, t.shape, k);
    assert.deepEqual(Array.from(await b.get(k)!.data()), Array.from(await t.data()), k);
  }
}

const CONFIG = { model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 2 };

test('write then read a single-file folder gives the same config, tensors and tokenizer file', async () => {
  const dir = tmp();
  const w = weights();
  await writeHFFolder(dir, CONFIG, w, { tokenizerFiles: { 'tokenizer.json': '{"x":1}' } });
  const got = await readHFFolder(dir);
  assert.deepEqual(got.config, CONFIG);
  assert.deepEqual(got.files, ['config.json', 'model.safetensors', 'tokenizer.json']);
  assert.deepEqual(got.metadata, { format: 'pt' });
  await assertSameTensors(w, got.weights);
  [...w.values(), ...got.weights.values()].forEach((t) => t.dispose());
  fs.rmSync(dir, { recursive: true });
});

test('sharded folder: index + shards round trip; a shard missing a tensor is an error', async () => {
  const dir = tmp();
  const w = weights();
  await writeHFFolder(dir, CONFIG, w, { maxShardBytes: 32 });
  const files = fs.readdirSync(dir).sort();
  assert.deepEqual(files, [
    'config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
  ]);
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, 4 * (6 + 2 + 6));
  assert.equal(index.weight_map['lm_head.weight'], 'model-00002-of-00002.safetensors');
  const got = await readHFFolder(dir);
  await assertSameTensors(w, got.weights);
  got.weights.forEach((t) => t.dispose());

  index.weight_map['extra.weight'] = 'model-00001-of-00002.safetensors';
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  const before = tf.memory().numTensors;
  await assert.rejects(
    readHFFolder(dir),
    (e: unknown) =>
      e instanceof CheckpointError &&
      /model-00001-of-00002\.safetensors: lacks tensor "extra\.weight"/.test(e.message),
  );
  assert.equal(tf.memory().numTensors, before);
  w.forEach((t) => t.dispose());
  fs.rmSync(dir, { recursive: true });
});

test('pytorch_model.bin alone is refused with conversion advice; never unpickled', async () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), Buffer.from([0x80, 0x02]));
  await assert.rejects(
    readHFFolder(dir),
    (e: unknown) =>
      e instanceof CheckpointError &&
      /pytorch_model\.bin: is a pickle/.test(e.message) &&
      /safe_serialization=True/.test(e.message),
  );
  fs.rmSync(dir, { recursive: true });
});

test('missing config.json, empty folder and a non-directory are CheckpointErrors', async () => {
  const dir = tmp();
  await assert.rejects(readHFFolder(dir), /has no config\.json/);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"a":');
  await assert.rejects(
    readHFFolder(dir),
    (e: unknown) => e instanceof CheckpointError && /config\.json: is not valid JSON/.test(e.message),
  );
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  await assert.rejects(
    readHFFolder(dir),
    /has neither model\.safetensors nor model\.safetensors\.index\.json/,
  );
  await assert.rejects(readHFFolder(path.join(dir, 'config.json')), /is not a directory/);
  fs.rmSync(dir, { recursive: true });
});

test('exact-dtype inputs (F16 bits) are written as given and load as float32', async () => {
  const dir = tmp();
  const w = new Map<string, SafeTensorInput>([
    ['h', { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }],
  ]);
  await writeHFFolder(dir, CONFIG, w);
  const got = await readHFFolder(dir);
  assert.deepEqual(Array.from(got.weights.get('h')!.dataSync()), [1, -2]);
  got.weights.forEach((t) => t.dispose());
  fs.rmSync(dir, { recursive: true });
});
