/**
 * The condition as data (issue 14): `Example.condition` → the collator's int32 [B] (or float32
 * [B, dim]) `condition` → `HyperLoraModel.forward` reads `inputs.condition`, so the library's Trainer,
 * `evaluate`, checkpoints and resume drive a hypernetwork like any other model. Token-type ids now
 * reach the base model untouched (the old path overwrote them with the condition and dropped them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import type { PreTrainedModel } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { ConfigError, DataError } from '../../errors.js';
import { collate, collateConditions } from '../../training/data/loader.js';
import type { Example } from '../../training/data/dataset.js';
import { evaluate } from '../../training/evaluate.js';
import { Trainer } from '../../training/trainer.js';
import { trainWithoutSyncReads } from '../../testing/sync_reads.js';
import { HyperLoraConfig, HyperLoraModel } from './index.js';
import { maxDiff } from '../../testing/compare.js';
import { TINY_LLAMA } from '../../testing/tiny_models.js';

/** Same inputs, same kernels: the condition tensor and the id array gather the same rows. */
const EXACT = 0;

const llama = (): PreTrainedModel => {
  manualSeed(31);
  return modelFromConfig(TINY_LLAMA, { task: 'CAUSAL_LM' });
};
const hyperOn = (m: PreTrainedModel, extra: Partial<ConstructorParameters<typeof HyperLoraConfig>[0]> = {}) =>
  new HyperLoraModel(
    m,
    new HyperLoraConfig({
      targetModules: ['q_proj', 'v_proj'],
      r: 2,
      numConditions: 3,
      hiddenDim: 8,
      ...extra,
    }),
  );
const values = (f: () => Tensor) => tf.tidy(() => Array.from(f().dataSync()));

/** Twelve causal-LM examples of 6 tokens over three conditions (the token statistics differ per condition). */
function lmExamples(): Example[] {
  return Array.from({ length: 12 }, (_, i) => ({
    inputIds: Array.from({ length: 6 }, (_, j) => 1 + ((i * 7 + j * (3 + (i % 3))) % 29)),
    label: -1,
    condition: i % 3,
  }));
}

/** Makes the generated factors non-zero so conditions differ (the B heads start at zero). */
function perturb(hyper: HyperLoraModel): void {
  tf.tidy(() => {
    for (const [n, p] of hyper.hypernet.namedParameters())
      if (/_B\.(weight|bias)$/.test(n)) p.assign(tf.randomNormal(p.shape, 0, 0.3, 'float32', 5));
  });
}

test('collateConditions: ids → int32 [B], vectors → float32 [B, dim], none → undefined; bad conditions are DataErrors', () => {
  const ex = (condition?: number | number[]): Example => ({ inputIds: [1, 2], label: -1, condition });
  const ids = collateConditions([ex(2), ex(0), ex(1)])!;
  assert.equal(ids.dtype, 'int32');
  assert.deepEqual(ids.shape, [3]);
  assert.deepEqual(Array.from(ids.dataSync()), [2, 0, 1]);
  const vec = collateConditions([ex([1, 0.5]), ex([0, -1])])!;
  assert.equal(vec.dtype, 'float32');
  assert.deepEqual(vec.shape, [2, 2]);
  assert.deepEqual(Array.from(vec.dataSync()), [1, 0.5, 0, -1]);
  tf.dispose([ids, vec]);
  assert.equal(collateConditions([ex(), ex()]), undefined);
  const n0 = tf.memory().numTensors;
  const bad = (list: Example[], re: RegExp) =>
    assert.throws(
      () => collate(list, 'causal_lm', 0),
      (e: unknown) => e instanceof DataError && re.test((e as Error).message),
    );
  bad(
    [ex(0), ex()],
    /Example\.condition: is set on some examples of a batch and not on others \(got "1 of 2"\)/,
  );
  bad([ex(-1), ex(1.5)], /must be a non-negative integer condition id \(got \[-1, 1\.5\]\)/);
  bad([ex(0), ex([1, 2])], /all condition ids or all condition vectors of one length/);
  bad([ex([1, 2]), ex([1])], /all condition ids or all condition vectors of one length/);
  bad([ex([1, NaN])], /finite numbers/);
  assert.equal(tf.memory().numTensors, n0, 'a refused batch leaves no tensors');
  const b = collate([ex(1), ex(0)], 'causal_lm', 0);
  assert.deepEqual(Array.from(b.condition!.dataSync()), [1, 0]);
  tf.dispose(Object.values(b));
});

