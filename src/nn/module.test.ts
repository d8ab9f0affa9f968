import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tensor/tf.js';
import { Module, ModuleList } from './module.js';
import { Linear, Dropout } from './layers.js';
import { manualSeed } from './init.js';
import { CheckpointError } from '../errors.js';

class Block extends Module {
  declare fc: Linear;
  constructor() {
    super();
    this.registerModule('fc', new Linear(3, 2));
  }
  forward(x: Tensor): Tensor {
    return this.fc.forward(x);
  }
}

class Net extends Module {
  declare layers: ModuleList<Block>;
  declare head: Linear;
  constructor() {
    super();
    this.registerModule('layers', new ModuleList([new Block(), new Block()]));
    this.registerModule('head', new Linear(2, 1, { bias: false }));
  }
}

test('named parameters follow PyTorch dotted names and order', () => {
  const net = new Net();
  assert.deepEqual(
    net.namedParameters().map(([n]) => n),
    ['layers.0.fc.weight', 'layers.0.fc.bias', 'layers.1.fc.weight', 'layers.1.fc.bias', 'head.weight'],
  );
  assert.deepEqual(net.layers.at(1).fc.weight.shape, [2, 3]);
  net.dispose();
});

test('replaceChild swaps the module seen by the parent field', () => {
  const net = new Net();
  const fresh = new Linear(3, 2);
  const old = net.replaceChild('layers.1.fc', fresh);
  assert.equal(net.layers.at(1).fc, fresh);
  assert.notEqual(old, fresh);
  old.dispose();
  net.dispose();
});

test('strict loadStateDict lists missing and unexpected keys; shapes are checked', () => {
  const net = new Net();
  const sd = new Map([
    ['head.weight', tf.ones([1, 2])],
    ['bogus', tf.ones([1])],
  ]);
  assert.throws(
    () => net.loadStateDict(sd),
    (e: unknown) => e instanceof CheckpointError && /bogus/.test(String(e)),
  );
  const bad = new Map([['head.weight', tf.ones([2, 2])]]);
  assert.throws(() => net.loadStateDict(bad, false), CheckpointError);
  const r = net.loadStateDict(new Map([['head.weight', tf.ones([1, 2])]]), false);
  assert.equal(r.missingKeys.length, 4);
  assert.deepEqual(Array.from(net.head.weight.dataSync()), [1, 1]);
  net.dispose();
});

test('Linear matches a hand-computed case, fanInFanOut too', () => {
  const fc = new Linear(2, 3);
  fc.weight.assign(
    tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]),
  );
  fc.bias!.assign(tf.tensor1d([1, 0, -1]));
  const y = fc.forward(tf.tensor2d([[1, 1]]));
  assert.deepEqual(Array.from(y.dataSync()), [4, 7, 10]);
  const conv1d = new Linear(2, 3, { fanInFanOut: true });
  conv1d.weight.assign(
    tf.tensor2d([
      [1, 3, 5],
      [2, 4, 6],
    ]),
  );
  conv1d.bias!.assign(tf.tensor1d([1, 0, -1]));
  assert.deepEqual(Array.from(conv1d.forward(tf.tensor2d([[1, 1]])).dataSync()), [4, 7, 10]);
  fc.dispose();
  conv1d.dispose();
});

test('a seed fixes dropout masks; eval is identity', () => {
  const d = new Dropout(0.5);
  const x = tf.ones([64]);
  manualSeed(7);
  const a = Array.from(d.forward(x).dataSync());
  manualSeed(7);
  const b = Array.from(d.forward(x).dataSync());
  assert.deepEqual(a, b);
  assert.ok(a.some((v) => v === 0) && a.some((v) => v === 2));
  d.eval();
  assert.equal(d.forward(x), x);
});
