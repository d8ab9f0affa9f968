/**
 * Loading a base model in the worker: the built-in demo, a Hugging Face folder the user picked, or a
 * llama2.c checkpoint + tokenizer. Picked files are mounted in the browser file tree
 * (`io/source_browser.ts`) and read by the same io/ code the CLI uses, so every bad-file error is the
 * library's typed error (CheckpointError naming the file and the fix).
 */
import { CheckpointError } from '../../src/errors.js';
import { mountFile, unmount } from '../../src/io/source_browser.js';
import { loadTokenizer, type Tokenizer } from '../../src/io/tokenizer.js';
import type { PreTrainedModel } from '../../src/models/base.js';
import { loadModel } from '../../src/models/load.js';
import { buildDemo, type DemoHead } from '../demo.js';
import type { ModelSource, PickedFile } from '../protocol.js';

export interface LoadedBase {
  name: string;
  model: PreTrainedModel;
  tokenizer: Tokenizer;
}

/** Mounts picked files under `root` (replacing what was there) and returns the folder holding them. */
export function mountPicked(root: string, files: PickedFile[]): string {
  unmount(root);
  for (const f of files) mountFile(`${root}/${f.path}`, f.bytes);
  // A folder picker gives `folder/file` paths: the model folder is the common first segment.
  const tops = new Set(files.map((f) => f.path.split('/')[0]));
  return tops.size === 1 && files.every((f) => f.path.includes('/')) ? `${root}/${[...tops][0]}` : root;
}

async function loadFolder(files: PickedFile[], head: DemoHead): Promise<LoadedBase> {
  if (files.length === 0)
    throw new CheckpointError(
      'model folder',
      'is empty',
      undefined,
      'pick the folder that holds config.json',
    );
  const dir = mountPicked('/models/picked', files);
  const model = await loadModel(dir, loadOptions(head));
  const tokenizer = await loadTokenizer(dir);
  return { name: dir.split('/').pop() ?? 'model', model, tokenizer };
}

async function loadLlama2c(
  checkpoint: PickedFile,
  tokenizerFile: PickedFile,
  head: DemoHead,
): Promise<LoadedBase> {
  const root = '/models/llama2c';
  unmount(root);
  const binPath = `${root}/${checkpoint.path.split('/').pop()}`;
  const tokPath = `${root}/${tokenizerFile.path.split('/').pop()}`;
  mountFile(binPath, checkpoint.bytes);
  mountFile(tokPath, tokenizerFile.bytes);
  const model = await loadModel(binPath, loadOptions(head));
  const tokenizer = await loadTokenizer(tokPath);
  return { name: binPath.split('/').pop()!, model, tokenizer };
}

/**
 * Loads the base model a `ModelSource` describes, with its own head or the one `head` asks for
 * (a causal-LM checkpoint loaded for classification gets a new, seeded classifier).
 *
 * @example
 * const base = await loadBase({ kind: 'demo', arch: 'llama', seed: 0 });
 */
export async function loadBase(source: ModelSource, head: DemoHead = {}): Promise<LoadedBase> {
  if (source.kind === 'demo') {
    const d = buildDemo(source.arch, source.seed, head);
    return { name: `demo-${source.arch}`, model: d.model, tokenizer: d.tokenizer };
  }
  if (source.kind === 'folder') return loadFolder(source.files, head);
  return loadLlama2c(source.checkpoint, source.tokenizer, head);
}

/** `loadModel` options for a head choice; a new classification head is seeded (seed 0). */
function loadOptions(head: DemoHead): { task?: 'CAUSAL_LM' | 'SEQ_CLS'; numLabels?: number; seed?: number } {
  if (!head.task) return {};
  return head.task === 'SEQ_CLS'
    ? { task: head.task, numLabels: head.numLabels ?? 2, seed: 0 }
    : { task: head.task };
}
