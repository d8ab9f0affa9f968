import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../tensor/tf.js';
import { initBackend } from '../tensor/backend.js';
import { nativeAvailable } from '../testing/backend_parity.js';
import { manualSeed } from '../nn/init.js';
import { Embedding, Linear } from '../nn/layers.js';
import { Linear4bit } from '../nn/linear4bit.js';
import { HalfEmbedding, HalfLinear, halfEmbeddings } from '../nn/half_embedding.js';
import { memoryByCategory } from '../nn/memory_report.js';
import { f16BitsToFloat, floatToF16Bits } from '../util/float16.js';
import { setGradientCheckpointing } from '../nn/checkpoint.js';
import { TINY_LLAMA } from '../testing/tiny_models.js';
import { getPeftModel, LoraConfig, PeftModel } from '../tuners/index.js';
import { AdamW } from '../training/optim.js';
import { ConfigError, NotSupportedError } from '../errors.js';
import type { PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { loadModel, saveModel } from './load.js';
import { setChunkedLoss } from './chunked_head.js';

/**
 * A float16-stored embedding vs an f32 embedding holding the same float16-rounded values: the same
 * products; only the tied head's block sums (one block at this vocabulary) and the 4-bit layers'
 * summation order can differ, a few ulps of O(1) losses and gradients.
 */
const SAME_VALUES_RTOL = 1e-5;
/** An adapter over the f32 model with the 4-bit layers' dequantised weights vs over the 4-bit model. */
const DEQUANT_RTOL = 1e-4;

const NF4 = { quantize: 'nf4', doubleQuant: true } as const;
const backends = ['cpu', ...(nativeAvailable() ? ['native'] : [])];

async function writeFolder(tie: boolean): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-half-'));
  manualSeed(7);
  const m = modelFromConfig(
    { ...TINY_LLAMA, tie_word_embeddings: tie, vocab_size: 37 },
    { task: 'CAUSAL_LM' },
  );
  await saveModel(m, dir);
  m.dispose();
  return dir;
}

/** Rounds a model's embedding weight to float16 values in place (the reference: f32 storage). */
function roundEmbedding(model: PreTrainedModel): void {
  const emb = model.getSubmodule('model.embed_tokens') as Embedding;
  const values = Float32Array.from(emb.weight.dataSync() as Float32Array, (v) =>
    f16BitsToFloat(floatToF16Bits(v)),
  );
  tf.tidy(() => emb.weight.assign(tf.tensor(values, emb.weight.shape)));
}

const ids = () =>
  tf.tensor2d(
    [
      [1, 5, 36, 2, 9, 0],
      [3, 4, 8, 8, 30, 11],
    ],
    [2, 6],
    'int32',
  );

interface Run {
  loss: number;
  logits: Float32Array;
  grads: Float32Array[];
}

/** LoRA on q/v (B nonzero): eval logits, then the loss and LoRA gradients of one training forward. */
async function run(base: PreTrainedModel, setup: (m: PreTrainedModel) => void): Promise<Run> {
  manualSeed(3);
  const peft = getPeftModel(
    base,
    new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }),
  );
  for (const [name, p] of peft.trainableParameters())
    if (name.includes('lora_B')) tf.tidy(() => p.assign(tf.randomNormal(p.shape, 0, 0.1, 'float32', 5)));
  const x = ids();
  const logitsT = tf.tidy(() => peft.forward({ inputIds: x }).logits);
  const logits = (await logitsT.data()) as Float32Array;
  peft.train();
  setup(peft as unknown as PreTrainedModel);
  const vars = peft.trainableParameters().map(([, v]) => v);
  const { value, grads } = tf.variableGrads(
    () => peft.forward({ inputIds: x, labels: x }).loss as tf.Scalar,
    vars,
  );
  const out: Run = {
    loss: (await value.data())[0]!,
    logits,
    grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)),
  };
  tf.dispose([x, logitsT, value, ...Object.values(grads)]);
  peft.dispose();
  return out;
}

function near(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  assert.ok(scale > 0, `${what}: reference is all zero`);
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= rtol * scale, `${what}[${i}] ${a[i]} vs ${b[i]}`);
}

function same(a: Run, b: Run, rtol: number, what: string): void {
  near([a.loss], [b.loss], rtol, `${what}: loss`);
  near(a.logits, b.logits, rtol, `${what}: logits`);
  a.grads.forEach((g, i) => near(g, b.grads[i]!, rtol, `${what}: grad ${i}`));
}

