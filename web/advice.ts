/**
 * Inline advice next to the method knobs: what the chosen method is good for (the trade-offs the
 * CLI's `recommend` explains at length) and concrete warnings about the chosen numbers, above all
 * AdaLoRA's schedule, whose phases (warm-up `tinit`, budget decay, final `tfinal`) must fit in the run.
 */
import type { MethodSpec, ModelInfo } from './protocol.js';

const SUMMARY: Record<MethodSpec['method'], string> = {
  adalora:
    'AdaLoRA starts every matrix at rank init r and moves rank to where it matters (watch the heatmap); ' +
    'best when the budget is tight and you do not know which layers need capacity.',
  lora: 'LoRA: fixed rank r everywhere; the simplest and fastest, a good baseline.',
  dora: 'DoRA: LoRA plus a learned magnitude per output; closer to full fine-tuning at the same rank, slightly slower.',
  qlora:
    'QLoRA: the base weights are stored in 4-bit NF4 (≈8× less memory); for bases that would not fit otherwise.',
};

/** Advice text for the chosen method and numbers. */
export function adviceFor(m: MethodSpec, steps: number, model: ModelInfo | null): string {
  const notes: string[] = [SUMMARY[m.method]];
  if (m.method === 'adalora') {
    if (m.r >= m.initR) notes.push(`Target rank r (${m.r}) must be below init r (${m.initR}).`);
    const decay = steps - m.tinit - m.tfinal;
    if (decay <= 0) {
      notes.push(
        `tinit + tfinal (${m.tinit + m.tfinal}) must be below the number of steps (${steps}) to leave room for rank decay.`,
      );
    } else if (decay < m.deltaT) {
      notes.push(
        `The decay phase (${decay} steps) is shorter than ΔT (${m.deltaT}): no masking step would happen.`,
      );
    } else {
      notes.push(
        `Ranks are re-allocated every ${m.deltaT} steps between step ${m.tinit} and ${steps - m.tfinal} (${Math.floor(decay / m.deltaT)} masking steps).`,
      );
    }
  } else if (m.r > 64) {
    notes.push(`r = ${m.r} is large for an adapter; 4–16 is usual.`);
  }
  if (m.alpha / Math.max(1, m.r) > 8)
    notes.push(
      `alpha/r = ${(m.alpha / m.r).toFixed(1)} is a large scaling; lower alpha or the learning rate if the loss jumps.`,
    );
  if (model && model.taskType === 'SEQ_CLS')
    notes.push(
      'Classification: the classifier head is trained and saved with the adapter (modules_to_save).',
    );
  return notes.join(' ');
}
