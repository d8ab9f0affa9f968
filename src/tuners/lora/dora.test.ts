import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tf, type Tensor } from '../../tensor/tf.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { Linear4bit } from '../../nn/linear4bit.js';
import { ModuleDict } from '../../nn/module_dict.js';
import { ConfigError } from '../../errors.js';
import { LoraLinear } from './layer.js';
import { LoraConfig } from './config.js';
import { AdaLoraConfig } from '../adalora/config.js';
import { DoraMagnitude, MAGNITUDE_DICT } from './dora.js';

const ref = JSON.parse(
  fs.readFileSync(new URL('../../../tests/fixtures/dora_reference.json', import.meta.url), 'utf8'),
);
// f32 matmuls/norms in a different summation order than torch's (BLAS vs tfjs loops).
const RTOL = 1e-5;
const ATOL = 1e-6;

function close(got: ArrayLike<number>, want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(got[i]! - want[i]!) <= ATOL + RTOL * Math.abs(want[i]!),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

function magnitude(layer: LoraLinear, adapter = 'default'): DoraMagnitude {
  return (layer as unknown as Record<string, ModuleDict<DoraMagnitude>>)[MAGNITUDE_DICT]!.get(adapter)!;
}

/** A DoRA layer holding the reference case's tensors. */
function build(c: any): { layer: LoraLinear; x: Tensor } {
  const base = new Linear(c.in, c.out, { fanInFanOut: c.fanInFanOut });
  const layer = new LoraLinear(base, 'default', { r: c.r, loraAlpha: c.alpha, useDora: true });
  tf.tidy(() => {
    base.weight.assign(tf.tensor(c.weight, c.weightShape));
    base.bias!.assign(tf.tensor1d(c.bias));
    layer.lora_A.get('default')!.weight.assign(tf.tensor(c.A, [c.r, c.in]));
    layer.lora_B.get('default')!.weight.assign(tf.tensor(c.B, [c.out, c.r]));
  });
  // re-run the variant init now that B ≠ 0: m = ‖W + s·BA‖ (what the reference computes)
  layer.variants.get('default')!.init(layer, 'default');
  return { layer, x: tf.tensor(c.x, [4, c.in]) };
}

for (const c of ref.cases) {
  test(`DoRA vs python3-torch reference (fanInFanOut=${c.fanInFanOut}): init, forward, grads, merge, unmerge`, async () => {
    const { layer, x } = build(c);
    layer.eval();
    const m = magnitude(layer);
    close(m.weight.dataSync(), c.magnitudeInit, 'magnitude init');
    tf.tidy(() => m.weight.assign(tf.tensor1d(c.magnitude)));
    await assertNoLeak(() => {
      close(
        tf.tidy(() => layer.forward(x).dataSync()),
        c.y,
        'forward',
      );
      const A = layer.lora_A.get('default')!.weight;
      const B = layer.lora_B.get('default')!.weight;
      const { grads, value } = tf.variableGrads(
        () => layer.forward(x).square().sum() as tf.Scalar,
        [m.weight, A, B],
      );
      close(grads[m.weight.name]!.dataSync(), c.gradMagnitude, 'grad m (norm detached)');
      close(grads[A.name]!.dataSync(), c.gradA, 'grad A');
      close(grads[B.name]!.dataSync(), c.gradB, 'grad B');
      tf.dispose([value, ...Object.values(grads)]);
      layer.merge();
      close(
        tf.tidy(() => layer.base_layer.denseWeight().dataSync()),
        c.merged,
        'merged weight',
      );
      close(
        tf.tidy(() => layer.forward(x).dataSync()),
        c.yMerged,
        'merged forward',
      );
      layer.unmerge();
      close(
        tf.tidy(() => layer.base_layer.denseWeight().dataSync()),
        c.unmerged,
        'unmerged weight',
      );
    });
    assert.equal(magnitude(layer).mergedNorm, null, 'norm cache cleared by unmerge');
    layer.dispose();
    x.dispose();
  });
}

test('DoRA fresh adapter: magnitude = row norms of W, output = base output; only m, A, B train', () => {
  manualSeed(4);
  const base = new Linear(12, 6);
  const layer = new LoraLinear(base, 'default', { r: 2, loraAlpha: 4, useDora: true });
  const x = tf.randomNormal([3, 12], 0, 1, 'float32', 1);
  const diff = tf.tidy(() => layer.forward(x).sub(base.forward(x)).abs().max().dataSync()[0]!);
  assert.ok(diff <= ATOL, `fresh DoRA changes the output by ${diff}`);
  const norms = tf.tidy(() => base.weight.square().sum(1).sqrt().dataSync());
  close(magnitude(layer).weight.dataSync(), [...norms], 'row norms');
  base.weight.trainable = false;
  base.bias!.trainable = false;
  const names = layer
    .trainableParameters()
    .map(([n]) => n)
    .sort();
  assert.deepEqual(names, [
    'lora_A.default.weight',
    'lora_B.default.weight',
    'lora_magnitude_vector.default.weight',
  ]);
  layer.dispose();
  x.dispose();
});

test('DoRA with dropout in training uses x·Wᵀ on the dropped-out input (PEFT dora.py)', () => {
  manualSeed(5);
  const base = new Linear(10, 4);
  const layer = new LoraLinear(base, 'default', { r: 2, loraAlpha: 2, loraDropout: 0.5, useDora: true });
  tf.tidy(() => layer.lora_B.get('default')!.weight.assign(tf.randomNormal([4, 2], 0, 0.3, 'float32', 2)));
  tf.tidy(() => magnitude(layer).weight.assign(tf.tensor1d([1, 2, 0.5, 1.5])));
  const x = tf.randomNormal([3, 10], 0, 1, 'float32', 3);
  layer.train();
  manualSeed(99);
  const y = tf.tidy(() => layer.forward(x).dataSync());
  manualSeed(99); // same mask again, by hand
  const expected = tf.tidy(() => {
    const xd = layer.lora_dropout.get('default')!.forward(x);
    const w = base.weight;
    const A = layer.lora_A.get('default')!.weight;
    const B = layer.lora_B.get('default')!.weight;
    const n = w.add(tf.matMul(B, A).mul(1)).square().sum(1).sqrt();
    const f = magnitude(layer).weight.div(n);
    const result = base.forward(x);
    const dropped = tf.matMul(xd, w, false, true);
    const lora = tf.matMul(tf.matMul(xd, A, false, true), B, false, true);
    return result.add(f.sub(1).mul(dropped)).add(f.mul(lora)).dataSync();
  });
  close(y, [...expected], 'dropout path');
  layer.eval(); // eval: dropout off → reuse-result path equals f·(Wx + s·BAx) + b
  const evalOut = tf.tidy(() => layer.forward(x).dataSync());
  const evalRef = tf.tidy(() => {
    const w = base.weight;
    const ba = tf.matMul(layer.lora_B.get('default')!.weight, layer.lora_A.get('default')!.weight);
    const f = magnitude(layer).weight.div(w.add(ba).square().sum(1).sqrt());
    return tf.matMul(x, w.add(ba), false, true).mul(f).add(base.bias!).dataSync();
  });
  close(evalOut, [...evalRef], 'eval path');
  layer.dispose();
  x.dispose();
});

test('DoRA over a 4-bit base: magnitude from the dequantised weight; merge re-quantises', () => {
  manualSeed(6);
  const q = Linear4bit.fromLinear(new Linear(64, 8), { quantType: 'nf4' });
  const layer = new LoraLinear(q, 'default', { r: 2, loraAlpha: 2, useDora: true });
  const norms = tf.tidy(() => q.denseWeight().square().sum(1).sqrt().dataSync());
  close(magnitude(layer).weight.dataSync(), [...norms], 'row norms of the dequantised weight');
  tf.tidy(() => layer.lora_B.get('default')!.weight.assign(tf.randomNormal([8, 2], 0, 0.2, 'float32', 4)));
  magnitude(layer).weight.assign(tf.tidy(() => magnitude(layer).weight.mul(1.1)));
  const x = tf.randomNormal([2, 64], 0, 1, 'float32', 5);
  const before = tf.tidy(() => layer.forward(x).dataSync());
  const oldCodes = q.quant.packed;
  layer.merge();
  assert.notEqual(q.quant.packed, oldCodes, 'merge wrote a new 4-bit weight');
  const after = tf.tidy(() => layer.forward(x).dataSync());
  // re-quantising adds NF4 rounding: ≤ 0.152·absmax (≈ 0.03 here) per weight, random-signed over 64 inputs
  const REQUANT_ATOL = 0.5;
  before.forEach((v, i) => assert.ok(Math.abs(v - after[i]!) < REQUANT_ATOL, `${v} vs ${after[i]}`));
  layer.dispose();
  x.dispose();
});

test('DoRA is rejected with lora_bias and with AdaLoRA (clear ConfigErrors)', () => {
  assert.throws(
    () => new LoraConfig({ useDora: true, loraBias: true }),
    (e: unknown) => e instanceof ConfigError && /useDora/.test(String(e)),
  );
  assert.throws(
    () => new AdaLoraConfig({ useDora: true, totalStep: 10 }),
    (e: unknown) => e instanceof ConfigError && /DoRA/.test(String(e)),
  );
  assert.throws(
    () => new LoraLinear(new Linear(4, 4), 'default', { r: 2, loraAlpha: 2, useDora: true, loraBias: true }),
    ConfigError,
  );
});
