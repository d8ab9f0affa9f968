/**
 * Resumable checkpoints: `checkpoints/step-<n>/` holds the trainable weights, the optimizer slots,
 * the step hook's tensors (AdaLoRA's importance EMAs) and `trainer_state.json` (step, schedule,
 * RNG states, data position). Every file is written atomically (temp + fsync + rename) and
 * `trainer_state.json` goes last, so a folder without it is an interrupted write and is ignored.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError, LowrankError } from '../errors.js';
import {
  baseName,
  joinPath,
  listDir,
  loadSafetensors,
  makeDir,
  pathExists,
  readJson,
  saveSafetensors,
  writeFileAtomic,
} from '../io/index.js';
import type { LoaderState } from './data/loader.js';
import type { RngState } from '../util/rng.js';

export const STATE_FILE = 'trainer_state.json';
const FORMAT_VERSION = 1;

export interface TrainerState {
  version: number;
  /** Optimizer steps completed. */
  step: number;
  optimizerStep: number;
  loader: LoaderState;
  /** `defaultRng()` state (dropout). */
  initRng: RngState;
  nonFiniteInARow: number;
  lastLoss: number;
  best?: { step: number; metric: string; value: number };
  hook?: unknown;
  /** Hash of the options that must not change across a resume. */
  fingerprint: string;
}

export interface CheckpointContent {
  trainable: Map<string, Tensor>;
  optimizer: Map<string, Tensor>;
  hook: Map<string, Tensor>;
  state: TrainerState;
}

/** `checkpoints/step-000042` (zero-padded so names sort by step). */
export function checkpointDir(outputDir: string, step: number): string {
  return joinPath(outputDir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);
}

/**
 * Writes one checkpoint; tensors are read, not disposed.
 * @example await saveCheckpoint(dir, { trainable, optimizer, hook, state });
 */
export async function saveCheckpoint(dir: string, c: CheckpointContent): Promise<void> {
  await makeDir(dir);
  await saveSafetensors(joinPath(dir, 'trainable.safetensors'), c.trainable as Map<string, Tensor>);
  await saveSafetensors(joinPath(dir, 'optimizer.safetensors'), c.optimizer as Map<string, Tensor>);
  if (c.hook.size > 0)
    await saveSafetensors(joinPath(dir, 'hook.safetensors'), c.hook as Map<string, Tensor>);
  await writeFileAtomic(
    joinPath(dir, STATE_FILE),
    JSON.stringify({ ...c.state, version: FORMAT_VERSION }, null, 1),
  );
}

/**
 * Reads a checkpoint folder (the caller owns and disposes the returned tensors).
 * @example const c = await loadCheckpoint('run/checkpoints/step-000100');
 */
export async function loadCheckpoint(dir: string): Promise<CheckpointContent> {
  const statePath = joinPath(dir, STATE_FILE);
  if (!(await pathExists(statePath))) {
    throw new CheckpointError(
      dir,
      `not a complete checkpoint (no ${STATE_FILE})`,
      undefined,
      'resume from a folder under <run>/checkpoints or pass the run folder',
    );
  }
  const state = (await readJson(statePath)) as TrainerState;
  if (state.version !== FORMAT_VERSION)
    throw new CheckpointError(
      statePath,
      'unknown checkpoint version',
      state.version,
      `this lowrank writes version ${FORMAT_VERSION}`,
    );
  const trainable = (await loadSafetensors(joinPath(dir, 'trainable.safetensors'))).tensors;
  const optimizer = (await loadSafetensors(joinPath(dir, 'optimizer.safetensors'))).tensors;
  const hookPath = joinPath(dir, 'hook.safetensors');
  const hook = (await pathExists(hookPath))
    ? (await loadSafetensors(hookPath)).tensors
    : new Map<string, Tensor>();
  return { trainable, optimizer, hook, state };
}

/**
 * The newest complete checkpoint of a run folder, or undefined when there is none.
 * @example const dir = await latestCheckpoint('runs/sst2');
 */
export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  const root = joinPath(outputDir, 'checkpoints');
  if (!(await pathExists(root))) return undefined;
  const names = (await listDir(root)).filter((n) => /^step-\d+$/.test(n)).sort();
  for (let i = names.length - 1; i >= 0; i--) {
    const dir = joinPath(root, names[i]!);
    if (await pathExists(joinPath(dir, STATE_FILE))) return dir;
  }
  return undefined;
}

/** A checkpoint passed over by {@link findResumableCheckpoint}, and why. */
export interface SkippedCheckpoint {
  dir: string;
  reason: string;
}

/**
 * The newest checkpoint of a run folder that loads completely (state file parses, every tensor file is
 * whole), newest first; each newer one that does not is listed in `skipped` with the reason, so a run
 * whose last checkpoint was cut short (disk full, kill during a copy) resumes from the one before it.
 * @example const { dir, skipped } = await findResumableCheckpoint('runs/sst2');
 */
export async function findResumableCheckpoint(
  outputDir: string,
): Promise<{ dir?: string; skipped: SkippedCheckpoint[] }> {
  const root = joinPath(outputDir, 'checkpoints');
  const skipped: SkippedCheckpoint[] = [];
  if (!(await pathExists(root))) return { skipped };
  const names = (await listDir(root)).filter((n) => /^step-\d+$/.test(n)).sort();
  for (let i = names.length - 1; i >= 0; i--) {
    const dir = joinPath(root, names[i]!);
    if (!(await pathExists(joinPath(dir, STATE_FILE)))) {
      skipped.push({ dir, reason: `incomplete (no ${STATE_FILE}: the write was interrupted)` });
      continue;
    }
    try {
      disposeCheckpoint(await loadCheckpoint(dir));
      return { dir, skipped };
    } catch (e) {
      // the file and what is wrong with it (the "regenerate the file" advice does not apply here:
      // an older checkpoint is used instead)
      const reason = e instanceof LowrankError ? `${baseName(e.where)}: ${e.rule}` : (e as Error).message;
      skipped.push({ dir, reason });
    }
  }
  return { skipped };
}

/** Disposes every tensor of a loaded checkpoint. */
export function disposeCheckpoint(c: CheckpointContent): void {
  tf.dispose([...c.trainable.values(), ...c.optimizer.values(), ...c.hook.values()]);
}
