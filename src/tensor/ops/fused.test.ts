/**
 * Fused native ops (layer/RMS norm, GELU, cross-entropy, attention softmax) against the composed
 * tfjs ops on the cpu backend — values and gradients — plus a numerical directional-derivative
 * check of each fused gradient and a leak check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import {
  assertBackendsAgree,
  nativeAvailable,
  randint,
  randn,
  toTensor,
  type HostTensor,
} from '../../testing/backend_parity.js';
import { layerNorm, rmsNorm } from './norm.js';
import { gelu, geluTanh } from './activations.js';
import { softmaxCrossEntropy } from './loss.js';
import { attention, paddingMask } from './attention.js';
import { loraDelta } from './lora.js';
import { adamwUpdate, adamwUpdateAll } from './adamw.js';
import { runOn } from '../../testing/backend_parity.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// One fused pass vs 5-10 composed kernels: float32 rounding differs per step; values are O(1).
const VALUE_TOL = { rtol: 1e-5, atol: 2e-6 };
// Gradients chain more roundings (row sums of products over ≤ 33 columns).
const GRAD_TOL = { rtol: 1e-4, atol: 1e-5 };
// Central difference in float32 with h = 1e-2: truncation O(h²·f''') ≈ 1e-4 plus roundoff
// eps·|f|/h ≈ 1e-4 for |f| ≈ 10, relative to directional derivatives of size ~1-10.
const NUMERIC_RTOL = 5e-3;
const H = 1e-2;

const rng = new Rng(7);

type Op = (...xs: Tensor[]) => Tensor;

/** Weighted sum, so every output element gets a different upstream gradient. */
function weighted(op: Op, w: HostTensor): Op {
  return (...xs) => tf.sum(tf.mul(op(...xs), toTensor(w)));
}

/** Gradients of `loss` wrt the first `n` inputs. */
function gradsOf(loss: Op, n: number): (...xs: Tensor[]) => Tensor[] {
  return (...xs) => tf.grads((...ys: Tensor[]) => loss(...ys, ...xs.slice(n)) as tf.Scalar)(xs.slice(0, n));
}

/** <∇f(x), u> against (f(x + h·u) − f(x − h·u)) / 2h on native, u random, over all `n` inputs. */
async function numericCheck(what: string, loss: Op, inputs: HostTensor[], n: number): Promise<void> {
  await tf.setBackend('native');
  const xs = inputs.map(toTensor);
  const dirs = xs.slice(0, n).map((x) => toTensor(randn(rng, x.shape)));
  const analytic = tf.tidy(() => {
    const g = gradsOf(loss, n)(...xs);
    return g.reduce((acc, gi, i) => acc + tf.sum(tf.mul(gi, dirs[i]!)).dataSync()[0]!, 0);
  });
  const at = (sign: number) =>
    tf.tidy(
      () => loss(...xs.map((x, i) => (i < n ? tf.add(x, tf.mul(dirs[i]!, sign * H)) : x))).dataSync()[0]!,
    );
  const numeric = (at(1) - at(-1)) / (2 * H);
  tf.dispose([...xs, ...dirs]);
  const err = Math.abs(analytic - numeric);
  assert.ok(
    err <= NUMERIC_RTOL * Math.max(1, Math.abs(numeric)),
    `${what}: analytic ${analytic} vs numeric ${numeric}`,
  );
}

/** Names of the kernels `fn` runs on native (to prove the fused path, not the composed one, ran). */
async function kernelsRun(inputs: HostTensor[], fn: Op): Promise<Set<string>> {
  await tf.setBackend('native');
  const engine = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => unknown };
  const original = engine.runKernel;
  const seen = new Set<string>();
  engine.runKernel = (name: string, ...rest: unknown[]) => {
    seen.add(name);
    return original.call(engine, name, ...rest);
  };
  const xs = inputs.map(toTensor);
  try {
    tf.dispose(tf.tidy(() => fn(...xs)));
  } finally {
    engine.runKernel = original;
    tf.dispose(xs);
  }
  return seen;
}

async function checkOp(
  what: string,
  op: Op,
  inputs: HostTensor[],
  nGrad: number,
  outShape: number[],
): Promise<void> {
  const used = await kernelsRun(inputs, op);
  assert.ok(
    [...used].some((k) => k.startsWith('Lowrank')),
    `${what}: no fused kernel ran (${[...used].join(', ')})`,
  );
  await assertBackendsAgree(`${what} value`, inputs, op, VALUE_TOL);
  const loss = weighted(op, randn(rng, outShape));
  await assertBackendsAgree(`${what} grads`, inputs, gradsOf(loss, nGrad), GRAD_TOL);
  await numericCheck(what, loss, inputs, nGrad);
  await tf.setBackend('native');
  const xs = inputs.map(toTensor);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.dispose(tf.tidy(() => gradsOf(loss, nGrad)(...xs)));
  assert.equal(tf.memory().numTensors, before, `${what}: tensor count grew across gradient steps`);
  tf.dispose(xs);
}