for (const backend of backends) {
  test(`embeddingDtype float16 (${backend}): tied head follows; same losses/grads as f32 storage of the rounded values`, async () => {
    await initBackend(backend);
    const dir = await writeFolder(true);
    const before = tf.memory().numTensors;
    const setups: [string, (m: PreTrainedModel) => void][] = [
      ['plain', () => {}],
      ['chunked', (m) => setChunkedLoss(m, 4)],
      ['chunked + checkpointing', (m) => (setChunkedLoss(m, 3), setGradientCheckpointing(m, true))],
    ];
    for (const [name, setup] of setups) {
      const half = await loadModel(dir, { ...NF4, embeddingDtype: 'float16' });
      assert.ok(half.getSubmodule('model.embed_tokens') instanceof HalfEmbedding);
      assert.ok(
        half.getSubmodule('lm_head') instanceof HalfLinear,
        'the tied head shares the float16 storage',
      );
      const mem = memoryByCategory(half);
      assert.equal(mem.frozenHalf, 37 * 8 * 4, 'the packed table, counted once');
      const ref = await loadModel(dir, NF4);
      roundEmbedding(ref);
      same(await run(half, setup), await run(ref, setup), SAME_VALUES_RTOL, name);
    }
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    fs.rmSync(dir, { recursive: true });
  });
}

test('embeddingDtype float16: an untied head stays f32; halfEmbeddings converts a loaded model the same way', async () => {
  await initBackend('cpu');
  const dir = await writeFolder(false);
  const streamed = await loadModel(dir, { ...NF4, embeddingDtype: 'float16' });
  assert.ok(streamed.getSubmodule('model.embed_tokens') instanceof HalfEmbedding);
  assert.ok(streamed.getSubmodule('lm_head') instanceof Linear);
  const converted = await loadModel(dir, NF4);
  assert.deepEqual(halfEmbeddings(converted), { converted: ['model.embed_tokens'], tiedHeads: [] });
  same(await run(streamed, () => {}), await run(converted, () => {}), 0, 'streamed vs converted');
  fs.rmSync(dir, { recursive: true });
});

test('embeddingDtype: option checks; a float16 model is not saved as a whole', async () => {
  await initBackend('cpu');
  const dir = await writeFolder(true);
  await assert.rejects(loadModel(dir, { embeddingDtype: 'float16' }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match((e as Error).message, /embeddingDtype: float16 needs quantize.*add quantize: 'nf4'/);
    return true;
  });
  await assert.rejects(loadModel(dir, { ...NF4, embeddingDtype: 'bfloat16' as 'float16' }), ConfigError);
  const half = await loadModel(dir, { ...NF4, embeddingDtype: 'float16' });
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-half-out-'));
  await assert.rejects(saveModel(half, out), NotSupportedError);
  assert.deepEqual(fs.readdirSync(out), [], 'nothing written');
  half.dispose();
  fs.rmSync(dir, { recursive: true });
  fs.rmSync(out, { recursive: true });
});

test('an adapter trained on the NF4 + float16 model, loaded over the f32 model holding the dequantised weights, gives the same logits', async () => {
  await initBackend('cpu');
  const dir = await writeFolder(true);
  const before = tf.memory().numTensors;
  const q = await loadModel(dir, { ...NF4, embeddingDtype: 'float16' });
  manualSeed(11);
  const peft = getPeftModel(q, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }));
  peft.train();
  setChunkedLoss(peft, 4);
  const named = peft.trainableParameters();
  const opt = new AdamW(named, { lr: 0.05 });
  const x = ids();
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(
      () => peft.forward({ inputIds: x, labels: x }).loss as tf.Scalar,
      named.map(([, v]) => v),
    );
    opt.step(grads);
    tf.dispose([value, ...Object.values(grads)]);
  }
  peft.eval();
  const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-half-adapter-'));
  await peft.savePretrained(adapterDir);
  const want = tf.tidy(() => peft.forward({ inputIds: x }).logits);
  // the f32 model with what the NF4 model computes with: dequantised 4-bit weights, rounded embedding
  const f32 = await loadModel(dir);
  for (const [p, m] of q.namedModules()) {
    if (m instanceof Linear4bit) {
      const w: Tensor = m.denseWeight();
      (
        f32.getSubmodule(p.replace(/^base_model\.model\./, '').replace(/\.base_layer$/, '')) as Linear
      ).setDenseWeight(w);
      w.dispose();
    }
  }
  roundEmbedding(f32);
  const again = await PeftModel.fromPretrained(f32, adapterDir);
  const got = tf.tidy(() => again.forward({ inputIds: x }).logits);
  near(await got.data(), await want.data(), DEQUANT_RTOL, 'logits');
  tf.dispose([x, want, got]);
  opt.dispose();
  peft.dispose();
  again.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  fs.rmSync(dir, { recursive: true });
  fs.rmSync(adapterDir, { recursive: true });
});
