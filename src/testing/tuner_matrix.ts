/**
 * Shared invariant checks for the tuner × model matrix (docs/design.md "Tests"; issue 4 "Must show"). Every
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
 * A case drives `PeftModel` by default (`makeConfig`); a tuner with its own model class plugs in through
 * `tuner` (a {@link MatrixTuner}: build, load, file names). A conditioned tuner (HyperLoRA: one
 * hypernetwork, adapters chosen by a per-row condition) adds two checks ({@link ConditionedTuner}):
 *
 *  7. a batch mixing conditions equals each row run under its own condition, and conditions differ;
 *  8. the adapter materialised for each condition, loaded as a plain PEFT LoRA folder, gives the
 *     outputs of that condition, and checks 2–3 (merged == unmerged, unmerge restores) hold for it.
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
import type { ModelInputs, ModelOutput } from '../models/base.js';
import { disposeAll } from '../tensor/memory.js';
import type { PeftConfig } from '../tuners/base/config.js';
import type { MergeOptions } from '../tuners/base/layer.js';
import { getPeftModel, PeftModel } from '../tuners/peft_model.js';
import { CONFIG_NAME, WEIGHTS_NAME } from '../tuners/base/adapter_files.js';
import { maxDiff } from './compare.js';

/** float32 forward through one extra rank-r matmul path vs. a merged weight: summation order differs. */
export const MERGE_ATOL = 2e-5;
/** W + Δ − Δ in float32 is W up to one rounding of |W| + |Δ| (weights here are O(1)). */
export const UNMERGE_ATOL = 1e-6;
/** Adapter tensors are set to N(0, PERTURB_STD²) so the adapter is not the identity in checks 2–4. */
export const PERTURB_STD = 0.1;
/** SGD step size of check 5: large enough that every nonzero gradient moves its variable in float32. */
export const SGD_LR = 0.5;

/** The adapted model as the checks drive it. `PeftModel` is one as is; other tuners wrap theirs. */
export interface MatrixSubject {
  forward(inputs: ModelInputs): ModelOutput;
  withAdapterDisabled<T>(fn: () => T): T;
  namedParameters(): [string, Variable][];
  trainableParameters(): [string, Variable][];
  train(): unknown;
  eval(): unknown;
  dispose(): void;
  savePretrained(dir: string): Promise<void>;
  merge?(opts?: MergeOptions): void;
  unmerge?(): void;
}

/** How the checks build, save and load a tuner (default: PEFT's getPeftModel / PeftModel.fromPretrained). */
export interface MatrixTuner<S extends MatrixSubject = MatrixSubject> {
  /** Wraps a fresh base model with a fresh adapter. */
  build(model: Module): S;
  /** Loads what `savePretrained` wrote onto a fresh base model, frozen for inference. */
  load(model: Module, dir: string): Promise<S>;
  /** The files `savePretrained` writes (compared byte for byte after save → load → save). */
  files: string[];
}

/** A subject whose adapter is picked per batch row by a condition (an index into the case's conditions). */
export interface ConditionedSubject extends MatrixSubject {
  /** `forward` (no condition argument) runs row i under `rowConditions[i]`; this runs every row under `condition`. */
  forwardUnder(inputs: ModelInputs, condition: number): ModelOutput;
  /** Writes the plain PEFT LoRA adapter of one condition (adapter_config.json + safetensors). */
  saveMaterialized(dir: string, condition: number): Promise<void>;
}

export interface ConditionedTuner extends MatrixTuner<ConditionedSubject> {
  /** Conditions 0 … numConditions − 1 are checked one by one. */
  numConditions: number;
  /** The condition of each input row in `forward` (mixes conditions; one per row of the case's inputs). */
  rowConditions: number[];
}

