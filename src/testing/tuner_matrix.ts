/**
 * Shared invariant checks for the tuner × model matrix (DESIGN.md §5; issue 4 "Must show"). Every
 * tuner (LoRA and its variants, AdaLoRA, QLoRA bases) runs the same checks through `registerTunerMatrix`:
 *
 *  1. a fresh adapter leaves outputs unchanged (skip with `freshIsIdentity: false`, e.g. init `false`);
 *  2. merged output equals unmerged output;
 *  3. merge then unmerge restores the base weights;
 *  4. save → load reproduces the outputs, and saving again reproduces both files byte for byte;
 *  5. one training step (tf.variableGrads on the trainable variables + plain SGD) changes only adapter
 *     (and modulesToSave) variables, and changes some;
 *  6. forward, merge/unmerge and the training step leave no tensors behind.
 *
 * @example
 * registerTunerMatrix([{ name: 'lora × mlp', makeModel, makeInputs, makeConfig: () => new LoraConfig({...}) }]);
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import type { Module } from '../nn/module.js';
import { manualSeed } from '../nn/init.js';
import { Rng } from '../util/rng.js';
import type { ModelInputs } from '../models/base.js';
import { disposeAll } from '../tensor/memory.js';
import type { PeftConfig } from '../tuners/base/config.js';
import { getPeftModel, PeftModel } from '../tuners/peft_model.js';
import { CONFIG_NAME, WEIGHTS_NAME } from '../tuners/base/adapter_files.js';

/** float32 forward through one extra rank-r matmul path vs. a merged weight: summation order differs. */
export const MERGE_ATOL = 2e-5;
/** W + Δ − Δ in float32 is W up to one rounding of |W| + |Δ| (weights here are O(1)). */
export const UNMERGE_ATOL = 1e-6;
/** Adapter tensors are set to N(0, PERTURB_STD²) so the adapter is not the identity in checks 2–4. */
export const PERTURB_STD = 0.1;
/** SGD step size of check 5: large enough that every nonzero gradient moves its variable in float32. */
export const SGD_LR = 0.5;

export interface MatrixCase {
  name: string;
  /** A fresh base model; must be deterministic (seed inside), same weights on every call. */
  makeModel: () => Module;
  /** Inputs with labels so the model returns a loss (the caller disposes after use). */
  makeInputs: () => ModelInputs;
  makeConfig: () => PeftConfig;
  /** False when the adapter is not the identity at init (e.g. `initLoraWeights: false`). */
  freshIsIdentity?: boolean;
  /** Which trainable parameter names are allowed to change in a step (default: adapter or modulesToSave). */
  isAdapterParam?: (name: string) => boolean;
  /** Tolerance override for merged vs unmerged (quantised bases re-quantise on merge). */
  mergeAtol?: number;
  /** Skip merge checks (tuners without merge, e.g. 4-bit AdaLoRA). */
  noMerge?: boolean;
}

const defaultIsAdapterParam = (n: string) => /\.lora_|\.modules_to_save\./.test(n);

