/**
 * Reading the config of a PEFT adapter folder (PEFT `PeftConfig.from_pretrained`): the tuner is chosen
 * by `peft_type` from the registry, the JSON is read with Python's number and key rules, and keys
 * this version does not know are reported and dropped, as PEFT does.
 *
 * @example const config = await readConfig('out/adapter', false); // inferenceMode = true
 */
import { CheckpointError } from '../errors.js';
import { configFromJson, type PeftConfig } from './base/config.js';
import { pyJsonParse, type PyJson } from './base/py_json.js';
import { readAdapterConfigText } from './base/adapter_files.js';
import { tunerWarn } from './base/warnings.js';
import { getTuner } from './registry.js';

/** Reads and builds the config of an adapter folder; unknown keys warn (PEFT drops them too). */
export async function readConfig(dir: string, isTrainable: boolean): Promise<PeftConfig> {
  const text = await readAdapterConfigText(dir);
  const raw = parseAdapterConfig(text, dir) as { peft_type?: unknown };
  const entry = getTuner(String(raw.peft_type ?? 'LORA'));
  const { config, unknownKeys } = configFromJson(entry.configClass, text);
  if (unknownKeys.length)
    tunerWarn(
      `${dir}/adapter_config.json: ignoring keys this version does not know: ${unknownKeys.join(', ')}`,
    );
  config.inferenceMode = !isTrainable;
  return config;
}

/** Parses adapter_config.json text; malformed JSON becomes a CheckpointError naming the file. */
function parseAdapterConfig(text: string, dir: string): PyJson {
  try {
    return pyJsonParse(text);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new CheckpointError(
      `${dir}/adapter_config.json`,
      'is not valid JSON',
      e.message,
      're-save the adapter with savePretrained() or fix the file by hand',
    );
  }
}
