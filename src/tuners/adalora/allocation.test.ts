import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { ConfigError } from '../../errors.js';
import { SVDLinear } from './layer.js';
import { AdaLoraConfig } from './config.js';
import { AdaLoraAllocation, type AllocationStep } from './allocation.js';
import { orthRegularizer } from './orth_reg.js';
import { readFileSync } from 'node:fs';

const LR = 0.5;

class Net extends Module {
  declare q: SVDLinear;
  declare k: SVDLinear;
  declare v: SVDLinear;
  constructor(r: number) {
    super();
    const o = { r, loraAlpha: r, loraDropout: 0, initLoraWeights: true };
    for (const n of ['q', 'k', 'v']) this.registerModule(n, new SVDLinear(new Linear(6, 5), 'default', o));
    for (const [n, p] of this.namedParameters()) if (n.includes('base_layer')) p.trainable = false;
  }
  forward(x: Tensor): Tensor {
    return tf.tidy(() => tf.concat([this.q.forward(x), this.k.forward(x), this.v.forward(x)], -1));
  }
}

/** One SGD step on an MSE loss; returns the gradients (caller disposes). */
function sgdStep(net: Net, x: Tensor, y: Tensor): tf.NamedTensorMap {
  const vars = net.trainableParameters().map(([, p]) => p);
  const { value, grads } = tf.variableGrads(
    () => tf.losses.meanSquaredError(y, net.forward(x)) as tf.Scalar,
    vars,
  );
  value.dispose();
  tf.tidy(() => vars.forEach((v) => v.assign(tf.sub(v, tf.mul(grads[v.name]!, LR)))));
  return grads;
}

const eOf = (net: Net, n: 'q' | 'k' | 'v') => Array.from(net[n].lora_E.get('default')!.dataSync());

test('three phases around totalStep − tfinal on a tiny net: schedule, masks, frozen pattern, no leaks', () => {
  manualSeed(21);
  const net = new Net(4);
  const config = new AdaLoraConfig({ initR: 4, targetR: 2, tinit: 3, tfinal: 4, totalStep: 20, deltaT: 2 });
  const alloc = new AdaLoraAllocation(net, config, 'default');
  assert.equal(alloc.allocator.initBgt, 12);
  assert.equal(alloc.allocator.targetBgt, 6);
  const x = tf.randomNormal([16, 6], 0, 1, 'float32', 1);
  // Targets: q's outputs must move a lot, k's a little, v's not at all → unequal importance.
  const y = tf.tidy(() => {
    const shift = tf.concat(
      [
        tf.randomNormal([16, 5], 0, 2, 'float32', 2),
        tf.randomNormal([16, 5], 0, 0.2, 'float32', 3),
        tf.zeros([16, 5]),
      ],
      -1,
    );
    return tf.add(net.forward(x), shift);
  });
  const log: AllocationStep[] = [];
  const before = tf.memory().numTensors;
  for (let step = 0; step < config.totalStep; step++) {
    const grads = sgdStep(net, x, y);
    const r = alloc.updateAndAllocate(step, grads); // the variableGrads map (tfjs variable names) as is
    Object.values(grads).forEach((g) => g.dispose());
    log.push(r);
    if (r.masked) {
      for (const n of ['q', 'k', 'v'] as const) {
        const kept = config.pattern![`${n}.lora_E.default`]!;
        eOf(net, n).forEach((e, i) =>
          assert.ok(kept[i] || e === 0, `step ${step}: pruned ${n}[${i}] must be 0`),
        );
      }
    }
    if (step === 10)
      assert.equal(
        tf.memory().numTensors - before,
        27,
        'after the first step only the 3 statistics × 9 tracked parameters stay',
      );
  }
  // Phases and mask steps: budgeting 0..15 masks at even steps after tinit; 16 freeze; 17..19 final.
  assert.deepEqual(
    log.map((l) => l.phase),
    [...Array(16).fill('budgeting'), 'freeze', 'final', 'final', 'final'],
  );
  assert.deepEqual(
    log.filter((l) => l.masked).map((l) => l.step),
    [4, 6, 8, 10, 12, 14, 16, 17, 18, 19],
  );
  for (const l of log.slice(0, 16)) assert.equal(l.budget, alloc.allocator.budgetSchedule(l.step).budget);
  assert.equal(log[16]!.budget, 6, 'forced mask uses the target budget');
  for (const l of log.filter((q) => q.ranks && q.phase === 'budgeting' && q.masked)) {
    const total = Object.values(l.ranks!).reduce((a, b) => a + b, 0);
    assert.ok(total <= l.budget, `step ${l.step}: kept ${total} ≤ budget ${l.budget} (ties may prune more)`);
  }
  const final = log[19]!.ranks!;
  assert.ok(Object.values(final).reduce((a, b) => a + b, 0) <= 6);
  assert.ok(
    new Set(Object.values(final)).size > 1,
    `different final ranks per module: ${JSON.stringify(final)}`,
  );
  assert.deepEqual(log[16]!.ranks, final, 'pattern frozen after totalStep − tfinal');
  assert.equal(alloc.allocator.ipt.size, 0, 'statistics reset at the freeze step');
  assert.equal(alloc.calls, 20);
  [x, y].forEach((t) => t.dispose());
  net.dispose();
});

