/**
 * QLoRA (Dettmers et al. 2023, arXiv 2305.14314): LoRA / AdaLoRA adapters in f32 over a frozen base
 * whose linear layers hold 4-bit NF4/FP4 weights (PEFT-SPEC §8). There is no QLoRA tuner class: the
 * base is quantised (`quantizeModel`, or `loadModel(path, { quantize: 'nf4', doubleQuant: true })`) and
 * any LoRA-family config is applied on top, since the adapter layers wrap any `LinearLike`. Importing
 * this module installs the merge warning (PEFT: "Merge lora module to 4-bit linear may get different
 * generations due to rounding errors").
 *
 * @example
 * const model = await loadModel('stories260K.bin', { quantize: 'nf4', doubleQuant: true });
 * const peft = getPeftModel(model, new LoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'] }));
 */
import { onRequantize } from '../../nn/linear4bit.js';
import { tunerWarn } from '../base/warnings.js';

/** The warning emitted when a merge re-quantises a 4-bit layer. */
export const REQUANTIZE_WARNING =
  'Merging an adapter into a 4-bit layer dequantises, adds the update and re-quantises the weight: ' +
  'outputs can differ slightly from the unmerged model because of the 4-bit rounding.';

onRequantize(() => tunerWarn(REQUANTIZE_WARNING));

export { Linear4bit, quantizeModel, quantizeModelAsync, onRequantize } from '../../nn/linear4bit.js';
export { memoryByCategory, type MemoryByCategory } from '../../nn/memory_report.js';
export type { QuantizeModelOptions, QuantizeModelReport } from '../../nn/linear4bit.js';
export * from './report.js';
