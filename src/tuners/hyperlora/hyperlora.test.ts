import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import type { PreTrainedModel } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { ConfigError, ShapeError } from '../../errors.js';
import { PeftModel } from '../peft_model.js';
import '../lora/index.js';
import { HyperLoraConfig, HyperLoraModel, HYPER_CONFIG_NAME, hyperToLora } from './index.js';
import { maxDiff } from '../../testing/compare.js';
import { TINY_LLAMA } from '../../testing/tiny_models.js';

// Same factors, products in another order (batched per-row matmul vs. LoRA's shared A, B).
const ATOL = 2e-5;

const base = (): PreTrainedModel => {
  manualSeed(21);
  return modelFromConfig(TINY_LLAMA, { task: 'CAUSAL_LM' });
};
const ids = () =>
  tf.tensor2d(
    [
      [1, 5, 7, 2, 9],
      [3, 4, 8, 8, 6],
      [2, 2, 9, 1, 0],
    ],
    [3, 5],
    'int32',
  );
const logitsOf = (f: () => { logits: Tensor }) => tf.tidy(() => f().logits.dataSync() as Float32Array);
const config = () =>
  new HyperLoraConfig({
    targetModules: ['q_proj', 'v_proj', 'down_proj'],
    r: 2,
    numConditions: 3,
    hiddenDim: 8,
  });

/** A few SGD steps on mixed-condition batches so the generated factors are non-zero and differ. */
function train(hyper: HyperLoraModel, x: Tensor, steps: number): number[] {
  const vars = hyper.trainableParameters().map(([, v]) => v);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(
      () => hyper.forward({ inputIds: x, labels: x }, [0, 1, 2]).loss as tf.Scalar,
      vars,
    );
    losses.push(value.dataSync()[0]!);
    tf.tidy(() => vars.forEach((v) => v.assign(v.sub(grads[v.name]!.mul(0.5)))));
    tf.dispose([value, ...Object.values(grads)]);
  }
  return losses;
}

test('HyperLoRA: fresh = base; only the hypernetwork trains; mixed-condition training lowers the loss without leaks', () => {
  const model = base();
  const x = ids();
  const ref = logitsOf(() => model.forward({ inputIds: x }));
  const hyper = new HyperLoraModel(model, config());
  assert.equal(hyper.targets.length, 2 * 3);
  assert.ok(
    maxDiff(
      logitsOf(() => hyper.forward({ inputIds: x }, [0, 1, 2])),
      ref,
    ) <= ATOL,
    'B heads start at zero',
  );
  const trainable = hyper.trainableParameters().map(([n]) => n);
  assert.ok(trainable.length > 0 && trainable.every((n) => n.startsWith('hypernet.')), trainable.join());
  const baseBefore = model
    .namedParameters()
    .filter(([n]) => !n.includes('hypernet'))
    .map(([, p]) => p.dataSync().slice());
  const n0 = tf.memory().numTensors;
  const losses = train(hyper, x, 8);
  assert.equal(tf.memory().numTensors, n0, 'training steps leak no tensors');
  assert.ok(losses[losses.length - 1]! < losses[0]! - 0.05, `loss ${losses[0]} → ${losses.at(-1)}`);
  model
    .namedParameters()
    .filter(([n]) => !n.includes('hypernet'))
    .forEach(([n, p], i) => assert.deepEqual(p.dataSync(), baseBefore[i], n));
  const byCond = [0, 1, 2].map((c) => logitsOf(() => hyper.forward({ inputIds: x }, [c, c, c])));
  assert.ok(maxDiff(byCond[0]!, byCond[2]!) > 1e-3, 'conditions give different adapters');
  // a mixed batch equals each row run with its own condition
  const mixed = logitsOf(() => hyper.forward({ inputIds: x }, [2, 0, 1]));
  const row = mixed.length / 3;
  [2, 0, 1].forEach((c, i) =>
    assert.ok(
      maxDiff(mixed.subarray(i * row, (i + 1) * row), byCond[c]!.subarray(i * row, (i + 1) * row)) <= ATOL,
    ),
  );
  hyper.dispose();
  x.dispose();
});