export interface MatrixCase {
  name: string;
  /** A fresh base model; must be deterministic (seed inside), same weights on every call. */
  makeModel: () => Module;
  /** Inputs with labels so the model returns a loss (the caller disposes after use). */
  makeInputs: () => ModelInputs;
  /** The PEFT config of the default tuner (`getPeftModel`); ignored when `tuner` is given. */
  makeConfig?: () => PeftConfig;
  /** A tuner with its own model class (and, if conditioned, checks 7–8). */
  tuner?: MatrixTuner | ConditionedTuner;
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

function logitsOf(peft: MatrixSubject | Module, inputs: ModelInputs): Float32Array {
  return tf.tidy(() => {
    const out = (peft as unknown as { forward(i: ModelInputs): { logits: Tensor } }).forward(inputs);
    return out.logits.dataSync() as Float32Array;
  });
}

/** Sets every adapter tensor of the active adapter to seeded N(0, std²) so it changes outputs. */
export function perturbAdapter(
  peft: MatrixSubject,
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

const peftTuner = (makeConfig: () => PeftConfig): MatrixTuner => ({
  build: (model) => getPeftModel(model, makeConfig()),
  load: (model, dir) => PeftModel.fromPretrained(model, dir),
  files: [CONFIG_NAME, WEIGHTS_NAME],
});

function tunerOf(c: MatrixCase): MatrixTuner {
  if (c.tuner) return c.tuner;
  if (!c.makeConfig) throw new Error(`${c.name}: a matrix case needs makeConfig or tuner`);
  return peftTuner(c.makeConfig);
}

function isConditioned(t: MatrixTuner | ConditionedTuner | undefined): t is ConditionedTuner {
  return t !== undefined && 'rowConditions' in t;
}

function buildPeft(c: MatrixCase): MatrixSubject {
  const peft = tunerOf(c).build(c.makeModel());
  peft.eval();
  return peft;
}

function baseWeights(peft: MatrixSubject): Map<string, Float32Array> {
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
      maxDiff(ref, logitsOf(peft, inputs)) <= MERGE_ATOL,
      `${c.name}: fresh adapter changed the outputs`,
    );
    peft.dispose();
  } finally {
    disposeAll(inputs);
  }
}

/** Checks 2, 3 and 6 (merge part) on a subject whose adapter is already non-trivial. */
function mergeChecks(name: string, peft: MatrixSubject, inputs: ModelInputs, mergeAtol?: number): void {
  const atol = mergeAtol ?? MERGE_ATOL;
  const restoreAtol = mergeAtol ?? UNMERGE_ATOL;
  if (!peft.merge || !peft.unmerge) throw new Error(`${name}: the subject has no merge/unmerge`);
  const unmerged = logitsOf(peft, inputs);
  const disabled = peft.withAdapterDisabled(() => logitsOf(peft, inputs));
  assert.ok(
    maxDiff(unmerged, disabled) > 10 * atol,
    `${name}: perturbed adapter has no effect, the check could not fail`,
  );
  const before = baseWeights(peft);
  const n0 = tf.memory().numTensors;
  peft.merge({ safeMerge: true });
  const merged = logitsOf(peft, inputs);
  assert.ok(maxDiff(unmerged, merged) <= atol, `${name}: merged ≠ unmerged (${maxDiff(unmerged, merged)})`);
  peft.unmerge();
  assert.equal(tf.memory().numTensors, n0, `${name}: merge/unmerge leaked tensors`);
  const after = baseWeights(peft);
  for (const [n, w] of before)
    assert.ok(maxDiff(w, after.get(n)!) <= restoreAtol, `${name}: unmerge did not restore ${n}`);
  assert.ok(maxDiff(unmerged, logitsOf(peft, inputs)) <= atol, `${name}: outputs after unmerge differ`);
}

/** Checks 2, 3 and 6 (merge part). */
export function checkMerge(c: MatrixCase): void {
  const inputs = c.makeInputs();
  const peft = buildPeft(c);
  try {
    perturbAdapter(peft, 11, PERTURB_STD, c.isAdapterParam);
    mergeChecks(c.name, peft, inputs, c.mergeAtol);
  } finally {
    peft.dispose();
    disposeAll(inputs);
  }
}

/** Check 4. */
export async function checkSaveLoad(c: MatrixCase): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-matrix-'));
  const inputs = c.makeInputs();
  const tuner = tunerOf(c);
  const peft = buildPeft(c);
  let loaded: MatrixSubject | undefined;
  try {
    perturbAdapter(peft, 13, PERTURB_STD, c.isAdapterParam);
    const want = logitsOf(peft, inputs);
    const n0 = tf.memory().numTensors;
    await peft.savePretrained(join(dir, 'a'));
    assert.equal(tf.memory().numTensors, n0, `${c.name}: savePretrained leaked tensors`);
    loaded = await tuner.load(c.makeModel(), join(dir, 'a'));
    loaded.eval();
    assert.ok(
      maxDiff(want, logitsOf(loaded, inputs)) <= MERGE_ATOL,
      `${c.name}: loaded adapter gives other outputs`,
    );
    assert.equal(
      loaded.trainableParameters().length,
      0,
      `${c.name}: an adapter loaded for inference must be frozen`,
    );
    await loaded.savePretrained(join(dir, 'b'));
    for (const f of tuner.files) {
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
      if (maxDiff(before.get(n)!, p.dataSync()) > 0) changed.push(n);
    assert.ok(changed.length > 0, `${c.name}: the step changed nothing`);
    for (const n of changed)
      assert.ok(isAdapter(n), `${c.name}: the step changed non-adapter parameter ${n}`);
  } finally {
    peft.dispose();
    disposeAll(inputs);
  }
}