test('HyperLoraModel.forward reads inputs.condition (ids or vectors) exactly as the condition argument', () => {
  const hyper = hyperOn(llama());
  perturb(hyper);
  const x = tf.tensor2d(
    [
      [1, 5, 7, 2],
      [3, 4, 8, 8],
      [2, 2, 9, 1],
    ],
    [3, 4],
    'int32',
  );
  const cond = tf.tensor1d([2, 0, 1], 'int32');
  const n0 = tf.memory().numTensors;
  const fromInputs = values(() => hyper.forward({ inputIds: x, condition: cond }).logits);
  const fromArg = values(() => hyper.forward({ inputIds: x }, [2, 0, 1]).logits);
  assert.ok(maxDiff(fromInputs, fromArg) <= EXACT, 'inputs.condition = the id array');
  const other = values(() => hyper.forward({ inputIds: x }, [0, 0, 0]).logits);
  assert.ok(maxDiff(fromInputs, other) > 1e-3, 'the condition changes the outputs (the check can fail)');
  assert.equal(tf.memory().numTensors, n0, 'no leaks');
  assert.throws(
    () => hyper.forward({ inputIds: x }),
    (e: unknown) =>
      e instanceof ConfigError && /needs the condition of every batch row/.test((e as Error).message),
  );
  const wrong = tf.tensor1d([0, 1], 'int32');
  assert.throws(
    () => hyper.forward({ inputIds: x, condition: wrong }),
    /one condition per batch row \(3 rows\) \(got 2\)/,
  );
  const floats = tf.tensor1d([0, 1, 2], 'float32');
  assert.throws(
    () => hyper.forward({ inputIds: x, condition: floats }),
    /int32 \[N\] tensor of condition ids \(or an array of ids\) \(got "float32 \[3\]"\)/,
  );
  tf.dispose([wrong, floats]);
  hyper.dispose();

  const byVector = new HyperLoraModel(
    llama(),
    new HyperLoraConfig({
      targetModules: ['q_proj'],
      r: 2,
      conditionType: 'vector',
      conditionDim: 2,
      hiddenDim: 8,
    }),
  );
  perturb(byVector);
  const v = tf.tensor2d([
    [1, 0],
    [0, 1],
    [0.5, -1],
  ]);
  const a = values(() => byVector.forward({ inputIds: x, condition: v }).logits);
  const b = values(() => byVector.forward({ inputIds: x }, v).logits);
  assert.ok(maxDiff(a, b) <= EXACT);
  byVector.dispose();
  tf.dispose([x, cond, v]);
});

