/**
 * PEFT adapter folders on disk (PEFT utils/save_and_load.py): `adapter_config.json` (snake_case, Python's
 * `json.dumps(indent=2, sort_keys=True)` bytes) and `adapter_model.safetensors` (metadata
 * `{"format": "pt"}`). Writes are atomic (temp file + rename). Pickled `adapter_model.bin` files are
 * refused (they are code, docs/design.md "Floors").
 *
 * @example
 * await writeAdapterFolder('out/adapter', config.toJsonString(), tensors);
 * const text = await readAdapterConfigText('out/adapter');
 */
import type { Tensor } from '../../tensor/tf.js';
import { CheckpointError } from '../../errors.js';
import { joinPath, makeDir, pathExists, readText, writeFileAtomic } from '../../io/source.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';

export const CONFIG_NAME = 'adapter_config.json';
export const WEIGHTS_NAME = 'adapter_model.safetensors';
/** PEFT writes this metadata into every adapter safetensors file. */
export const SAFETENSORS_METADATA = { format: 'pt' };

/** The folder of an adapter: `dir` for "default", `dir/<name>` otherwise (PEFT peft_model.py `save_pretrained`). */
export function adapterDir(dir: string, adapter: string): string {
  return adapter === 'default' ? dir : joinPath(dir, adapter);
}

/** Writes config text and tensors (the caller keeps ownership of the tensors). */
export async function writeAdapterFolder(
  dir: string,
  configText: string,
  tensors: Map<string, Tensor>,
): Promise<void> {
  await makeDir(dir);
  await saveSafetensors(joinPath(dir, WEIGHTS_NAME), tensors, SAFETENSORS_METADATA);
  await writeFileAtomic(joinPath(dir, CONFIG_NAME), configText);
}

/** Reads `adapter_config.json` text, with a clear error when the folder is not an adapter. */
export async function readAdapterConfigText(dir: string): Promise<string> {
  const p = joinPath(dir, CONFIG_NAME);
  if (!(await pathExists(p))) {
    throw new CheckpointError(
      dir,
      `has no ${CONFIG_NAME}, so it is not a PEFT adapter folder`,
      p,
      'pass the folder savePretrained() wrote (a named adapter lives in <dir>/<name>)',
    );
  }
  return readText(p);
}

/** Reads the adapter tensors (the caller owns and disposes them). */
export async function readAdapterWeights(dir: string): Promise<Map<string, Tensor>> {
  const p = joinPath(dir, WEIGHTS_NAME);
  if (!(await pathExists(p))) {
    const bin = joinPath(dir, 'adapter_model.bin');
    if (await pathExists(bin)) {
      throw new CheckpointError(
        bin,
        'is a pickle file, which lowrank never loads (pickles can run code)',
        bin,
        'convert it in Python with PeftModel.save_pretrained(dir, safe_serialization=True)',
      );
    }
    throw new CheckpointError(dir, `has no ${WEIGHTS_NAME}`, p, 'save the adapter with savePretrained()');
  }
  return (await loadSafetensors(p)).tensors;
}