function logitsOf(peft: PeftModel | Module, inputs: ModelInputs): Float32Array {
  return tf.tidy(() => {
    const out = (peft as unknown as { forward(i: ModelInputs): { logits: Tensor } }).forward(inputs);
    return out.logits.dataSync() as Float32Array;
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'output sizes differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Sets every adapter tensor of the active adapter to seeded N(0, std²) so it changes outputs. */
export function perturbAdapter(
  peft: PeftModel,
  seed = 7,
  std = PERTURB_STD,
  isAdapter = defaultIsAdapterParam,
): void {
  const rng = new Rng(seed);
  for (const [name, p] of peft.namedParameters()) {
    if (!p.trainable || !isAdapter(name)) continue;
    const t = tf.tensor(rng.normalArray(p.size, 0, std), p.shape, 'float32');
    p.assign(name.includes('lora_magnitude_vector') ? tf.tidy(() => tf.add(p, t)) : t);
    t.dispose();
  }
}

function buildPeft(c: MatrixCase): PeftModel {
  const peft = getPeftModel(c.makeModel(), c.makeConfig());
  peft.eval();
  return peft;
}

function baseWeights(peft: PeftModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [n, p] of peft.namedParameters())
    if (n.includes('.base_layer.')) out.set(n, p.dataSync().slice() as Float32Array);
  return out;
}

/** Check 1. */
export function checkFreshIdentity(c: MatrixCase): void {
  const inputs = c.makeInputs();
  try {
    const ref = logitsOf(c.makeModel().eval(), inputs);
    const peft = buildPeft(c);
    assert.ok(
      maxAbsDiff(ref, logitsOf(peft, inputs)) <= MERGE_ATOL,
      `${c.name}: fresh adapter changed the outputs`,
    );
    peft.dispose();
  } finally {
    disposeAll(inputs);
  }
}

/** Checks 2, 3 and 6 (merge part). */
export function checkMerge(c: MatrixCase): void {
  const inputs = c.makeInputs();
  const peft = buildPeft(c);
  try {
    perturbAdapter(peft, 11, PERTURB_STD, c.isAdapterParam);
    const unmerged = logitsOf(peft, inputs);
    const disabled = peft.withAdapterDisabled(() => logitsOf(peft, inputs));
    assert.ok(
      maxAbsDiff(unmerged, disabled) > 10 * (c.mergeAtol ?? MERGE_ATOL),
      `${c.name}: perturbed adapter has no effect, the check could not fail`,
    );
    const before = baseWeights(peft);
    const n0 = tf.memory().numTensors;
    peft.merge({ safeMerge: true });
    const merged = logitsOf(peft, inputs);
    assert.ok(
      maxAbsDiff(unmerged, merged) <= (c.mergeAtol ?? MERGE_ATOL),
      `${c.name}: merged ≠ unmerged (${maxAbsDiff(unmerged, merged)})`,
    );
    peft.unmerge();
    assert.equal(tf.memory().numTensors, n0, `${c.name}: merge/unmerge leaked tensors`);
    const after = baseWeights(peft);
    for (const [n, w] of before)
      assert.ok(
        maxAbsDiff(w, after.get(n)!) <= (c.mergeAtol ?? UNMERGE_ATOL),
        `${c.name}: unmerge did not restore ${n}`,
      );
    assert.ok(
      maxAbsDiff(unmerged, logitsOf(peft, inputs)) <= (c.mergeAtol ?? MERGE_ATOL),
      `${c.name}: outputs after unmerge differ`,
    );
  } finally {
    peft.dispose();
    disposeAll(inputs);
  }
}

/** Check 4. */
export async function checkSaveLoad(c: MatrixCase): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-matrix-'));
  const inputs = c.makeInputs();
  const peft = buildPeft(c);
  let loaded: PeftModel | undefined;
  try {
    perturbAdapter(peft, 13, PERTURB_STD, c.isAdapterParam);
    const want = logitsOf(peft, inputs);
    const n0 = tf.memory().numTensors;
    await peft.savePretrained(join(dir, 'a'));
    assert.equal(tf.memory().numTensors, n0, `${c.name}: savePretrained leaked tensors`);
    loaded = await PeftModel.fromPretrained(c.makeModel(), join(dir, 'a'));
    loaded.eval();
    assert.ok(
      maxAbsDiff(want, logitsOf(loaded, inputs)) <= MERGE_ATOL,
      `${c.name}: loaded adapter gives other outputs`,
    );
    assert.equal(
      loaded.trainableParameters().length,
      0,
      `${c.name}: an adapter loaded for inference must be frozen`,
    );
    await loaded.savePretrained(join(dir, 'b'));
    for (const f of [CONFIG_NAME, WEIGHTS_NAME]) {
      assert.ok(
        readFileSync(join(dir, 'a', f)).equals(readFileSync(join(dir, 'b', f))),
        `${c.name}: ${f} differs after save → load → save`,
      );
    }
  } finally {
    peft.dispose();
    loaded?.dispose();
    disposeAll(inputs);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks 5 and 6 (training part). */
export async function checkTrainStep(c: MatrixCase): Promise<void> {
  const inputs = c.makeInputs();
  const peft = buildPeft(c);
  try {
    perturbAdapter(peft, 17, PERTURB_STD, c.isAdapterParam);
    peft.train();
    const isAdapter = c.isAdapterParam ?? defaultIsAdapterParam;
    const trainable = peft.trainableParameters();
    assert.ok(trainable.length > 0, `${c.name}: nothing is trainable`);
    for (const [n] of trainable)
      assert.ok(isAdapter(n), `${c.name}: non-adapter parameter ${n} is trainable`);
    const before = new Map(peft.namedParameters().map(([n, p]) => [n, p.dataSync().slice()]));
    const step = () => {
      manualSeed(99);
      tf.tidy(() => {
        const vars = trainable.map(([, p]) => p) as Variable[];
        const { grads } = tf.variableGrads(() => peft.forward(inputs).loss as tf.Scalar, vars);
        for (const [, v] of trainable) v.assign(tf.sub(v, tf.mul(grads[v.name]!, SGD_LR)));
      });
    };
    const n0 = tf.memory().numTensors;
    step();
    assert.equal(tf.memory().numTensors, n0, `${c.name}: a training step leaked tensors`);
    const changed: string[] = [];
    for (const [n, p] of peft.namedParameters())
      if (maxAbsDiff(before.get(n)!, p.dataSync()) > 0) changed.push(n);
    assert.ok(changed.length > 0, `${c.name}: the step changed nothing`);
    for (const n of changed)
      assert.ok(isAdapter(n), `${c.name}: the step changed non-adapter parameter ${n}`);
  } finally {
    peft.dispose();
    disposeAll(inputs);
  }
}

/** Registers the six checks of every case as node:test tests. */
export function registerTunerMatrix(cases: MatrixCase[]): void {
  for (const c of cases) {
    test(
      `${c.name}: fresh adapter is the identity`,
      { skip: c.freshIsIdentity === false ? 'init is not the identity' : false },
      () => checkFreshIdentity(c),
    );
    test(
      `${c.name}: merged == unmerged, unmerge restores base`,
      { skip: c.noMerge ? 'no merge for this tuner' : false },
      () => checkMerge(c),
    );
    test(`${c.name}: save → load → save round trip`, () => checkSaveLoad(c));
    test(`${c.name}: one SGD step changes only adapter variables, no leaks`, () => checkTrainStep(c));
  }
}
