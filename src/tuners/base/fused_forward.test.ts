/**
 * LoRA and AdaLoRA layers on `native` run one adapter on a frozen nn Linear as the fused
 * adapted-linear op (`LowrankAdapterLinear`), draw the same dropout seeds as the composed path, and
 * give its values; every other case (several active adapters, merged, disabled, DoRA, loraBias,
 * trainable base) keeps the composed path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { nativeAvailable } from '../../testing/backend_parity.js';
import { maxDiff } from '../../testing/compare.js';
import { ADAPTER_KERNELS } from '../../tensor/native/adapter_kernels.js';
import { LoraLinear, type LoraLayerOptions } from '../lora/layer.js';
import { SVDLinear } from '../adalora/layer.js';
import '../lora/dora.js'; // registers the DoRA variant
import type { BaseTunerLayer } from './layer.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// The fused op's rank-r sums run in another order than OpenBLAS / the cpu matMul: ~1e-6 relative.
const TOL = 1e-4;
const [N, IN, OUT] = [24, 40, 16];

type Layer = BaseTunerLayer & { forward(x: Tensor): Tensor };

/** A layer over a frozen Linear with nonzero adapter weights, built identically on every backend. */
function build(kind: 'lora' | 'adalora', opts: Partial<LoraLayerOptions> = {}, frozenBase = true): Layer {
  manualSeed(7);
  const base = new Linear(IN, OUT);
  if (frozenBase) base.requiresGrad(false);
  const layer: Layer =
    kind === 'lora'
      ? new LoraLinear(base, 'default', { r: 4, loraAlpha: 8, loraDropout: 0.2, ...opts })
      : new SVDLinear(base, 'default', { r: 6, loraAlpha: 6, loraDropout: 0.2, initLoraWeights: false });
  // nonzero B (LoRA) so the adapter contributes; seeded, so equal on every backend
  for (const [name, p] of layer.namedParameters())
    if (name.includes('lora_B')) p.assign(tf.randomNormal(p.shape, 0, 0.5, 'float32', 11));
  return layer;
}

/** Kernel names one training-mode forward + backward runs, and the output and input gradient. */
async function step(layer: Layer, x: Tensor) {
  let y: Float32Array = new Float32Array();
  let dx: Float32Array = new Float32Array();
  const prof = await tf.profile(() => {
    const g = tf.grad((xi: Tensor) => {
      const out = layer.forward(xi);
      y = out.dataSync() as Float32Array;
      return tf.sum(tf.square(out));
    });
    const d = g(x);
    dx = d.dataSync() as Float32Array;
    d.dispose();
  });
  return { kernels: new Set(prof.kernelNames), y, dx };
}

async function onBackend(backend: string, make: () => Layer, mutate?: (l: Layer) => void) {
  await tf.setBackend(backend);
  const layer = make();
  layer.train(true);
  mutate?.(layer);
  const x = tf.randomNormal([2, N / 2, IN], 0, 1, 'float32', 3);
  manualSeed(99); // the dropout seeds of this forward
  const out = await step(layer, x);
  tf.dispose(x);
  layer.dispose();
  return out;
}

for (const kind of ['lora', 'adalora'] as const) {
  test(
    `${kind}: one adapter on a frozen Linear runs fused on native, same values and dropout as cpu`,
    { skip },
    async () => {
      const nat = await onBackend('native', () => build(kind));
      const cpu = await onBackend('cpu', () => build(kind));
      assert.ok(nat.kernels.has(ADAPTER_KERNELS.forward) && nat.kernels.has(ADAPTER_KERNELS.backward), kind);
      const scale = Math.max(...cpu.y.map(Math.abs));
      assert.ok(maxDiff(nat.y, cpu.y) <= TOL * scale, `${kind} y: ${maxDiff(nat.y, cpu.y)}`);
      const dScale = Math.max(...cpu.dx.map(Math.abs));
      assert.ok(maxDiff(nat.dx, cpu.dx) <= TOL * dScale, `${kind} dx: ${maxDiff(nat.dx, cpu.dx)}`);
    },
  );
}

const FALLBACKS: [string, () => Layer, ((l: Layer) => void)?][] = [
  ['trainable base', () => build('lora', {}, false)],
  ['DoRA', () => build('lora', { useDora: true })],
  ['loraBias', () => build('lora', { loraBias: true })],
  ['adapters disabled', () => build('lora'), (l) => (l.disableAdapters = true)],
  ['merged', () => build('lora'), (l) => l.merge()],
  [
    'two active adapters',
    () => build('lora'),
    (l) => {
      (l as LoraLinear).updateLayer('other', { r: 2, loraAlpha: 2 });
      l.setAdapter(['default', 'other']);
    },
  ],
];

for (const [what, make, mutate] of FALLBACKS) {
  test(`lora, ${what}: composed path on native, same values as cpu`, { skip }, async () => {
    const nat = await onBackend('native', make, mutate);
    const cpu = await onBackend('cpu', make, mutate);
    assert.ok(!nat.kernels.has(ADAPTER_KERNELS.forward), what);
    const scale = Math.max(...cpu.y.map(Math.abs));
    assert.ok(maxDiff(nat.y, cpu.y) <= TOL * scale, `${what} y: ${maxDiff(nat.y, cpu.y)}`);
  });
}
