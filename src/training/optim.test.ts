import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../tensor/tf.js';
import { AdamW, GradAccumulator, clipGradNorm, scheduleFactor } from './optim.js';

const ref = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/adamw_reference.json', import.meta.url), 'utf8'),
);
// float32 elementwise ops in a different order than PyTorch's fused kernels: a few ulps per step.
const ADAM_ATOL = 2e-6;
// schedules are plain float64 formulas on both sides.
const SCHEDULE_ATOL = 1e-12;
// float32 norm accumulation order differs from torch's.
const NORM_RTOL = 1e-6;

function close(a: ArrayLike<number>, b: number[], atol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= atol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

test('AdamW matches torch.optim.AdamW over 5 steps with changing lr', () => {
  const before = tf.memory().numTensors;
  const names = Object.keys(ref.init);
  const vars = names.map((n) => {
    const init = tf.tensor(ref.init[n].data, ref.init[n].shape);
    const v = tf.variable(init, true, `p_${n}`);
    init.dispose();
    return [n, v] as [string, tf.Variable];
  });
  const opt = new AdamW(vars, { lr: 1, betas: ref.betas, eps: ref.eps, weightDecay: ref.weight_decay });
  ref.grads.forEach((g: Record<string, number[]>, i: number) => {
    const grads: Record<string, Tensor> = {};
    for (const [n, v] of vars) grads[n] = tf.tensor(g[n]!, v.shape);
    opt.step(grads, ref.lrs[i]);
    tf.dispose(Object.values(grads));
    for (const [n, v] of vars) close(v.dataSync(), ref.trajectory[i][n], ADAM_ATOL, `step ${i} ${n}`);
  });
  assert.equal(opt.stepCount, 5);
  const slots = opt.stateTensors();
  for (const n of names) {
    close(slots.get(`${n}/m`)!.dataSync(), ref.final_state[n].m, ADAM_ATOL, `${n}/m`);
    close(slots.get(`${n}/v`)!.dataSync(), ref.final_state[n].v, ADAM_ATOL, `${n}/v`);
  }
  opt.dispose();
  vars.forEach(([, v]) => v.dispose());
  assert.equal(tf.memory().numTensors, before);
});

test('AdamW state round-trips: restored optimizer continues identically', () => {
  const mk = () => tf.variable(tf.tensor([1, -2, 3, 0.5]), true);
  const a = mk();
  const b = mk();
  const oa = new AdamW([['x', a]], { lr: 0.1 });
  const g = tf.tensor([0.3, -0.1, 0.2, 1]);
  oa.step({ x: g });
  oa.step({ x: g });
  b.assign(a);
  const ob = new AdamW([['x', b]], { lr: 0.1 });
  const copied = new Map([...oa.stateTensors()].map(([k, t]) => [k, t.clone()]));
  ob.loadState(copied, oa.stepCount);
  tf.dispose([...copied.values()]);
  oa.step({ x: g });
  ob.step({ x: g });
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  assert.throws(() => ob.loadState(new Map(), 1), /missing optimizer slot/);
  [oa, ob].forEach((o) => o.dispose());
  tf.dispose([a, b, g]);
});

test('schedules equal transformers linear/cosine with warmup as LambdaLR applies them', () => {
  for (let s = 0; s < 12; s++) {
    const lin = 0.1 * scheduleFactor({ name: 'linear', warmupSteps: 3, totalSteps: 10 }, s);
    const cos = 0.1 * scheduleFactor({ name: 'cosine', warmupSteps: 2, totalSteps: 10 }, s);
    assert.ok(
      Math.abs(lin - ref.linear_w3_t10[s]) <= SCHEDULE_ATOL,
      `linear ${s}: ${lin} vs ${ref.linear_w3_t10[s]}`,
    );
    assert.ok(
      Math.abs(cos - ref.cosine_w2_t10[s]) <= SCHEDULE_ATOL,
      `cosine ${s}: ${cos} vs ${ref.cosine_w2_t10[s]}`,
    );
  }
  assert.equal(scheduleFactor({ name: 'constant' }, 7), 1);
  assert.throws(() => scheduleFactor({ name: 'nope' as never }, 0), /unknown schedule/);
});

test('clipGradNorm equals torch clip_grad_norm_', async () => {
  const before = tf.memory().numTensors;
  const grads: Record<string, Tensor> = {};
  for (const [n, g] of Object.entries(ref.clip.grads) as [string, { shape: number[]; data: number[] }][])
    grads[n] = tf.tensor(g.data, g.shape);
  const { grads: out, norm } = await clipGradNorm(grads, ref.clip.max_norm);
  assert.ok(Math.abs(norm - ref.clip.norm) <= NORM_RTOL * ref.clip.norm, `${norm} vs ${ref.clip.norm}`);
  for (const n of Object.keys(grads))
    close(out[n]!.dataSync(), ref.clip.clipped[n], ADAM_ATOL, `clipped ${n}`);
  tf.dispose([...Object.values(grads), ...Object.values(out)]);
  assert.equal(tf.memory().numTensors, before);
});

test('GradAccumulator averages micro-batch gradients', () => {
  const before = tf.memory().numTensors;
  const acc = new GradAccumulator(2);
  const g1 = tf.tensor([1, 2]);
  const g2 = tf.tensor([3, 6]);
  acc.add({ x: g1 });
  assert.equal(acc.ready(), false);
  acc.add({ x: g2 });
  assert.equal(acc.ready(), true);
  const out = acc.take();
  assert.deepEqual(Array.from(out.x!.dataSync()), [2, 4]);
  tf.dispose([g1, g2, out.x!]);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => new GradAccumulator(0), /integer >= 1/);
});
