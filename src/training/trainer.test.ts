import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { Trainer, TrainingError } from './trainer.js';
import { ToyModel } from '../testing/toy_model.js';
import type { Example } from './data/dataset.js';
import type { StepHook } from './types.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));

/** Label = whether token 1 appears: learnable by a bag of embeddings. */
function toyData(n: number, seed: number): Example[] {
  let s = seed;
  const r = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, () => {
    const len = 3 + Math.floor(r() * 4);
    const ids = Array.from({ length: len }, () => 2 + Math.floor(r() * 14));
    const label = r() < 0.5 ? 1 : 0;
    if (label) ids[Math.floor(r() * len)] = 1;
    return { inputIds: ids, label };
  });
}
const train = toyData(96, 1);
const dev = toyData(32, 2);
const base = {
  task: 'classification' as const,
  train,
  eval: dev,
  padTokenId: 0,
  lr: 0.05,
  maxSteps: 40,
  batchSize: 8,
  seed: 3,
  maxGradNorm: 1,
  warmupSteps: 2,
};

test('trains: eval accuracy rises, loss falls, tensor count flat across 120 steps', async () => {
  manualSeed(0);
  const model = new ToyModel(16, 8, 2);
  const counts: number[] = [];
  const trainer = new Trainer(
    model,
    { ...base, maxSteps: 120, evalEvery: 60 },
    { onStep: (l) => l.step % 20 === 0 && counts.push(tf.memory().numTensors) },
  );
  const before = await trainer.evaluate();
  const s = await trainer.train();
  assert.ok(
    s.lastEval!.metrics.accuracy! >= 0.9,
    `accuracy ${s.lastEval!.metrics.accuracy} (before ${before.metrics.accuracy})`,
  );
  assert.ok(s.lastEval!.loss < before.loss * 0.5, `${s.lastEval!.loss} vs ${before.loss}`);
  assert.ok(
    counts.every((c) => c === counts[0]),
    `tensor counts ${counts}`,
  );
  trainer.dispose();
  model.dispose();
});

test('interrupted + resumed run ends byte-identical to an uninterrupted one (with grad accumulation and a step hook)', async () => {
  const hookCalls: number[] = [];
  // A stateful hook: keeps an EMA of the head gradient (like AdaLoRA's importance), checkpointed.
  const makeHook = (): StepHook & { ema?: tf.Variable } => {
    const h: StepHook & { ema?: tf.Variable } = {
      afterOptimizerStep(step, grads) {
        hookCalls.push(step);
        const g = grads.get('head.weight')!;
        if (!h.ema) h.ema = tf.variable(tf.zerosLike(g), false);
        h.ema.assign(tf.tidy(() => h.ema!.mul(0.9).add(g.abs().mul(0.1))));
        return { budget: 100 - step };
      },
      stateTensors: () => new Map<string, Tensor>(h.ema ? [['ema', h.ema]] : []),
      stateJson: () => ({ calls: hookCalls.length }),
      loadState(t) {
        const e = t.get('ema');
        if (e) h.ema = tf.variable(e.clone(), false);
      },
    };
    return h;
  };
  const opts = { ...base, maxSteps: 12, gradientAccumulationSteps: 2, evalEvery: 5, saveEvery: 3 };
  const full = tmp();
  manualSeed(7);
  const m1 = new ToyModel(16, 8, 2);
  const t1 = new Trainer(m1, { ...opts, outputDir: full, stepHook: makeHook() });
  await t1.train();
  assert.deepEqual(hookCalls, [...Array(12).keys()]); // 0-based, once per optimizer step
  t1.dispose();
  m1.dispose();

  for (const stopAt of [4, 7]) {
    const part = tmp();
    manualSeed(7);
    const m2 = new ToyModel(16, 8, 2);
    const t2 = new Trainer(
      m2,
      { ...opts, outputDir: part, stepHook: makeHook() },
      { onStep: (l) => l.step === stopAt && t2.requestStop() },
    );
    await t2.train();
    assert.equal(t2.globalStep, stopAt);
    t2.dispose();
    m2.dispose();
    manualSeed(12345); // a fresh process would init differently: resume must not depend on it
    const m3 = new ToyModel(16, 8, 2);
    const t3 = new Trainer(m3, { ...opts, outputDir: part, stepHook: makeHook() });
    const s3 = await t3.train({ resume: true });
    assert.equal(s3.resumedFrom, stopAt);
    const a = fs.readFileSync(path.join(full, 'adapter', 'model.safetensors'));
    const b = fs.readFileSync(path.join(part, 'adapter', 'model.safetensors'));
    assert.ok(a.equals(b), `adapter bytes differ after resuming at ${stopAt}`);
    t3.dispose();
    m3.dispose();
  }
});

