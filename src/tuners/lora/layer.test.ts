/** LoRA layers on hand-checked numbers (PEFT lora/layer.py forward, scaling, delta, embedding). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../tensor/tf.js';
import { Embedding, Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { LoraLinear } from './layer.js';
import { LoraEmbedding } from './embedding.js';
import { maxDiff } from '../../testing/compare.js';

/** Small integer-valued products in float32 are exact. */
const EXACT = 0;

function linear(w: number[][], fanInFanOut = false): Linear {
  const out = w.length;
  const inF = w[0]!.length;
  const l = new Linear(inF, out, { bias: false, fanInFanOut });
  const t = tf.tensor2d(w);
  l.weight.assign(fanInFanOut ? t.transpose() : t);
  t.dispose();
  return l;
}
const set = (v: tf.Variable, x: number[][]) => {
  const t = tf.tensor2d(x);
  v.assign(t);
  t.dispose();
};
function run(layer: { forward(x: tf.Tensor): tf.Tensor }, x: number[][]): number[] {
  return tf.tidy(() => Array.from(layer.forward(tf.tensor2d(x)).dataSync()));
}
const W = [
  [1, 0],
  [0, 1],
  [1, -1],
]; // [out 3, in 2]

test('forward = base(x) + B(A(x))·alpha/r; rsLoRA uses alpha/√r; fanInFanOut gives the same result', () => {
  for (const fanInFanOut of [false, true]) {
    const layer = new LoraLinear(linear(W, fanInFanOut), 'default', { r: 2, loraAlpha: 4 });
    assert.equal(layer.scaling.get('default'), 2);
    assert.deepEqual(run(layer, [[1, 2]]), [1, 2, -1]); // B = 0 at init
    set(layer.lora_A.get('default')!.weight, [
      [1, 0],
      [0, 1],
    ]);
    set(layer.lora_B.get('default')!.weight, [
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    assert.deepEqual(run(layer, [[1, 2]]), [1 + 2, 2 + 4, -1 + 6]);
    const delta = layer.getDeltaWeight('default');
    assert.deepEqual(delta.shape, fanInFanOut ? [2, 3] : [3, 2]);
    delta.dispose();
    layer.dispose();
  }
  const rs = new LoraLinear(linear(W), 'default', { r: 4, loraAlpha: 4, useRslora: true });
  assert.equal(rs.scaling.get('default'), 2);
  rs.setScale('default', 0.5);
  assert.equal(rs.scaling.get('default'), 1);
  rs.dispose();
});

test('two active adapters add up; merge of both equals the unmerged sum; delete frees tensors', () => {
  const layer = new LoraLinear(linear(W), 'a', { r: 1, loraAlpha: 1 });
  layer.updateLayer('b', { r: 1, loraAlpha: 2 });
  set(layer.lora_A.get('a')!.weight, [[1, 1]]);
  set(layer.lora_B.get('a')!.weight, [[1], [0], [0]]);
  set(layer.lora_A.get('b')!.weight, [[0, 1]]);
  set(layer.lora_B.get('b')!.weight, [[0], [1], [0]]);
  assert.deepEqual(run(layer, [[1, 2]]), [1 + 3, 2, -1]); // only "a" is active
  layer.setAdapter(['a', 'b']);
  const both = run(layer, [[1, 2]]);
  assert.deepEqual(both, [4, 2 + 2 * 2, -1]);
  layer.merge();
  assert.deepEqual(layer.mergedAdapters, ['a', 'b']);
  assert.equal(maxDiff(run(layer, [[1, 2]]), both), EXACT);
  layer.unmerge();
  assert.deepEqual(Array.from((layer.base_layer as Linear).weight.dataSync()), W.flat());
  assert.throws(() => (layer.merge({ adapterNames: ['b'] }), layer.deleteAdapter('b')), /unmerge\(\) first/);
  layer.unmerge();
  const n0 = tf.memory().numTensors;
  layer.deleteAdapter('b');
  assert.equal(tf.memory().numTensors, n0 - 2);
  assert.deepEqual(layer.activeAdapterNames, ['a']);
  layer.dispose();
});

test('dropout acts on the adapter branch in training only; forward leaves no tensors', () => {
  manualSeed(4);
  const layer = new LoraLinear(linear(W), 'default', {
    r: 2,
    loraAlpha: 2,
    loraDropout: 0.5,
    initLoraWeights: 'gaussian',
  });
  set(layer.lora_B.get('default')!.weight, [
    [1, 1],
    [1, 1],
    [1, 1],
  ]);
  const x = [
    [1, 2],
    [3, 4],
    [5, 6],
    [7, 8],
  ];
  layer.eval();
  const e1 = run(layer, x);
  assert.deepEqual(run(layer, x), e1);
  layer.train();
  const t1 = run(layer, x);
  assert.notDeepEqual(t1, e1);
  const n0 = tf.memory().numTensors;
  run(layer, x);
  assert.equal(tf.memory().numTensors, n0);
  layer.dispose();
});

test('embedding LoRA: lookup of Aᵀ, times Bᵀ, times alpha/r; delta is (B·A)ᵀ·s; A = 0 at init', () => {
  manualSeed(2);
  const base = new Embedding(3, 2);
  const table = Array.from(base.weight.dataSync());
  const layer = new LoraEmbedding(base, 'default', { r: 1, loraAlpha: 2 });
  const ids = tf.tensor2d([[2, 0]], [1, 2], 'int32');
  const fresh = tf.tidy(() => Array.from(layer.forward(ids).dataSync()));
  assert.deepEqual(fresh, [table[4], table[5], table[0], table[1]]);
  set(layer.lora_embedding_A.get('default')!, [[1, 2, 3]]);
  set(layer.lora_embedding_B.get('default')!, [[1], [-1]]);
  const got = tf.tidy(() => Array.from(layer.forward(ids).dataSync()));
  const want = [table[4]! + 6, table[5]! - 6, table[0]! + 2, table[1]! - 2];
  got.forEach((g, i) => assert.ok(Math.abs(g - want[i]!) < 1e-6));
  const d = layer.getDeltaWeight('default');
  assert.deepEqual(Array.from(d.dataSync()), [2, -2, 4, -4, 6, -6]);
  d.dispose();
  ids.dispose();
  layer.dispose();
});

test('an adapter added to a layer in eval mode gets its dropout in eval mode too', () => {
  const layer = new LoraLinear(linear(W), 'default', { r: 2, loraAlpha: 4, loraDropout: 0.5 });
  layer.eval();
  layer.updateLayer('second', { r: 2, loraAlpha: 4, loraDropout: 0.5 });
  assert.equal(layer.lora_dropout.get('second')!.training, false);
  layer.train();
  layer.updateLayer('third', { r: 2, loraAlpha: 4, loraDropout: 0.5 });
  assert.equal(layer.lora_dropout.get('third')!.training, true);
  layer.dispose();
});
