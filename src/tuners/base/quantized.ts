/**
 * Adapters over a 4-bit base (QLoRA, Dettmers et al. 2023, arXiv 2305.14314). There is no QLoRA tuner
 * class: the base is quantised (`quantizeModel`, or `loadModel(path, { quantize: 'nf4', doubleQuant:
 * true })`, nn/linear4bit.ts) and any LoRA-family config is applied on top, since the adapter layers
 * wrap any `LinearLike`. What this file adds is the tuner side: importing it (the tuners entry does)
 * installs the merge warning, as PEFT's 4-bit LoRA layer warns "Merge lora module to 4-bit linear may
 * get different generations due to rounding errors" (PEFT tuners/lora/bnb.py `Linear4bit.merge`).
 *
 * @example
 * const model = await loadModel('stories260K.bin', { quantize: 'nf4', doubleQuant: true });
 * const peft = getPeftModel(model, new LoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'] }));
 * peft.merge(); // warns REQUANTIZE_WARNING once per 4-bit layer
 */
import { onRequantize } from '../../nn/linear4bit.js';
import { tunerWarn } from './warnings.js';

/** The warning emitted when a merge re-quantises a 4-bit layer. */
export const REQUANTIZE_WARNING =
  'Merging an adapter into a 4-bit layer dequantises, adds the update and re-quantises the weight: ' +
  'outputs can differ slightly from the unmerged model because of the 4-bit rounding.';

onRequantize(() => tunerWarn(REQUANTIZE_WARNING));