test('resume refuses a checkpoint from different options', async () => {
  const dir = tmp();
  manualSeed(1);
  const m = new ToyModel(16, 8, 2);
  const t = new Trainer(m, { ...base, maxSteps: 2, outputDir: dir });
  await t.train();
  t.dispose();
  const t2 = new Trainer(m, { ...base, maxSteps: 2, lr: 0.1, outputDir: dir });
  await assert.rejects(t2.train({ resume: true }), /different training options/);
  t2.dispose();
  m.dispose();
});

test('non-finite loss: steps are skipped and reported, training stops after N in a row', async () => {
  manualSeed(2);
  const m = new ToyModel(16, 8, 2);
  const skips: number[] = [];
  const t = new Trainer(
    m,
    { ...base, maxSteps: 20, maxNonFinite: 3 },
    { onSkip: (s) => skips.push(s.step), onStep: (l) => l.step === 2 && (m.poison = true) },
  );
  const w0 = m.head.weight.arraySync();
  await assert.rejects(
    t.train(),
    (e: Error) => e instanceof TrainingError && /non-finite 3 steps in a row/.test(e.message),
  );
  assert.deepEqual(skips, [2, 3, 4]);
  assert.notDeepEqual(m.head.weight.arraySync(), w0); // the 2 good steps updated
  t.dispose();
  m.dispose();
});

test('AdaLoRA models get updateAndAllocate after every step without a hook being passed', async () => {
  const { getPeftModel } = await import('../tuners/peft_model.js');
  const { AdaLoraConfig } = await import('../tuners/adalora/index.js');
  manualSeed(5);
  const peft = getPeftModel(
    new ToyModel(16, 8, 2),
    new AdaLoraConfig({
      targetModules: ['head'],
      initR: 4,
      targetR: 2,
      totalStep: 12,
      tinit: 2,
      tfinal: 4,
      deltaT: 2,
    }),
  );
  const budgets: (number | undefined)[] = [];
  const events: string[] = [];
  const trainer = new Trainer(
    peft,
    { ...base, maxSteps: 12 },
    {
      onStep: (l) => {
        budgets.push(l.budget);
        events.push(`step ${l.step}`);
      },
      onAllocation: (step, a) => events.push(`alloc ${step}${a.newPattern ? ' new' : ''}`),
    },
  );
  await trainer.train();
  // onAllocation (0-based step) comes before that step's onStep; a new pattern is computed in the
  // budgeting phase (steps tinit..7) and at the freeze step (totalStep − tfinal = 8), never after
  assert.deepEqual(
    events.filter((_, i) => i % 2 === 1),
    Array.from({ length: 12 }, (_, i) => `step ${i + 1}`),
  );
  const allocs = events.filter((_, i) => i % 2 === 0);
  assert.deepEqual(
    allocs.map((e) => Number(e.split(' ')[1])),
    Array.from({ length: 12 }, (_, i) => i),
  );
  const fresh = allocs.filter((e) => e.endsWith(' new')).map((e) => Number(e.split(' ')[1]));
  assert.ok(fresh.includes(8) && fresh.every((s) => s >= 2 && s <= 8) && fresh.length >= 2, `${fresh}`);
  assert.equal(budgets[0], 4, 'step 0: the full initial budget');
  assert.equal(budgets[11], 2, 'final phase: the target budget');
  const config = peft.peftConfig.get('default') as InstanceType<typeof AdaLoraConfig>;
  const pattern = config.rankPattern as Record<string, boolean[]>;
  assert.deepEqual(
    Object.values(pattern).map((m) => m.filter(Boolean).length),
    [2],
  );
  trainer.dispose();
  peft.dispose();

  // stepHook: null opts out (the SVD-LoRA ablation trains the triplet form with no allocation)
  manualSeed(5);
  const plain = getPeftModel(
    new ToyModel(16, 8, 2),
    new AdaLoraConfig({
      targetModules: ['head'],
      initR: 4,
      targetR: 2,
      totalStep: 12,
      tinit: 2,
      tfinal: 4,
      deltaT: 2,
    }),
  );
  const none: (number | undefined)[] = [];
  const t2 = new Trainer(
    plain,
    { ...base, maxSteps: 4, stepHook: null },
    { onStep: (l) => none.push(l.budget) },
  );
  await t2.train();
  assert.deepEqual(none, [undefined, undefined, undefined, undefined]);
  t2.dispose();
  plain.dispose();
});

