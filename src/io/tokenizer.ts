/**
 * `loadTokenizer(path)`: a Hugging Face folder or `tokenizer.json` file (via `@huggingface/tokenizers`),
 * or a llama2.c `tok*.bin` / `tokenizer.bin` file, or a folder holding one.
 */
import { CheckpointError } from '../errors.js';
import { HFTokenizer } from './tokenizer_hf.js';
import { Llama2cTokenizer } from './tokenizer_llama2c.js';
import { baseName, isDirectory, joinPath, listDir, pathExists, readBytes, readJson } from './source.js';

export type { Tokenizer, EncodeOptions, DecodeOptions, PairEncoding } from './tokenizer_types.js';
export { HFTokenizer } from './tokenizer_hf.js';
export { Llama2cTokenizer } from './tokenizer_llama2c.js';
export { llama2cToTokenizerJson } from './tokenizer_convert.js';

/** llama2.c tokenizer file names: `tokenizer.bin` or `tok<N>.bin` (as its tokenizer.py export writes). */
export function isLlama2cTokenizerName(name: string): boolean {
  return name === 'tokenizer.bin' || /^tok\d*\.bin$/.test(name);
}

/** `dir` is the folder holding `file`; used to find tokenizer_config.json beside tokenizer.json. */
function parentDir(file: string): string {
  const name = baseName(file);
  return file.slice(0, file.length - name.length) || '.';
}

async function loadHF(tokFile: string): Promise<HFTokenizer> {
  const configFile = joinPath(parentDir(tokFile), 'tokenizer_config.json');
  const config = (await pathExists(configFile)) ? await readJson(configFile) : {};
  return HFTokenizer.fromJson(await readJson(tokFile), config, tokFile);
}

async function loadFromDir(dir: string): Promise<HFTokenizer | Llama2cTokenizer> {
  const files = await listDir(dir);
  if (files.includes('tokenizer.json')) return loadHF(joinPath(dir, 'tokenizer.json'));
  const bin = files.find(isLlama2cTokenizerName);
  if (bin !== undefined)
    return Llama2cTokenizer.fromBytes(await readBytes(joinPath(dir, bin)), joinPath(dir, bin));
  const hint =
    files.includes('tokenizer.model') || files.includes('vocab.txt') || files.includes('vocab.json');
  throw new CheckpointError(
    dir,
    'has no tokenizer.json and no llama2.c tok*.bin',
    files,
    hint
      ? 'only tokenizer.json is read; save one with `AutoTokenizer.from_pretrained(dir).save_pretrained(dir)` (fast tokenizer)'
      : 'pass the model folder that holds tokenizer.json, or a tok*.bin file',
  );
}

/**
 * Loads a tokenizer from a folder (a llama2.c `tok*.bin`/`tokenizer.bin` if it has one, else
 * `tokenizer.json` [+ `tokenizer_config.json`]), a `tokenizer.json` file, or a llama2.c tokenizer file.
 *
 * @example
 * const tok = await loadTokenizer('../shared/data/models/stories260K/tok512.bin');
 * tok.encode('Once upon a time'); // [1, 403, 407, 261, 378]
 */
export async function loadTokenizer(path: string): Promise<HFTokenizer | Llama2cTokenizer> {
  if (await isDirectory(path)) return loadFromDir(path);
  if (!(await pathExists(path))) {
    throw new CheckpointError(path, 'no such tokenizer file or folder', undefined, 'check the path');
  }
  if (path.endsWith('.json')) return loadHF(path);
  if (path.endsWith('.bin')) return Llama2cTokenizer.fromBytes(await readBytes(path), path);
  throw new CheckpointError(
    path,
    'is neither a tokenizer.json nor a llama2.c .bin tokenizer',
    undefined,
    'pass tokenizer.json, tok*.bin or their folder',
  );
}