test('layerNorm (with and without beta) and rmsNorm', { skip }, async () => {
  const x = randn(rng, [2, 5, 33]);
  const g = randn(rng, [33]);
  const b = randn(rng, [33]);
  await checkOp('layerNorm', (xi, gi, bi) => layerNorm(xi!, gi!, bi!, 1e-5), [x, g, b], 3, x.shape);
  await checkOp('layerNorm no beta', (xi, gi) => layerNorm(xi!, gi!, null, 1e-12), [x, g], 2, x.shape);
  await checkOp('rmsNorm', (xi, gi) => rmsNorm(xi!, gi!, 1e-6), [x, g], 2, x.shape);
});

test('gelu and geluTanh', { skip }, async () => {
  const x = randn(rng, [4, 17]);
  await checkOp('gelu', (t) => gelu(t!), [x], 1, x.shape);
  await checkOp('geluTanh', (t) => geluTanh(t!), [x], 1, x.shape);
});

test('softmaxCrossEntropy with ignored labels', { skip }, async () => {
  const logits = randn(rng, [3, 4, 7]);
  const labels = randint(rng, [3, 4], 7);
  labels.values[1] = -100;
  labels.values[5] = -100;
  await checkOp('crossEntropy', (l, y) => softmaxCrossEntropy(l!, y!), [logits, labels], 1, []);
  const allIgnored: HostTensor = { ...labels, values: new Int32Array(12).fill(-100) };
  await assertBackendsAgree(
    'crossEntropy all ignored',
    [logits, allIgnored],
    (l, y) => softmaxCrossEntropy(l!, y!),
    VALUE_TOL,
  );
});

test('attention with padding and causal masks', { skip }, async () => {
  const [b, h, t, d] = [2, 3, 5, 4];
  const q = randn(rng, [b, h, t, d]);
  const k = randn(rng, [b, h, t, d]);
  const v = randn(rng, [b, h, t, d]);
  const pad: HostTensor = {
    values: Int32Array.from([1, 1, 1, 0, 0, 1, 1, 1, 1, 1]),
    shape: [b, t],
    dtype: 'int32',
  };
  await checkOp('attention', (qi, ki, vi) => attention(qi!, ki!, vi!), [q, k, v], 3, q.shape);
  await checkOp(
    'attention causal',
    (qi, ki, vi) => attention(qi!, ki!, vi!, { causal: true, scale: 0.3 }),
    [q, k, v],
    3,
    q.shape,
  );
  await checkOp(
    'attention padded',
    (qi, ki, vi, m) => attention(qi!, ki!, vi!, { mask: paddingMask(m!) }),
    [q, k, v, pad],
    3,
    q.shape,
  );
});

test('loraDelta equals the composed PEFT path (LoRA and AdaLoRA), values and gradients', async () => {
  const x = randn(rng, [2, 3, 7]);
  const a = randn(rng, [4, 7]);
  const b = randn(rng, [5, 4]);
  const e = randn(rng, [4, 1]);
  const peftLora = (xi: Tensor, ai: Tensor, bi: Tensor) =>
    tf.mul(tf.matMul(tf.matMul(xi.reshape([6, 7]), ai, false, true), bi, false, true), 2).reshape([2, 3, 5]);
  const peftAda = (xi: Tensor, ai: Tensor, bi: Tensor, ei: Tensor) =>
    tf
      .div(
        tf.mul(tf.matMul(tf.matMul(xi.reshape([6, 7]), tf.mul(ai, ei), false, true), bi, false, true), 2),
        4 + 1e-5,
      )
      .reshape([2, 3, 5]);
  const w = randn(rng, [2, 3, 5]);
  const backend = nativeAvailable() ? 'native' : 'cpu';
  for (const [name, fused, composed, ins] of [
    ['lora', (xi: Tensor, ai: Tensor, bi: Tensor) => loraDelta(xi, ai, bi, 2), peftLora, [x, a, b]],
    [
      'adalora',
      (xi: Tensor, ai: Tensor, bi: Tensor, ei: Tensor) => loraDelta(xi, ai, bi, 2, { e: ei, ranknum: 4 }),
      peftAda,
      [x, a, b, e],
    ],
  ] as [string, Op, Op, HostTensor[]][]) {
    const loss = (f: Op) => gradsOf(weighted(f, w), ins.length);
    for (const be of [backend, 'cpu']) {
      const program =
        (f: Op) =>
        (...xs: Tensor[]) => [f(...xs), ...loss(f)(...xs)];
      const got = await runOn(be, ins, program(fused));
      const want = await runOn(be, ins, program(composed));
      got.forEach((o, i) =>
        o.values.forEach((v, j) => {
          const ref = Number(want[i]!.values[j]);
          assert.ok(
            Math.abs(Number(v) - ref) <= GRAD_TOL.atol + GRAD_TOL.rtol * Math.abs(ref),
            `${name} on ${be}: output ${i}[${j}]`,
          );
        }),
      );
    }
  }
});

