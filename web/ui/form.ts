/**
 * Form state the page resets between runs and models, so nothing on screen belongs to an earlier run
 * or model: the demo's default run filled into the form, and the run / output views cleared.
 */
import type { DemoRun } from '../demo_runs.js';

function field<T extends HTMLElement = HTMLInputElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: element #${id} is missing`);
  return e as T;
}

/**
 * Fills the method and training fields with a demo model's default run. The targets field remembers
 * it was filled by a preset, so loading another model can clear names that model may not have.
 *
 * @example
 * applyDemoRun(DEMO_RUNS.llama);
 */
export function applyDemoRun(run: DemoRun): void {
  field<HTMLSelectElement>('method').value = run.method;
  const values: Record<string, number | string> = {
    r: run.r,
    'init-r': run.initR,
    alpha: run.alpha,
    tinit: run.tinit,
    tfinal: run.tfinal,
    'delta-t': run.deltaT,
    steps: run.steps,
    lr: run.learningRate,
    batch: run.batchSize,
    'seq-len': run.seqLen,
    targets: run.targetModules.join(', '),
  };
  for (const [id, v] of Object.entries(values)) field(id).value = String(v);
  field('targets').dataset.preset = field('targets').value;
}

/** Empties the targets field if it still holds a demo preset (the new model has its own defaults). */
export function clearPresetTargets(): void {
  const t = field('targets');
  if (t.dataset.preset !== undefined && t.value === t.dataset.preset) t.value = '';
  delete t.dataset.preset;
}

/** Clears the progress bar, its text and the worker's notes (before a run, or for a new model). */
export function clearProgress(): void {
  const p = field<HTMLProgressElement>('progress');
  p.max = 1;
  p.value = 0;
  field('progress-text').textContent = '';
  field('notes').textContent = '';
}

/** Clears the generated text / predicted label and its numbers (they belong to the previous adapter or model). */
export function clearOutputs(): void {
  field('output').textContent = '';
  const logits = field('probe-logits');
  logits.textContent = '';
  delete logits.dataset.result;
}
