/**
 * DoRA (PEFT `use_dora=True`, PEFT-SPEC §7). Importing this module registers the variant, so
 * `new LoraConfig({ useDora: true })` layers find it (`lora/variant.ts`); the library entry imports it.
 *
 * @example
 * import 'lowrank'; // or './tuners/dora/index.js'
 * getPeftModel(model, new LoraConfig({ r: 8, useDora: true, targetModules: ['q_proj', 'v_proj'] }));
 */
import { registerLoraVariant } from '../lora/variant.js';
import { doraLinearVariant } from './layer.js';

registerLoraVariant('dora', 'linear', doraLinearVariant);

export { doraLinearVariant, DoraMagnitude, MAGNITUDE_DICT, rowNorm } from './layer.js';