test('adamwUpdate: fused native pass equals the composed update and a hand computation', async () => {
  const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
  const ins = [randn(rng, [5, 3]), randn(rng, [5, 3]), randn(rng, [5, 3]), randn(rng, [5, 3])];
  ins[3]!.values = ins[3]!.values.map(Math.abs) as Float32Array; // v ≥ 0
  const program = (
    p: Tensor | undefined,
    g: Tensor | undefined,
    m: Tensor | undefined,
    v: Tensor | undefined,
  ) => {
    const r = adamwUpdate(p!, g!, m!, v!, h);
    return [r.p, r.m, r.v];
  };
  if (nativeAvailable()) await assertBackendsAgree('adamw', ins, program, VALUE_TOL);
  // Hand computation in double for element 0 (torch.optim.AdamW's formula).
  const [p, g, m, v] = ins.map((t) => t.values[0]!) as [number, number, number, number];
  const m1 = 0.9 * m + 0.1 * g;
  const v1 = 0.999 * v + 0.001 * g * g;
  const want =
    p * (1 - 0.1 * 0.01) - (0.1 / (1 - 0.9 ** 3)) * (m1 / (Math.sqrt(v1) / Math.sqrt(1 - 0.999 ** 3) + 1e-8));
  for (const be of nativeAvailable() ? ['native', 'cpu'] : ['cpu']) {
    const [gotP] = await runOn(be, ins, program);
    assert.ok(
      Math.abs(Number(gotP!.values[0]) - want) <= VALUE_TOL.atol + VALUE_TOL.rtol * Math.abs(want),
      `${be}: ${gotP!.values[0]} vs ${want}`,
    );
  }
});

test('adamwUpdateAll: one native call equals one adamwUpdate per parameter bit for bit, and the cpu path', async () => {
  if (!nativeAvailable()) return;
  const rng = new Rng(77);
  const shapes = [[12, 384], [7], [3, 0], [1], [5, 5]];
  const ins = shapes.flatMap((s) => [randn(rng, s), randn(rng, s), randn(rng, s), randn(rng, s)]);
  const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3 };
  const split = (xs: Tensor[]) => [0, 1, 2, 3].map((j) => xs.filter((_, i) => i % 4 === j));
  const all = (...xs: Tensor[]) => {
    const [p, g, m, v] = split(xs) as [Tensor[], Tensor[], Tensor[], Tensor[]];
    return adamwUpdateAll(
      p,
      g,
      m.map((t) => tf.abs(t)),
      v.map((t) => tf.abs(t)),
      h,
    ).flatMap((o) => [o.p, o.m, o.v]);
  };
  const each = (...xs: Tensor[]) => {
    const [p, g, m, v] = split(xs) as [Tensor[], Tensor[], Tensor[], Tensor[]];
    return p.flatMap((pi, i) => {
      const o = adamwUpdate(pi, g[i]!, tf.abs(m[i]!), tf.abs(v[i]!), h);
      return [o.p, o.m, o.v];
    });
  };
  const natAll = await runOn('native', ins, all);
  const natEach = await runOn('native', ins, each);
  natAll.forEach((o, i) => assert.deepEqual(o.values, natEach[i]!.values, `output ${i}`));
  const cpu = await runOn('cpu', ins, all);
  natAll.forEach((o, i) =>
    (o.values as Float32Array).forEach((x, j) => {
      const y = cpu[i]!.values[j]!;
      assert.ok(
        Math.abs(x - y) <= VALUE_TOL.atol + VALUE_TOL.rtol * Math.abs(y),
        `output ${i}[${j}] ${x} vs ${y}`,
      );
    }),
  );
});
