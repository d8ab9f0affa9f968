/**
 * The model the page's step 1 names: the built-in demo, a picked Hugging Face folder, or a llama2.c
 * checkpoint with its tokenizer, read from the form into the worker's {@link ModelSource}.
 */
import { ConfigError } from '../../src/errors.js';
import { buffersOf, readPicked } from '../files.js';
import type { ModelSource } from '../protocol.js';

const input = (id: string): HTMLInputElement => document.getElementById(id) as HTMLInputElement;

/**
 * Reads the chosen model source; rejects with a ConfigError naming what to pick when files are missing.
 *
 * @example
 * const { source, name, store } = await modelSourceFromForm();
 */
export function modelSourceFromForm(): Promise<{ source: ModelSource; name: string; store: boolean }> {
  const kind = (document.querySelector('input[name="model-kind"]:checked') as HTMLInputElement).value;
  if (kind === 'demo') {
    const arch = (document.getElementById('demo-arch') as HTMLSelectElement).value as 'llama' | 'bert';
    return Promise.resolve({ source: { kind: 'demo', arch, seed: 0 }, name: `demo-${arch}`, store: false });
  }
  if (kind === 'folder') {
    return readPicked(input('model-folder').files).then((files) => {
      if (files.length === 0)
        throw new ConfigError(
          'model folder',
          'none picked',
          undefined,
          'choose a Hugging Face model folder first',
        );
      const name = files[0]!.path.split('/')[0] || 'model';
      return { source: { kind: 'folder', files }, name, store: true };
    });
  }
  return Promise.all([readPicked(input('llama2c-bin').files), readPicked(input('llama2c-tok').files)]).then(
    ([bin, tok]) => {
      if (bin.length === 0 || tok.length === 0)
        throw new ConfigError(
          'llama2.c',
          'needs the .bin checkpoint and its tokenizer',
          undefined,
          'pick both files',
        );
      return {
        source: { kind: 'llama2c', checkpoint: bin[0]!, tokenizer: tok[0]! },
        name: bin[0]!.path,
        store: true,
      };
    },
  );
}

/** The byte buffers of a source, to transfer (not copy) to the worker. */
export function sourceBuffers(s: ModelSource): ArrayBuffer[] {
  if (s.kind === 'folder') return buffersOf(s.files);
  if (s.kind === 'llama2c') return buffersOf([s.checkpoint, s.tokenizer]);
  return [];
}
