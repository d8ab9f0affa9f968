import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../../tensor/tf.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { ConfigError } from '../../errors.js';
import { RankAllocator, kthSmallest, type RankAllocatorSchedule } from './rank_allocator.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../../tests/fixtures/${name}`, import.meta.url), 'utf8'));

/** EMA goldens are compared to within one f32 ulp (f32 op order is identical, BLAS is not involved). */
const EMA_ULPS = 1;

const base: RankAllocatorSchedule = {
  targetR: 8,
  tinit: 0,
  tfinal: 0,
  totalStep: 100,
  deltaT: 1,
  beta1: 0.85,
  beta2: 0.85,
};

function ulpDistance(a: number, b: number): number {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat32(0, a);
  buf.setFloat32(4, b);
  const ia = buf.getInt32(0);
  const ib = buf.getInt32(4);
  const ord = (i: number) => (i < 0 ? -2147483648 - i : i);
  return Math.abs(ord(ia) - ord(ib));
}

/** A fake "model": `namedParameters` of layers with given ranks (A r×in, E r×1, B out×r). */
function makeParams(
  layers: { name: string; r: number; inF?: number; outF?: number; e?: number[] }[],
): Map<string, tf.Variable> {
  const m = new Map<string, tf.Variable>();
  for (const l of layers) {
    const inF = l.inF ?? 4;
    const outF = l.outF ?? 5;
    m.set(`${l.name}.lora_A.default`, tf.variable(tf.fill([l.r, inF], 0.5)));
    m.set(`${l.name}.lora_B.default`, tf.variable(tf.fill([outF, l.r], 0.25)));
    m.set(`${l.name}.lora_E.default`, tf.variable(l.e ? tf.tensor2d(l.e, [l.r, 1]) : tf.ones([l.r, 1])));
  }
  return m;
}
const disposeMap = (m: Map<string, Tensor>) => m.forEach((t) => t.dispose());
const col = (m: Map<string, Tensor>, n: string) => Array.from(m.get(n)!.dataSync());

test('budget schedule: PEFT budget_schedule golden tables, every step, against the committed python table', () => {
  const tables = fixture('adalora_budget.json') as {
    init_bgt: number;
    target_bgt: number;
    tinit: number;
    tfinal: number;
    total_step: number;
    delta_t: number;
    budget: number[];
    mask_ind: boolean[];
  }[];
  for (const t of tables) {
    const r = 12;
    const nLayers = t.init_bgt / r;
    const targetR = t.target_bgt / nLayers;
    const params = makeParams(Array.from({ length: nLayers }, (_, i) => ({ name: `l${i}.q`, r })));
    const alloc = new RankAllocator(params, {
      ...base,
      targetR,
      tinit: t.tinit,
      tfinal: t.tfinal,
      totalStep: t.total_step,
      deltaT: t.delta_t,
    });
    assert.equal(alloc.initBgt, t.init_bgt);
    assert.equal(alloc.targetBgt, t.target_bgt);
    for (let step = 0; step <= t.total_step; step++) {
      assert.deepEqual(
        alloc.budgetSchedule(step),
        { budget: t.budget[step], maskInd: t.mask_ind[step] },
        `step ${step}`,
      );
    }
    disposeMap(params);
  }
  // The spec's hand-listed points (I=48, T=32, tinit=200, tfinal=1000, total=3000, deltaT=10).
  const params = makeParams([0, 1, 2, 3].map((i) => ({ name: `l${i}.q`, r: 12 })));
  const a = new RankAllocator(params, {
    ...base,
    targetR: 8,
    tinit: 200,
    tfinal: 1000,
    totalStep: 3000,
    deltaT: 10,
  });
  const listed: [number, number, boolean][] = [
    [0, 48, false],
    [200, 48, false],
    [201, 47, false],
    [210, 47, true],
    [300, 45, true],
    [500, 41, true],
    [1000, 34, true],
    [1500, 32, true],
    [1999, 32, false],
    [2000, 32, true],
    [2001, 32, true],
    [3000, 32, true],
  ];
  for (const [step, budget, maskInd] of listed)
    assert.deepEqual(a.budgetSchedule(step), { budget, maskInd }, `step ${step}`);
  // Docstring example (I=24, T=16): ranges of the spec.
  const p2 = makeParams([0, 1].map((i) => ({ name: `l${i}.q`, r: 12 })));
  const b = new RankAllocator(p2, { ...base, targetR: 8, tinit: 10, tfinal: 20, totalStep: 100, deltaT: 1 });
  const ranges: [number, number, number][] = [
    [0, 10, 24],
    [11, 13, 23],
    [14, 16, 22],
    [17, 20, 21],
    [21, 24, 20],
    [25, 29, 19],
    [30, 35, 18],
    [36, 45, 17],
    [46, 100, 16],
  ];
  for (const [lo, hi, budget] of ranges) {
    for (let s = lo; s <= hi; s++)
      assert.deepEqual(b.budgetSchedule(s), { budget, maskInd: s > 10 }, `step ${s}`);
  }
  disposeMap(params);
  disposeMap(p2);
});