test('final phase without any masking step is a clear ConfigError (PEFT: AttributeError, #1327)', () => {
  const net = new Net(3);
  const config = new AdaLoraConfig({ initR: 3, targetR: 1, tinit: 2, tfinal: 3, totalStep: 10 });
  const alloc = new AdaLoraAllocation(net, config, 'default');
  assert.throws(
    () => alloc.updateAndAllocate(8),
    (e: unknown) =>
      e instanceof ConfigError && /no masking step ever ran/.test(e.message) && /from step 0/.test(e.message),
  );
  assert.throws(() => alloc.updateAndAllocate(1), /needs the gradients/);
  assert.throws(() => alloc.updateAndAllocate(-1), ConfigError);
  net.dispose();
});

/** 20 SGD steps in f32 on both sides; only summation order differs (tfjs vs torch). */
const RUN_ATOL = 1e-4;

test('a 20-step AdaLoRA run matches the plain-torch reference: every mask, final pattern and parameters', () => {
  const ref = JSON.parse(
    readFileSync(new URL('../../../tests/fixtures/adalora_run.json', import.meta.url), 'utf8'),
  );
  const c = ref.config;
  assert.ok(ref.min_relative_gap > 100 * RUN_ATOL, 'reference thresholds have margins');
  class Two extends Module {
    declare l0: SVDLinear;
    declare l1: SVDLinear;
    constructor() {
      super();
      const o = { r: c.init_r, loraAlpha: c.lora_alpha, loraDropout: 0, initLoraWeights: true };
      for (const l of ['l0', 'l1'] as const) {
        const base = new Linear(5, ref.base[l].length, { bias: false });
        base.weight.assign(tf.tensor2d(ref.base[l]));
        base.weight.trainable = false;
        this.registerModule(l, new SVDLinear(base, 'default', o));
      }
    }
  }
  const net = new Two();
  for (const [n, t] of Object.entries(ref.init as Record<string, { shape: number[]; data: number[] }>)) {
    const [l, kind] = n.split('.') as ['l0' | 'l1', 'lora_A' | 'lora_B' | 'lora_E'];
    net[l][kind].get('default')!.assign(tf.tensor(t.data, t.shape));
  }
  const config = new AdaLoraConfig({
    initR: c.init_r,
    targetR: c.target_r,
    tinit: c.tinit,
    tfinal: c.tfinal,
    deltaT: c.deltaT,
    totalStep: c.total_step,
    loraAlpha: c.lora_alpha,
    orthRegWeight: c.orth_reg_weight,
    beta1: c.beta1,
    beta2: c.beta2,
  });
  const alloc = new AdaLoraAllocation(net, config, 'default');
  const x = tf.tensor2d(ref.x);
  const y = tf.tensor2d(ref.y);
  const events = new Map<number, { budget: number; rank_pattern: Record<string, boolean[]> }>(
    ref.events.map((e: any) => [e.step, e]),
  );
  for (let step = 0; step < c.total_step; step++) {
    const vars = net.trainableParameters().map(([, p]) => p);
    const { value, grads } = tf.variableGrads(() => {
      const out = tf.concat([net.l0.forward(x), net.l1.forward(x)], -1);
      const reg = orthRegularizer(net.namedParameters(), 'default');
      return tf.add(tf.mean(tf.squaredDifference(out, y)), tf.mul(reg, c.orth_reg_weight)) as tf.Scalar;
    }, vars);
    tf.tidy(() => vars.forEach((v) => v.assign(tf.sub(v, tf.mul(grads[v.name]!, c.lr)))));
    const r = alloc.updateAndAllocate(step, grads);
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    const ev = events.get(step);
    assert.equal(r.masked, ev !== undefined, `step ${step}: masked`);
    if (ev) {
      assert.equal(r.budget, ev.budget, `step ${step}: budget`);
      assert.deepEqual(config.pattern, ev.rank_pattern, `step ${step}: rank pattern`);
    }
  }
  for (const [n, expected] of Object.entries(ref.final as Record<string, number[]>)) {
    const [l, kind] = n.split('.') as ['l0' | 'l1', 'lora_A' | 'lora_B' | 'lora_E'];
    const got = Array.from(net[l][kind].get('default')!.dataSync());
    got.forEach((v, i) =>
      assert.ok(Math.abs(v - expected[i]!) <= RUN_ATOL, `${n}[${i}]: ${v} vs ${expected[i]}`),
    );
  }
  [x, y].forEach((t) => t.dispose());
  alloc.dispose();
  net.dispose();
});