test('materialize(condition) → PEFT LoRA folder → PeftModel.fromPretrained gives the hypernetwork outputs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-hyper-'));
  const hyper = new HyperLoraModel(base(), config());
  const x = ids();
  train(hyper, x, 4);
  hyper.eval();
  for (const c of [0, 2]) {
    const want = logitsOf(() => hyper.forward({ inputIds: x }, [c, c, c]));
    await hyper.saveMaterialized(path.join(dir, `cond${c}`), c);
    const peft = await PeftModel.fromPretrained(base(), path.join(dir, `cond${c}`));
    peft.eval();
    assert.ok(
      maxDiff(
        logitsOf(() => peft.forward({ inputIds: x })),
        want,
      ) <= ATOL,
      `condition ${c}`,
    );
    peft.dispose();
  }
  // own save format round trip
  await hyper.savePretrained(path.join(dir, 'hyper'));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'hyper', HYPER_CONFIG_NAME), 'utf8'));
  assert.equal(json.peft_type, 'HYPERLORA');
  const again = await HyperLoraModel.fromPretrained(base(), path.join(dir, 'hyper'));
  again.eval();
  const a = logitsOf(() => hyper.forward({ inputIds: x }, [1, 2, 0]));
  assert.ok(
    maxDiff(
      logitsOf(() => again.forward({ inputIds: x }, [1, 2, 0])),
      a,
    ) <= ATOL,
  );
  const other = modelFromConfig({ ...TINY_LLAMA, num_hidden_layers: 1 }, { task: 'CAUSAL_LM' });
  await assert.rejects(HyperLoraModel.fromPretrained(other, path.join(dir, 'hyper')), /other target layers/);
  other.dispose();
  again.dispose();
  hyper.dispose();
  x.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('HyperLoRA with condition vectors; config and condition errors', () => {
  const hyper = new HyperLoraModel(
    base(),
    new HyperLoraConfig({ targetModules: ['q_proj'], conditionType: 'vector', conditionDim: 3, r: 2 }),
  );
  const x = ids();
  const v = tf.tensor2d([
    [1, 0, 0],
    [0, 1, 0],
    [0.5, 0.5, 1],
  ]);
  const out = logitsOf(() => hyper.forward({ inputIds: x }, v));
  assert.equal(out.length, 3 * 5 * 30);
  assert.throws(() => hyper.forward({ inputIds: x }, [0, 1, 2]), ShapeError);
  assert.throws(() => new HyperLoraConfig({ targetModules: [] }), ConfigError);
  assert.throws(
    () => new HyperLoraConfig({ targetModules: ['q_proj'], conditionType: 'id' }),
    /numConditions/,
  );
  assert.throws(
    () => new HyperLoraModel(base(), new HyperLoraConfig({ targetModules: ['nope'], numConditions: 2 })),
    /matched no linear layer/,
  );
  const byId = new HyperLoraModel(base(), config());
  assert.throws(() => byId.forward({ inputIds: x }, [0, 1, 3]), /ids must be integers/);
  assert.throws(() => byId.forward({ inputIds: x }, [0, 1]), /one condition per batch row/);
  byId.dispose();
  hyper.dispose();
  v.dispose();
  x.dispose();
});

test('conditionNames: saved, looked up by name or id, validated; hyperToLora pins one condition as a PeftModel', async () => {
  const named = () =>
    new HyperLoraConfig({
      targetModules: ['q_proj', 'v_proj'],
      r: 2,
      numConditions: 3,
      conditionNames: ['a', 'b', 'c'],
      hiddenDim: 8,
    });
  const cfg = named();
  assert.equal(cfg.conditionId('b'), 1);
  assert.equal(cfg.conditionId('2'), 2);
  assert.throws(() => cfg.conditionId('d'), /not a condition of this hypernetwork.*use one of a, b, c/);
  assert.throws(() => cfg.conditionId('3'), /not a condition/);
  assert.deepEqual(HyperLoraConfig.fromJson(cfg.toJson()).conditionNames, ['a', 'b', 'c']);
  assert.equal('condition_names' in config().toJson(), false, 'unnamed configs keep the old file');
  assert.throws(
    () => new HyperLoraConfig({ targetModules: ['q_proj'], numConditions: 2, conditionNames: ['x', 'x'] }),
    /conditionNames: must be 2 distinct non-empty names/,
  );
  const hyper = new HyperLoraModel(base(), cfg);
  const x = ids();
  train(hyper, x, 3);
  hyper.eval();
  const want = logitsOf(() => hyper.forward({ inputIds: x }, [2, 2, 2]));
  const n0 = tf.memory().numTensors;
  const lora = hyperToLora(hyper, 2);
  assert.equal(lora.trainableParameters().length, 0, 'pinned adapter is frozen');
  assert.ok(
    maxDiff(
      logitsOf(() => lora.forward({ inputIds: x })),
      want,
    ) <= ATOL,
  );
  assert.ok(tf.memory().numTensors <= n0, 'the hypernetwork is disposed, nothing new is left');
  lora.dispose();
  x.dispose();
});

