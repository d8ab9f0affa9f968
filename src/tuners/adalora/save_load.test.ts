import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { CheckpointError } from '../../errors.js';
import { SVDLinear } from './layer.js';
import {
  modulePathOfPatternKey,
  resizeModulesByRankPattern,
  stripAdapterFromPattern,
  trimStateDictByRankPattern,
} from './save_load.js';

/** Trimmed forward sums fewer (exactly zero) terms: only summation order differs. */
const TRIM_ATOL = 1e-6;

const opts = { r: 3, loraAlpha: 6, loraDropout: 0, initLoraWeights: true };

class Net extends Module {
  declare default_proj: SVDLinear;
  declare v: SVDLinear;
  constructor() {
    super();
    this.registerModule('default_proj', new SVDLinear(new Linear(4, 3), 'default', opts));
    this.registerModule('v', new SVDLinear(new Linear(4, 2), 'default', opts));
  }
  forward(x: Tensor): Tensor {
    return tf.tidy(() => tf.concat([this.default_proj.forward(x), this.v.forward(x)], -1));
  }
}

test('pattern keys: only the trailing adapter suffix is stripped (PEFT corrupts x.default_proj)', () => {
  assert.deepEqual(stripAdapterFromPattern({ 'enc.default_proj.lora_E.default': [true] }, 'default'), {
    'enc.default_proj.lora_E': [true],
  });
  assert.equal(modulePathOfPatternKey('enc.default_proj.lora_E.default', 'default'), 'enc.default_proj');
  assert.equal(modulePathOfPatternKey('enc.default_proj.lora_E', 'default'), 'enc.default_proj');
  assert.throws(() => modulePathOfPatternKey('enc.q.lora_A', 'default'), CheckpointError);
});

test('trim on save then resize on load reproduces the outputs; rank 0 layer included (PEFT save_and_load.py / resize_modules_by_rank_pattern)', () => {
  manualSeed(5);
  const src = new Net();
  src.default_proj.lora_E.get('default')!.assign(tf.tensor2d([[0.5], [0], [-0.7]]));
  src.v.lora_E.get('default')!.assign(tf.zeros([3, 1]));
  const pattern = {
    'default_proj.lora_E.default': [true, false, true],
    'v.lora_E.default': [false, false, false],
  };
  const before = tf.memory().numTensors;
  const { state, created } = trimStateDictByRankPattern(
    src.stateDict(),
    pattern,
    'default',
    (p, l) => `${p}.${l}.default`,
  );
  assert.equal(created.length, 6);
  assert.equal(tf.memory().numTensors - before, created.length, 'trimming makes only the returned tensors');
  assert.ok(![...state.keys()].some((k) => k.includes('ranknum')), 'ranknum is never saved');
  assert.deepEqual(state.get('default_proj.lora_A.default')!.shape, [2, 4]);
  assert.deepEqual(state.get('default_proj.lora_B.default')!.shape, [3, 2]);
  assert.deepEqual(state.get('default_proj.lora_E.default')!.shape, [2, 1]);
  assert.deepEqual(state.get('v.lora_A.default')!.shape, [0, 4]);
  assert.deepEqual(state.get('v.lora_B.default')!.shape, [2, 0]);
  assert.deepEqual(state.get('v.lora_E.default')!.shape, [0, 1]);

  manualSeed(99); // different fresh init: everything must come from the checkpoint
  const dst = new Net();
  resizeModulesByRankPattern(dst, stripAdapterFromPattern(pattern, 'default'), 'default', opts);
  assert.deepEqual(
    Array.from(dst.default_proj.ranknum.get('default')!.dataSync()),
    [3],
    'ranknum stays initR',
  );
  assert.equal(dst.v.r.get('default'), 0);
  // base weights as in src, adapter tensors from the trimmed dict
  const res = dst.loadStateDict(state, false);
  assert.ok(
    res.missingKeys.every((k) => k.includes('ranknum')),
    JSON.stringify(res.missingKeys),
  );
  created.forEach((t) => t.dispose());
  const x = tf.randomNormal([2, 4], 0, 1, 'float32', 3);
  const [ya, yb] = [src.forward(x), dst.forward(x)];
  const a = ya.dataSync();
  const b = yb.dataSync();
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= TRIM_ATOL, `${i}: ${a[i]} vs ${b[i]}`);
  [x, ya, yb].forEach((t) => t.dispose());
  src.dispose();
  dst.dispose();
});

test('errors name the key: unknown module, wrong mask length', () => {
  const net = new Net();
  assert.throws(
    () => resizeModulesByRankPattern(net, { 'nope.lora_E': [true] }, 'default', opts),
    (e: unknown) => e instanceof CheckpointError && /nope/.test(String(e)),
  );
  assert.throws(
    () =>
      trimStateDictByRankPattern(
        net.stateDict(),
        { 'v.lora_E': [true] },
        'default',
        (p, l) => `${p}.${l}.default`,
      ),
    /rank pattern length/,
  );
  net.dispose();
});
