/** Data loading for the CLI: tokenizer resolution and train/eval example sets from flags. */
import path from 'node:path';
import fs from 'node:fs';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { loadExamples, type DataTask, type Example } from '../training/data/dataset.js';
import { splitExamples } from '../training/data/loader.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import { UsageError, type ParsedValue } from './args.js';
import { toTextTokenizer, tokenizerFingerprint } from './tokenizer.js';

/** The tokenizer for a model path: explicit flag, the HF folder, or a tok*.bin beside a llama2.c file. */
export function tokenizerPathFor(model: string, explicit?: string): string {
  if (explicit) return explicit;
  if (fs.existsSync(model) && fs.statSync(model).isDirectory()) return model;
  const dir = path.dirname(model);
  const bins = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /^tok\d*\.bin$|^tokenizer\.bin$/.test(f) && f !== path.basename(model))
    : [];
  if (bins.length === 1) return path.join(dir, bins[0]!);
  throw new UsageError(
    `cannot find the tokenizer for ${model}: pass --tokenizer (tokenizer.json, tok*.bin or a folder)`,
  );
}

export async function openTokenizer(
  model: string,
  explicit?: string,
): Promise<{ raw: Tokenizer; text: TextTokenizer; path: string }> {
  const p = tokenizerPathFor(model, explicit);
  const raw = await loadTokenizer(p);
  return { raw, text: toTextTokenizer(raw, await tokenizerFingerprint(p)), path: p };
}

export function taskFor(v: Record<string, ParsedValue | undefined>, dataFile: string): DataTask {
  if (v.task) return v.task as DataTask;
  return /\.(tsv|csv|jsonl|json)$/i.test(dataFile) ? 'classification' : 'causal_lm';
}

export interface DataSets {
  task: DataTask;
  train: Example[];
  eval: Example[];
  labelNames?: string[];
  numLabels: number;
}

/**
 * Reads --data (and --eval-data or a held-out split) as encoded examples.
 * @example const d = await loadDataSets(values, tok.text, 'runs/x');
 */
export async function loadDataSets(
  v: Record<string, ParsedValue | undefined>,
  tok: TextTokenizer,
  cacheRoot: string | undefined,
): Promise<DataSets> {
  const data = v.data as string | undefined;
  if (!data) throw new UsageError('missing --data (a .tsv/.csv/.jsonl table or a text file)');
  const task = taskFor(v, data);
  const columns = {
    text: v['text-column'] as string | undefined,
    textPair: v['text-pair-column'] as string | undefined,
    label: v['label-column'] as string | undefined,
  };
  const opts = {
    task,
    tokenizer: tok,
    maxLength: v['max-length'] as number,
    columns,
    labelNames: v['label-names'] as string[] | undefined,
    cacheDir: v['no-cache'] || !cacheRoot ? undefined : cacheRoot,
  };
  const train = await loadExamples(data, opts);
  let evalSet: Example[];
  let trainSet = train.examples;
  const evalFile = v['eval-data'] as string | undefined;
  if (evalFile) {
    evalSet = (await loadExamples(evalFile, { ...opts, labelNames: opts.labelNames ?? train.labelNames }))
      .examples;
  } else {
    const split = splitExamples(train.examples, v['eval-fraction'] as number, v.seed as number);
    trainSet = split.train;
    evalSet = split.evalSet;
  }
  const limit = (v['eval-limit'] as number | undefined) ?? 0;
  if (limit > 0) evalSet = evalSet.slice(0, limit);
  const numLabels =
    task === 'regression'
      ? 1
      : task === 'causal_lm'
        ? 0
        : (train.labelNames?.length ?? Math.max(...train.examples.map((e) => e.label)) + 1);
  return {
    task,
    train: trainSet,
    eval: evalSet,
    labelNames: train.labelNames,
    numLabels: Math.max(numLabels, task === 'classification' ? 2 : numLabels),
  };
}

/**
 * The tokenizer files to copy beside a written model (a single tokenizer file, or the tokenizer files
 * of a folder: tokenizer.json, tokenizer_config.json, llama2.c tok*.bin).
 * @example saveModel(model, out, { tokenizerFiles: tokenizerFiles('stories260K/tok512.bin') });
 */
export function tokenizerFiles(tokPath: string | undefined): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  if (!tokPath || !fs.existsSync(tokPath)) return files;
  if (fs.statSync(tokPath).isFile()) files[path.basename(tokPath)] = fs.readFileSync(tokPath);
  else
    for (const f of fs.readdirSync(tokPath))
      if (/^(tokenizer\.json|tokenizer_config\.json|tok\d*\.bin|tokenizer\.bin)$/.test(f))
        files[f] = fs.readFileSync(path.join(tokPath, f));
  return files;
}