/** Check 7 (and 6): a mixed-condition batch equals each row run under its own condition. */
export function checkMixedConditions(c: MatrixCase): void {
  const tuner = c.tuner;
  if (!isConditioned(tuner)) throw new Error(`${c.name}: not a conditioned tuner`);
  const inputs = c.makeInputs();
  const peft = tuner.build(c.makeModel());
  peft.eval();
  try {
    perturbAdapter(peft, 19, PERTURB_STD, c.isAdapterParam);
    const n0 = tf.memory().numTensors;
    const byCondition = Array.from({ length: tuner.numConditions }, (_, k) =>
      tf.tidy(() => peft.forwardUnder(inputs, k).logits.dataSync() as Float32Array),
    );
    const mixed = logitsOf(peft, inputs);
    assert.equal(tf.memory().numTensors, n0, `${c.name}: conditioned forwards leaked tensors`);
    for (let k = 1; k < byCondition.length; k++)
      assert.ok(
        maxDiff(byCondition[0]!, byCondition[k]!) > 10 * MERGE_ATOL,
        `${c.name}: conditions 0 and ${k} give the same outputs, the check could not fail`,
      );
    const rows = tuner.rowConditions;
    assert.equal(new Set(rows).size > 1, true, `${c.name}: rowConditions must mix conditions`);
    const width = mixed.length / rows.length;
    rows.forEach((k, i) => {
      const slice = (a: Float32Array) => a.subarray(i * width, (i + 1) * width);
      assert.ok(
        maxDiff(slice(mixed), slice(byCondition[k]!)) <= MERGE_ATOL,
        `${c.name}: row ${i} of the mixed batch differs from condition ${k} alone`,
      );
    });
  } finally {
    peft.dispose();
    disposeAll(inputs);
  }
}

/** Check 8: each condition's materialised PEFT LoRA gives that condition's outputs and merges cleanly. */
export async function checkMaterialized(c: MatrixCase): Promise<void> {
  const tuner = c.tuner;
  if (!isConditioned(tuner)) throw new Error(`${c.name}: not a conditioned tuner`);
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-matrix-'));
  const inputs = c.makeInputs();
  const peft = tuner.build(c.makeModel());
  peft.eval();
  try {
    perturbAdapter(peft, 23, PERTURB_STD, c.isAdapterParam);
    for (let k = 0; k < tuner.numConditions; k++) {
      const want = tf.tidy(() => peft.forwardUnder(inputs, k).logits.dataSync() as Float32Array);
      const n0 = tf.memory().numTensors;
      await peft.saveMaterialized(join(dir, `c${k}`), k);
      assert.equal(tf.memory().numTensors, n0, `${c.name}: saveMaterialized leaked tensors`);
      const lora = await PeftModel.fromPretrained(c.makeModel(), join(dir, `c${k}`));
      try {
        assert.ok(
          maxDiff(want, logitsOf(lora, inputs)) <= MERGE_ATOL,
          `${c.name}: materialised adapter of condition ${k} gives other outputs`,
        );
        mergeChecks(`${c.name} materialised condition ${k}`, lora, inputs, c.mergeAtol);
      } finally {
        lora.dispose();
      }
    }
  } finally {
    peft.dispose();
    disposeAll(inputs);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Registers the checks of every case as node:test tests (six, plus two for conditioned tuners). */
export function registerTunerMatrix(cases: MatrixCase[]): void {
  for (const c of cases) {
    test(
      `${c.name}: fresh adapter is the identity`,
      { skip: c.freshIsIdentity === false ? 'init is not the identity' : false },
      () => checkFreshIdentity(c),
    );
    test(
      `${c.name}: merged == unmerged, unmerge restores base`,
      {
        skip: !c.noMerge
          ? false
          : isConditioned(c.tuner)
            ? 'merged per condition in the materialised-adapter check'
            : 'no merge for this tuner',
      },
      () => checkMerge(c),
    );
    test(`${c.name}: save → load → save round trip`, () => checkSaveLoad(c));
    test(`${c.name}: one SGD step changes only adapter variables, no leaks`, () => checkTrainStep(c));
    if (!isConditioned(c.tuner)) continue;
    test(`${c.name}: a mixed-condition batch equals each row under its own condition`, () =>
      checkMixedConditions(c));
    test(`${c.name}: materialised LoRA per condition = conditioned outputs; merged == unmerged`, () =>
      checkMaterialized(c));
  }
}
