/** PiSSA and OLoRA inits against torch.linalg.svd / qr references (tests/fixtures/lora/make_peft_fixture.py). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf } from '../../tensor/tf.js';
import { Linear } from '../../nn/layers.js';
import { ConfigError } from '../../errors.js';
import { LoraLinear } from './layer.js';
import { maxDiff } from '../../testing/compare.js';

/** torch ran the factorisations in float32 LAPACK, ours in float64 then rounded (eps 1.2e-7 × size). */
const TORCH_F32_ATOL = 3e-6;

const ref = JSON.parse(
  readFileSync(new URL('../../../tests/fixtures/lora/peft_gpt2_expected.json', import.meta.url), 'utf8'),
);

function baseWith(W: number[], out: number, inF: number, fanInFanOut = false): Linear {
  const lin = new Linear(inF, out, { bias: false, fanInFanOut });
  const w = tf.tensor2d(W, [out, inF]);
  lin.weight.assign(fanInFanOut ? w.transpose() : w);
  w.dispose();
  return lin;
}
const arr = (t: tf.Tensor) => Array.from(t.dataSync());

test('pissa: A, B (up to the sign of each singular pair) and residual base equal PEFT on torch', () => {
  for (const fanInFanOut of [false, true]) {
    const layer = new LoraLinear(baseWith(ref.pissa.W, 6, 5, fanInFanOut), 'default', {
      r: 3,
      loraAlpha: 2,
      initLoraWeights: 'pissa',
    });
    const A = arr(layer.lora_A.get('default')!.weight); // [3, 5]
    const B = arr(layer.lora_B.get('default')!.weight); // [6, 3]
    for (let i = 0; i < 3; i++) {
      const sign = Math.sign(A[i * 5]!) === Math.sign(ref.pissa.A[i * 5]) ? 1 : -1;
      for (let j = 0; j < 5; j++)
        assert.ok(Math.abs(sign * A[i * 5 + j]! - ref.pissa.A[i * 5 + j]) < TORCH_F32_ATOL);
      for (let o = 0; o < 6; o++)
        assert.ok(Math.abs(sign * B[o * 3 + i]! - ref.pissa.B[o * 3 + i]) < TORCH_F32_ATOL);
    }
    const w = layer.base_layer.denseWeight();
    const res = arr(fanInFanOut ? w.transpose() : w);
    assert.ok(maxDiff(res, ref.pissa.residual) < TORCH_F32_ATOL, `residual (fanInFanOut=${fanInFanOut})`);
    w.dispose();
    // base + s·B·A is the original weight
    const x = tf.randomNormal([4, 5], 0, 1, 'float32', 3);
    const y = layer.forward(x);
    const orig = baseWith(ref.pissa.W, 6, 5);
    assert.ok(maxDiff(arr(y), arr(orig.forward(x))) < 1e-5);
    tf.dispose([x, y]);
    orig.dispose();
    layer.dispose();
  }
});

test('olora: A = R[:r], B = Q[:, :r], residual equal PEFT on torch', () => {
  const layer = new LoraLinear(baseWith(ref.pissa.W, 6, 5), 'default', {
    r: 3,
    loraAlpha: 2,
    initLoraWeights: 'olora',
  });
  assert.ok(maxDiff(arr(layer.lora_A.get('default')!.weight), ref.olora.A) < TORCH_F32_ATOL);
  assert.ok(maxDiff(arr(layer.lora_B.get('default')!.weight), ref.olora.B) < TORCH_F32_ATOL);
  const w = layer.base_layer.denseWeight();
  assert.ok(maxDiff(arr(w), ref.olora.residual) < TORCH_F32_ATOL);
  w.dispose();
  layer.dispose();
});

test('pissa/olora refuse r > min(out, in) with the limit in the message', () => {
  for (const init of ['pissa', 'olora'] as const) {
    assert.throws(
      () =>
        new LoraLinear(baseWith(ref.wide.W, 3, 7), 'default', { r: 4, loraAlpha: 4, initLoraWeights: init }),
      (e: Error) => e instanceof ConfigError && /min\(out, in\) = 3/.test(e.message),
    );
  }
});