test('budget counts only lora_A of this adapter, by substring (PEFT `RankAllocator._set_budget_scheduler`)', () => {
  const params = makeParams([
    { name: 'a.q', r: 3 },
    { name: 'a.v', r: 5 },
  ]);
  params.set('a.k.lora_A.other', tf.variable(tf.zeros([7, 4])));
  const alloc = new RankAllocator(params, { ...base, targetR: 2 });
  assert.equal(alloc.initBgt, 8);
  assert.equal(alloc.targetBgt, 4);
  disposeMap(params);
});

test('masking golden: two layers r=3, budget 4 → threshold 0.1 (PEFT `RankAllocator.mask_to_budget`)', () => {
  assert.equal(kthSmallest(Float32Array.from([0.5, 0.1, 0.3, 0.2, 0.4, 0.05]), 2), Math.fround(0.1));
  // Magnitude scores are |E| exactly, so the triplet scores are the golden's.
  const params = makeParams([
    { name: 'l1', r: 3, e: [0.5, 0.1, 0.3] },
    { name: 'l2', r: 3, e: [0.2, 0.4, 0.05] },
  ]);
  const alloc = new RankAllocator(params, { ...base, targetR: 1 }, 'default', { importance: 'magnitude' });
  const pattern = alloc.maskToBudget(params, 4);
  assert.deepEqual(pattern, {
    'l1.lora_E.default': [true, false, true],
    'l2.lora_E.default': [true, true, false],
  });
  assert.deepEqual(col(params, 'l1.lora_E.default'), [0.5, 0, 0.3].map(Math.fround));
  assert.deepEqual(col(params, 'l2.lora_E.default'), [0.2, 0.4, 0].map(Math.fround));
  assert.ok(
    col(params, 'l1.lora_A.default').every((v) => v === 0.5),
    'A is never touched',
  );
  assert.ok(
    col(params, 'l1.lora_B.default').every((v) => v === 0.25),
    'B is never touched',
  );
  disposeMap(params);
});

test('masking: ties at the threshold prune more than k; NaN is never pruned; k out of range is a ConfigError', () => {
  const params = makeParams([
    { name: 'l1', r: 3, e: [0.1, 0.1, 0.3] },
    { name: 'l2', r: 3, e: [0.2, 0.1, 0.05] },
  ]);
  const alloc = new RankAllocator(params, { ...base, targetR: 1 }, 'default', { importance: 'magnitude' });
  // k = 2 → threshold 0.1, but four triplets are <= 0.1.
  const pattern = alloc.maskToBudget(params, 4);
  assert.deepEqual(pattern, {
    'l1.lora_E.default': [false, false, true],
    'l2.lora_E.default': [true, false, false],
  });
  assert.throws(() => alloc.maskToBudget(params, 7), ConfigError); // k = -1
  assert.throws(() => alloc.maskToBudget(params, -1), ConfigError); // k = 7 > 6 triplets
  disposeMap(params);

  const withNaN = makeParams([
    { name: 'l1', r: 3, e: [NaN, 0.1, 0.3] },
    { name: 'l2', r: 3, e: [0.2, 0.4, 0.05] },
  ]);
  const a2 = new RankAllocator(withNaN, { ...base, targetR: 1 }, 'default', { importance: 'magnitude' });
  const p2 = a2.maskToBudget(withNaN, 1); // k = 5 → threshold 0.4: everything finite goes
  assert.deepEqual(p2, {
    'l1.lora_E.default': [true, false, false],
    'l2.lora_E.default': [false, false, false],
  });
  disposeMap(withNaN);
});

