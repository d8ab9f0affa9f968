/** `lowrank` flags → the run floor's data options (the loading itself lives in `src/run/data.ts`). */
import type { DataTask } from '../training/data/dataset.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import { loadDataSets as loadFromOptions, type DataOptions, type DataSets } from '../run/data.js';
import { UsageError, type ParsedValue } from './args.js';

export { openTokenizer, tokenizerFiles, tokenizerPathFor, type DataSets } from '../run/data.js';

/**
 * The data options of `lowrank train` / `eval` flags.
 * @example dataOptions({ data: 'train.tsv', 'max-length': 128, ... }, 'runs/.lowrank-cache');
 */
export function dataOptions(
  v: Record<string, ParsedValue | undefined>,
  cacheRoot: string | undefined,
): DataOptions {
  const data = v.data as string | undefined;
  if (!data) throw new UsageError('missing --data (a .tsv/.csv/.jsonl table or a text file)');
  return {
    data,
    evalData: v['eval-data'] as string | undefined,
    task: v.task as DataTask | undefined,
    textColumn: v['text-column'] as string | undefined,
    textPairColumn: v['text-pair-column'] as string | undefined,
    labelColumn: v['label-column'] as string | undefined,
    labelNames: v['label-names'] as string[] | undefined,
    maxLength: v['max-length'] as number,
    evalFraction: v['eval-fraction'] as number,
    evalLimit: v['eval-limit'] as number | undefined,
    seed: v.seed as number,
    cacheDir: v['no-cache'] || !cacheRoot ? undefined : cacheRoot,
  };
}

/**
 * Reads --data (and --eval-data or a held-out split) as encoded examples.
 * @example const d = await loadDataSets(values, tok.text, 'runs/.lowrank-cache');
 */
export function loadDataSets(
  v: Record<string, ParsedValue | undefined>,
  tok: TextTokenizer,
  cacheRoot: string | undefined,
): Promise<DataSets> {
  return loadFromOptions(dataOptions(v, cacheRoot), tok);
}