test("conditioning 'film': same init as 'concat' plus a zero FiLM layer; once trained, conditions scale the hidden units", () => {
  const make = (conditioning: 'concat' | 'film') => {
    const h = new HyperLoraModel(base(), new HyperLoraConfig({ ...config(), conditioning }));
    // a non-zero B head, so outputs depend on the generated factors
    manualSeed(5);
    for (const [n, p] of h.hypernet.namedParameters())
      if (n.includes('_B.')) p.assign(tf.randomNormal(p.shape, 0, 0.1, 'float32', 3));
    return h;
  };
  const concat = make('concat');
  const film = make('film');
  const x = ids();
  const names = film.hypernet.namedParameters().map(([n]) => n);
  assert.deepEqual(
    names.filter((n) => !n.startsWith('condition_film.')),
    concat.hypernet.namedParameters().map(([n]) => n),
  );
  assert.ok(
    maxDiff(
      logitsOf(() => film.forward({ inputIds: x }, [0, 1, 2])),
      logitsOf(() => concat.forward({ inputIds: x }, [0, 1, 2])),
    ) <= ATOL,
  );
  film.hypernet.condition_film!.weight.assign(tf.randomNormal([8, 16], 0, 1, 'float32', 4));
  assert.ok(
    maxDiff(
      logitsOf(() => film.forward({ inputIds: x }, [0, 1, 2])),
      logitsOf(() => concat.forward({ inputIds: x }, [0, 1, 2])),
    ) > 1e-3,
    'FiLM weights change the outputs',
  );
  assert.throws(
    () => new HyperLoraConfig({ ...config(), conditioning: 'mul' as 'film' }),
    /conditioning: must be 'concat' or 'film'/,
  );
  concat.dispose();
  film.dispose();
  x.dispose();
});

test('sharedA: one learned A per target for every condition, only B generated; saved as shared_a', () => {
  const cfg = new HyperLoraConfig({ ...config(), sharedA: true });
  const hyper = new HyperLoraModel(base(), cfg);
  const names = hyper.hypernet.namedParameters().map(([n]) => n);
  assert.ok(!names.some((n) => /^heads\..*_A\./.test(n)), 'no A heads');
  assert.deepEqual(
    names.filter((n) => n.startsWith('shared_A.')),
    ['shared_A.down_proj', 'shared_A.q_proj', 'shared_A.v_proj'],
  );
  assert.deepEqual(hyper.hypernet.shared_A!.getParameter('down_proj')!.shape, [2, 2, 24]); // [layers, r, in]
  const x = ids();
  train(hyper, x, 3);
  const emb = hyper.hypernet.embedCondition([0, 1, 2]);
  const { A, B } = hyper.hypernet.generate(emb, 1, 'q_proj');
  const a = A.arraySync() as number[][][];
  const stored = tf.tidy(() => hyper.hypernet.shared_A!.getParameter('q_proj')!.slice([1, 0, 0], [1, 2, 16]));
  for (const row of a)
    assert.deepEqual(row, (stored.arraySync() as number[][][])[0], 'A is the stored layer-1 A');
  const b = B.arraySync() as number[][][];
  assert.ok(maxDiff(b[0]!.flat(), b[2]!.flat()) > 1e-6, 'B differs between conditions');
  assert.equal(HyperLoraConfig.fromJson(cfg.toJson()).sharedA, true);
  assert.equal(cfg.toJson().shared_a, true);
  assert.equal(new HyperLoraConfig(config()).toJson().shared_a, false);
  assert.throws(
    () => new HyperLoraConfig({ ...config(), sharedA: 'yes' as unknown as boolean }),
    /sharedA: must be true or false/,
  );
  tf.dispose([emb, A, B, stored, x]);
  hyper.dispose();
});