test('shuffle: false takes the training examples in the given order, epoch after epoch', async () => {
  manualSeed(0);
  const model = new ToyModel(16, 8, 2);
  const firsts: number[][] = [];
  const forward = model.forward.bind(model);
  model.forward = (inputs) => {
    firsts.push((inputs.inputIds.arraySync() as number[][]).map((row) => row[0]!));
    return forward(inputs);
  };
  const examples = Array.from({ length: 6 }, (_, i) => ({ inputIds: [i + 1, 2, 3], label: i % 2 }));
  const trainer = new Trainer(model, {
    ...base,
    train: examples,
    eval: undefined,
    batchSize: 2,
    maxSteps: 4,
    shuffle: false,
  });
  await trainer.train();
  assert.deepEqual(firsts, [
    [1, 2],
    [3, 4],
    [5, 6],
    [1, 2],
  ]);
  trainer.dispose();
  tf.dispose(model.parameters());
});

test('betweenSteps: awaited after every step with the step count; a pause holds the loop; false stops with a checkpoint', async () => {
  manualSeed(0);
  const dir = tmp();
  const model = new ToyModel(16, 8, 2);
  const seen: number[] = [];
  let release: () => void = () => {};
  let paused = false;
  const trainer = new Trainer(
    model,
    { ...base, maxSteps: 10, outputDir: dir, saveEvery: 0 },
    {
      onStep: (l) => l.step === 3 && (step3 = { elapsed: l.elapsedMs, wall: Date.now() - start }),
      betweenSteps: async (step) => {
        seen.push(step);
        if (step === 2) {
          paused = true;
          const h = Date.now();
          await new Promise<void>((r) => (release = r));
          held = Date.now() - h;
          paused = false;
        }
        return step < 4;
      },
    },
  );
  let step3 = { elapsed: NaN, wall: NaN };
  let held = 0;
  const start = Date.now();
  const run = trainer.train();
  // while paused at step 2 no further step runs
  while (!paused) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, [1, 2]);
  release();
  const s = await run;
  assert.equal(s.steps, 4);
  assert.deepEqual(seen, [1, 2, 3, 4]);
  // the pause is not training time
  assert.ok(held >= 50 && step3.elapsed <= step3.wall - held, `${JSON.stringify(step3)}, held ${held}`);
  // the stop wrote the step's checkpoint, so the run can resume from it
  assert.deepEqual(fs.readdirSync(path.join(dir, 'checkpoints')), ['step-000004']);
  trainer.dispose();
  tf.dispose(model.parameters());
});