test('the Trainer trains a HyperLoRA model from examples with conditions; resume is exact; evaluate uses each row condition', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-hyper-cond-'));
  const data = lmExamples();
  const opts = {
    task: 'causal_lm' as const,
    train: data,
    eval: data.slice(0, 6),
    padTokenId: 0,
    lr: 0.02,
    maxSteps: 6,
    batchSize: 4,
    seed: 3,
    saveEvery: 3,
  };
  const weights = (h: HyperLoraModel) => h.trainableParameters().map(([, p]) => Array.from(p.dataSync()));
  const n0 = tf.memory().numTensors;

  const full = hyperOn(llama());
  const losses: number[] = [];
  const t1 = new Trainer(
    full,
    { ...opts, outputDir: path.join(dir, 'full') },
    { onStep: (l) => losses.push(l.loss) },
  );
  const s1 = await t1.train();
  t1.dispose();
  assert.equal(s1.steps, 6);
  assert.ok(losses.at(-1)! < losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
  const want = weights(full);

  // interrupted after step 3, resumed in a fresh process-like setup: the same bytes
  const first = hyperOn(llama());
  const t2 = new Trainer(
    first,
    { ...opts, outputDir: path.join(dir, 'split') },
    { betweenSteps: (s) => Promise.resolve(s < 3) },
  );
  await t2.train();
  t2.dispose();
  first.dispose();
  const again = hyperOn(llama());
  const t3 = new Trainer(again, { ...opts, outputDir: path.join(dir, 'split') });
  const s3 = await t3.train({ resume: true });
  t3.dispose();
  assert.equal(s3.resumedFrom, 3);
  assert.deepEqual(weights(again), want, 'resumed run = uninterrupted run');

  // evaluate: a mixed set's loss is the token-weighted mean of its conditions' losses
  full.eval();
  const r = await evaluate(full, data, 'causal_lm', 'causal_lm', 5, 0);
  const per = await Promise.all(
    [0, 1, 2].map((k) =>
      evaluate(
        full,
        data.filter((e) => e.condition === k),
        'causal_lm',
        'causal_lm',
        5,
        0,
      ),
    ),
  );
  const mean = per.reduce((s, p) => s + p.loss * p.count, 0) / per.reduce((s, p) => s + p.count, 0);
  // float32 losses averaged in other groupings
  assert.ok(Math.abs(r.loss - mean) < 1e-5, `${r.loss} vs ${mean}`);
  assert.ok(Math.abs(per[0]!.loss - per[1]!.loss) > 1e-4, 'conditions give different losses');
  // ... and equals the forward with the id array
  const direct = tf.tidy(() => {
    const b = collate(data.slice(0, 3), 'causal_lm', 0);
    const out = full.forward({ inputIds: b.inputIds, labels: b.labels }, [0, 1, 2]).loss!;
    return out.dataSync()[0]!;
  });
  const viaEval = await evaluate(full, data.slice(0, 3), 'causal_lm', 'causal_lm', 3, 0);
  assert.ok(Math.abs(direct - viaEval.loss) < 1e-6, `${direct} vs ${viaEval.loss}`);
  full.dispose();
  again.dispose();
  assert.equal(tf.memory().numTensors, n0, 'training, resume and evaluation leak no tensors');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('token-type ids reach a BERT base model next to the condition (the old path dropped them)', () => {
  manualSeed(9);
  const bert = modelFromConfig(
    {
      model_type: 'bert',
      vocab_size: 40,
      hidden_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      intermediate_size: 32,
      max_position_embeddings: 16,
      type_vocab_size: 2,
      hidden_dropout_prob: 0,
      attention_probs_dropout_prob: 0,
    },
    { task: 'SEQ_CLS', numLabels: 2 },
  );
  const hyper = new HyperLoraModel(
    bert,
    new HyperLoraConfig({ targetModules: ['query', 'value'], r: 2, numConditions: 2, hiddenDim: 8 }),
  );
  perturb(hyper);
  hyper.eval();
  const pair: Example[] = [
    { inputIds: [2, 5, 6, 3, 7, 8, 3], tokenTypeIds: [0, 0, 0, 0, 1, 1, 1], label: 1, condition: 1 },
    { inputIds: [2, 9, 3, 4, 4, 3, 0], tokenTypeIds: [0, 0, 0, 1, 1, 1, 1], label: 0, condition: 0 },
  ];
  const b = collate(pair, 'classification', 0);
  const viaBatch = values(() => hyper.forward(b).logits);
  const explicit = values(
    () =>
      hyper.forward(
        { inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds },
        [1, 0],
      ).logits,
  );
  assert.ok(maxDiff(viaBatch, explicit) <= EXACT, 'the batch = the same inputs with the condition argument');
  const withoutTypes = values(
    () => hyper.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask }, [1, 0]).logits,
  );
  assert.ok(maxDiff(viaBatch, withoutTypes) > 1e-4, 'segment ids change BERT outputs: they were used');
  tf.dispose(Object.values(b));
  hyper.dispose();
});

test('HyperLoRA training, evaluation and save never read a tensor synchronously (GPU backends)', async () => {
  const hyper = hyperOn(llama());
  const { losses, dir } = await trainWithoutSyncReads(hyper, {
    task: 'causal_lm',
    train: lmExamples(),
    eval: lmExamples().slice(0, 5),
    maxSteps: 4,
    seed: 2,
    evalEvery: 2,
    saveAdapter: (d) => hyper.savePretrained(d),
  });
  assert.equal(losses.length, 4);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(fs.existsSync(path.join(dir, 'adapter', 'hyperlora_model.safetensors')));
  hyper.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
