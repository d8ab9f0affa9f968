/**
 * Cost shape of the adapter path (issue 2): LoRA's `·scaling` and AdaLoRA's
 * `·scaling/(ranknum + 1e-5)` are folded into the small [out, r] factor (tensor/ops/lora.ts), so a
 * training step of an adapted layer runs no elementwise kernel over the [N, out] activation except
 * the one add of the adapter output, and the values equal the PEFT formula.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { LoraLinear } from './layer.js';
import { SVDLinear, RANKNUM_EPS } from '../adalora/layer.js';

// Folding the scale into B rounds once on [out, r] instead of on [N, out]: ~1 ulp per product.
const FOLD_RTOL = 1e-5;
const FOLD_ATOL = 1e-6;
const N = 6;
const IN = 5;
const OUT = 7;
const ELEMENTWISE = new Set(['Multiply', 'RealDiv', 'Add', 'Sub', 'AddN']);
// The forward's add of base and delta; then only the test loss sum(out²)'s own gradient: Sum's
// dy·ones and Square's dy·(2·out), three multiplies. The old `·scaling` path added two more
// (LoRA) and AdaLoRA's `·scaling / (ranknum + 1e-5)` four.
const EXPECTED = ['Add', 'Multiply', 'Multiply', 'Multiply'];

/** Elementwise kernels of forward + backward whose output has the [N, out] activation's size. */
async function fullSizeElementwise(layer: { forward(x: Tensor): Tensor }, vars: Variable[], x: Tensor) {
  let y: Float32Array | undefined;
  const prof = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = layer.forward(x);
      y = out.dataSync() as Float32Array;
      return tf.sum(tf.square(out)) as tf.Scalar;
    }, vars);
    tf.dispose([value, grads]);
  });
  const big = prof.kernels.filter(
    (k) => ELEMENTWISE.has(k.name) && k.outputShapes.some((s) => s.reduce((a, b) => a * b, 1) === N * OUT),
  );
  return { names: big.map((k) => k.name), y: y! };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string) {
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= FOLD_ATOL + FOLD_RTOL * Math.abs(b[i]!), `${what}[${i}]`);
}

test('LoraLinear: the scale costs no [N, out] pass (one add of the adapter output), values as PEFT', async () => {
  manualSeed(1);
  const layer = new LoraLinear(new Linear(IN, OUT), 'default', { r: 3, loraAlpha: 6 });
  const B = layer.lora_B.get('default')!.weight;
  B.assign(tf.randomNormal(B.shape, 0, 1, 'float32', 2));
  const A = layer.lora_A.get('default')!.weight;
  const x = tf.randomNormal([N, IN], 0, 1, 'float32', 3);
  const vars = layer.trainableParameters().map(([, v]) => v);
  const { names, y } = await fullSizeElementwise(layer, vars, x);
  assert.deepEqual(names, EXPECTED, 'forward: base + delta; backward: only the loss gradient');
  const want = tf.tidy(() =>
    tf.add(layer.base_layer.forward(x), tf.mul(tf.matMul(tf.matMul(x, A, false, true), B, false, true), 2)),
  );
  close(y, want.dataSync(), 'y');
  tf.dispose([want, x]);
  layer.dispose();
});

test('SVDLinear: scaling/(ranknum + 1e-5) costs no [N, out] pass, values as PEFT', async () => {
  manualSeed(4);
  const layer = new SVDLinear(new Linear(IN, OUT), 'default', {
    r: 3,
    loraAlpha: 5,
    loraDropout: 0,
    initLoraWeights: true,
  });
  const E = layer.lora_E.get('default')!;
  E.assign(tf.randomNormal(E.shape, 0, 1, 'float32', 5));
  const [A, B] = [layer.lora_A.get('default')!, layer.lora_B.get('default')!];
  const x = tf.randomNormal([N, IN], 0, 1, 'float32', 6);
  const vars = layer.trainableParameters().map(([, v]) => v);
  const { names, y } = await fullSizeElementwise(layer, vars, x);
  assert.deepEqual(names, EXPECTED, 'forward: base + delta; backward: only the loss gradient');
  const want = tf.tidy(() => {
    const d = tf.matMul(tf.matMul(x, tf.mul(A, E), false, true), B, false, true);
    const rn = Math.fround(3 + Math.fround(RANKNUM_EPS));
    return tf.add(layer.base_layer.forward(x), tf.div(tf.mul(d, 5), rn));
  });
  close(y, want.dataSync(), 'y');
  tf.dispose([want, x]);
  layer.dispose();
});