test('default importance ranks triplets by s(E) + mean s(A) + mean s(B) from the EMAs', async () => {
  const params = makeParams([
    { name: 'l1', r: 3, e: [1, 1, 1] },
    { name: 'l2', r: 3, e: [1, 1, 1] },
  ]);
  // Only E gets a gradient; the golden's order must come out (s is monotone in |p·g| after one step).
  const grads = new Map<string, Tensor>();
  for (const [n, p] of params) grads.set(n, tf.zerosLike(p));
  grads.get('l1.lora_E.default')!.dispose();
  grads.get('l2.lora_E.default')!.dispose();
  grads.set('l1.lora_E.default', tf.tensor2d([0.5, 0.1, 0.3], [3, 1]));
  grads.set('l2.lora_E.default', tf.tensor2d([0.2, 0.4, 0.05], [3, 1]));
  const alloc = new RankAllocator(params, { ...base, targetR: 1 });
  await assertNoLeak(
    () => alloc.updateIpt(params, grads),
    18,
    'first updateIpt (3 statistics × 6 parameters kept)',
  );
  const pattern = await assertNoLeak(() => alloc.maskToBudget(params, 4), 0, 'maskToBudget');
  assert.deepEqual(pattern, {
    'l1.lora_E.default': [true, false, true],
    'l2.lora_E.default': [true, true, false],
  });
  await assertNoLeak(() => alloc.updateIpt(params, grads), 0, 'later updateIpt replaces its statistics');
  alloc.dispose();
  disposeMap(grads);
  disposeMap(params);
});

test('two EMA steps match the python3-torch reference within 1 ulp (PEFT `RankAllocator.update_ipt`)', () => {
  const ref = fixture('adalora_ema.json');
  const alloc = new RankAllocator(new Map(), { ...base, beta1: ref.beta1, beta2: ref.beta2 });
  for (const step of ref.steps as Record<string, any>[]) {
    const params = new Map<string, Tensor>();
    const grads = new Map<string, Tensor>();
    for (const [n, rec] of Object.entries(step)) {
      params.set(n, tf.variable(tf.tensor(rec.p, rec.shape)));
      grads.set(n, tf.tensor(rec.grad, rec.shape));
    }
    alloc.updateIpt(params, grads);
    for (const [n, rec] of Object.entries(step)) {
      for (const [key, got] of [
        ['ipt', alloc.ipt],
        ['exp_avg_ipt', alloc.expAvgIpt],
        ['exp_avg_unc', alloc.expAvgUnc],
      ] as const) {
        const actual = Array.from(got.get(n)!.dataSync());
        const expected = rec[key] as number[];
        actual.forEach((v, i) =>
          assert.ok(ulpDistance(v, expected[i]!) <= EMA_ULPS, `${n} ${key}[${i}]: ${v} vs ${expected[i]}`),
        );
      }
    }
    disposeMap(params);
    disposeMap(grads);
  }
  alloc.dispose();
});

test('sensitivity-only ablation scores with Ī alone', () => {
  const params = makeParams([{ name: 'l1', r: 2, inF: 1, outF: 1, e: [1, 1] }]);
  const grads = new Map<string, Tensor>([
    ['l1.lora_A.default', tf.tensor2d([0, 0], [2, 1])],
    ['l1.lora_B.default', tf.tensor2d([[0, 0]])],
    ['l1.lora_E.default', tf.tensor2d([2, 1], [2, 1])],
  ]);
  const alloc = new RankAllocator(params, { ...base, targetR: 1, beta1: 0.5 }, 'default', {
    importance: 'sensitivity',
  });
  alloc.updateIpt(params, grads);
  const scores = alloc.tripletScores(params);
  // Ī = 0.5·|1·g| ; A, B have zero sensitivity.
  assert.deepEqual(col(scores, 'l1.lora_E.default'), [1, 0.5]);
  disposeMap(scores);
  // the default would be Ī·Ū = (0.5|g|)·(0.15·0.5|g|)
  const full = new RankAllocator(params, { ...base, targetR: 1, beta1: 0.5 });
  full.updateIpt(params, grads);
  const s2 = full.tripletScores(params);
  const expected = [2, 1].map((g) =>
    Math.fround(Math.fround(0.5 * g) * Math.fround(Math.fround(0.15) * Math.fround(0.5 * g))),
  );
  col(s2, 'l1.lora_E.default').forEach((v, i) => assert.ok(ulpDistance(v, expected[i]!) <= EMA_ULPS));
  disposeMap(s2);
  alloc.dispose();
  full.dispose();
  disposeMap(grads);
  disposeMap(params);
});

