import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { assertNoLeak } from '../tensor/memory.js';
import { ShapeError, ConfigError } from '../errors.js';
import { Module } from './module.js';
import { Linear } from './layers.js';
import { manualSeed } from './init.js';
import { isLinearLike } from './linear_like.js';
import { Linear4bit, quantizeModel } from './linear4bit.js';
import { memoryByCategory } from './memory_report.js';
import { dequantize4bit } from '../tensor/quant/index.js';

// Same dequantised weight through two matmul paths (fused vs plain): summation order only.
const OUT_ATOL = 1e-6;
// NF4 nearest-code rounding: worst element error is half the largest code gap (−1.0 to −0.696:
// 0.152) times the block absmax.
const NF4_MAX_REL_TO_ABSMAX = 0.16;

class TwoLayer extends Module {
  declare fc1: Linear;
  declare head: Linear;
  constructor() {
    super();
    this.registerModule('fc1', new Linear(128, 96));
    this.registerModule('head', new Linear(96, 8));
  }
  outputModuleNames(): string[] {
    return ['head'];
  }
}

test('Linear4bit.fromLinear: output equals a dense layer over the dequantised weight; error bounded', async () => {
  manualSeed(1);
  const dense = new Linear(128, 96);
  const q = Linear4bit.fromLinear(dense, { quantType: 'nf4', doubleQuant: true });
  assert.ok(isLinearLike(q));
  const x = tf.randomNormal([3, 5, 128], 0, 1, 'float32', 7);
  await assertNoLeak(() => {
    const diff = tf.tidy(() => {
      const w = q.denseWeight();
      const ref = tf.add(tf.matMul(x.reshape([-1, 128]), w, false, true), q.bias!).reshape([3, 5, 96]);
      return q.forward(x).sub(ref).abs().max().dataSync()[0]!;
    });
    assert.ok(diff <= OUT_ATOL, `diff ${diff}`);
  });
  const w = dense.weight.dataSync();
  const back = dequantize4bit(q.quant);
  for (let b = 0; b < w.length / 64; b++) {
    let absmax = 0;
    for (let i = b * 64; i < (b + 1) * 64; i++) absmax = Math.max(absmax, Math.abs(w[i]!));
    for (let i = b * 64; i < (b + 1) * 64; i++)
      assert.ok(Math.abs(back[i]! - w[i]!) <= NF4_MAX_REL_TO_ABSMAX * absmax * 1.01);
  }
  assert.equal(q.bias, dense.bias, 'the bias variable moves over');
  x.dispose();
  q.dispose();
  dense.weight.dispose();
});

test('Linear4bit: fan-in-fan-out weights are transposed; setDenseWeight re-quantises; shapes checked', () => {
  manualSeed(2);
  const conv1d = new Linear(64, 32, { fanInFanOut: true }); // weight [64, 32]
  const q = Linear4bit.fromLinear(conv1d);
  assert.equal(q.fanInFanOut, false);
  const x = tf.randomNormal([4, 64], 0, 1, 'float32', 3);
  const diff = tf.tidy(() => {
    const ref = tf.add(tf.matMul(x, q.denseWeight(), false, true), q.bias!);
    return q.forward(x).sub(ref).abs().max().dataSync()[0]!;
  });
  assert.ok(diff <= OUT_ATOL);
  // dequantise → quantise reproduces the same codes (each value sits exactly on its code·absmax)
  const before = q.quant.packed.slice();
  tf.tidy(() => q.setDenseWeight(q.denseWeight()));
  assert.deepEqual(q.quant.packed, before);
  assert.throws(() => tf.tidy(() => q.setDenseWeight(tf.zeros([64, 32]))), ShapeError);
  x.dispose();
  q.dispose();
});

test('quantizeModel: heads stay dense, bytes held ≤ 0.135× fp32, no tensor left behind', async () => {
  manualSeed(3);
  const model = new TwoLayer();
  const before = tf.memory().numTensors;
  const report = quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
  assert.deepEqual(report, { quantized: ['fc1'], skipped: ['head'] });
  assert.ok(model.fc1 instanceof Linear4bit);
  assert.ok(model.head instanceof Linear);
  assert.equal(tf.memory().numTensors, before - 1, 'the dense fc1 weight is freed');
  const mem = memoryByCategory(model);
  const QLORA_BUDGET = 0.135; // issue 5: ≈ 4.127/32 = 0.129 plus the per-tensor offset
  assert.ok(mem.frozenQuantized / mem.frozenQuantizedFp32 <= QLORA_BUDGET, JSON.stringify(mem));
  assert.equal(mem.frozenQuantizedFp32, 128 * 96 * 4);
  assert.throws(() => quantizeModel(new (class extends Module {})()), ConfigError);
  model.dispose();
});