test('updateIpt: missing gradient of a trainable parameter is a ConfigError; frozen ones are skipped (PEFT #1721)', () => {
  const params = makeParams([{ name: 'l1', r: 2 }]);
  const alloc = new RankAllocator(params, base);
  assert.throws(
    () => alloc.updateIpt(params, new Map()),
    (e: unknown) => e instanceof ConfigError && /l1\.lora_A\.default/.test(String(e)),
  );
  for (const p of params.values()) p.trainable = false;
  alloc.updateIpt(params, new Map());
  assert.equal(alloc.ipt.size, 0);
  disposeMap(params);
  assert.throws(() => new RankAllocator(new Map(), { ...base, beta1: 1 }), ConfigError);
});

test('updateAndAllocate: statistics only before totalStep − tfinal; masks on schedule or when forced', () => {
  const params = makeParams([
    { name: 'l1', r: 3, e: [0.3, 0.2, 0.1] },
    { name: 'l2', r: 3, e: [0.6, 0.5, 0.4] },
  ]);
  const grads = new Map<string, Tensor>([...params].map(([n, p]) => [n, tf.onesLike(p)]));
  const sched = { ...base, targetR: 1, tinit: 2, tfinal: 3, totalStep: 10, deltaT: 2 }; // Tf = 7
  const alloc = new RankAllocator(params, sched);
  // budgeting phase is steps 3..7: I=6, T=2, mul = 1 - (s-2)/5
  assert.deepEqual(alloc.updateAndAllocate(params, grads, 0), { budget: 6, rankPattern: null });
  assert.equal(alloc.ipt.size, 6);
  const r3 = alloc.updateAndAllocate(params, grads, 3); // odd step: no mask
  assert.equal(r3.rankPattern, null);
  assert.equal(r3.budget, Math.trunc(4 * Math.pow(1 - 1 / 5, 3) + 2));
  const r4 = alloc.updateAndAllocate(params, grads, 4);
  assert.ok(r4.rankPattern !== null);
  assert.equal(Object.values(r4.rankPattern).flat().filter(Boolean).length, r4.budget);
  const before = Array.from(alloc.expAvgIpt.get('l1.lora_A.default')!.dataSync());
  const r7 = alloc.updateAndAllocate(params, grads, 7, true); // step == Tf: no statistics update
  assert.deepEqual(Array.from(alloc.expAvgIpt.get('l1.lora_A.default')!.dataSync()), before);
  assert.equal(r7.budget, 2);
  assert.ok(r7.rankPattern !== null);
  const r8 = alloc.updateAndAllocate(params, grads, 8); // final phase: target budget, mask flag
  assert.equal(r8.budget, 2);
  alloc.resetIpt();
  assert.equal(alloc.ipt.size, 0);
  disposeMap(grads);
  disposeMap(params);
});

test('maskUsingRankPattern accepts keys with or without the adapter suffix, without corrupting names', () => {
  const params = makeParams([{ name: 'enc.default_proj', r: 2, e: [1, 2] }]);
  const alloc = new RankAllocator(params, base);
  alloc.maskUsingRankPattern(params, { 'enc.default_proj.lora_E': [false, true] });
  assert.deepEqual(col(params, 'enc.default_proj.lora_E.default'), [0, 2]);
  alloc.maskUsingRankPattern(params, { 'enc.default_proj.lora_E.default': [false, false] });
  assert.deepEqual(col(params, 'enc.default_proj.lora_E.default'), [0, 0]);
  assert.throws(() => alloc.maskUsingRankPattern(params, { 'x.lora_E': [true] }), ConfigError);
  disposeMap(params);
});

test('stateTensors / loadStateTensors restore the statistics exactly (checkpoint resume)', () => {
  const params = makeParams([{ name: 'l1', r: 2, e: [0.5, 1] }]);
  const grads = new Map<string, Tensor>([...params].map(([n, p]) => [n, tf.onesLike(p)]));
  const a = new RankAllocator(params, base);
  a.updateIpt(params, grads);
  const saved = new Map([...a.stateTensors()].map(([k, t]) => [k, tf.clone(t)]));
  assert.equal(saved.size, 9);
  a.updateIpt(params, grads);
  const b = new RankAllocator(params, base);
  b.loadStateTensors(saved);
  b.updateIpt(params, grads);
  for (const [k, t] of a.stateTensors())
    assert.deepEqual(Array.from(b.stateTensors().get(k)!.dataSync()), Array.from(t.dataSync()), k);
  assert.throws(
    () => b.loadStateTensors(new Map([['bogus/x', saved.get('ipt/l1.lora_A.default')!]])),
    /unknown statistics key/,
  );
  [a, b].forEach((x) => x.dispose());
  disposeMap(saved);
  disposeMap(grads);
  disposeMap(params);
});
