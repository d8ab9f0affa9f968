/**
 * Data loading shared by every front end in Node (CLI, harness, server, experiment scripts): the
 * tokenizer beside a model, train/eval example sets from files, and the tokenizer files to copy beside
 * a written model. Throws the library's typed errors; the CLI maps their field names to its flags.
 */
import path from 'node:path';
import fs from 'node:fs';
import { ConfigError } from '../errors.js';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { isDirectory, joinPath, listDir, pathExists, readBytes } from '../io/source.js';
import { loadExamples, type DataTask, type Example } from '../training/data/dataset.js';
import { contentHash } from '../training/data/hash.js';
import { splitExamples } from '../training/data/loader.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import { toTextTokenizer } from './tokenizer.js';

/**
 * The tokenizer for a model path: `explicit` when given, the Hugging Face folder itself, or the one
 * `tok*.bin` beside a llama2.c file.
 * @example tokenizerPathFor('stories260K/stories260K.bin'); // 'stories260K/tok512.bin'
 */
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
  throw new ConfigError(
    'tokenizerPath',
    `cannot find the tokenizer for ${model}`,
    undefined,
    'pass tokenizerPath (tokenizer.json, tok*.bin or a folder)',
  );
}

/** Bytes that define the tokenizer at `p` (tokenizer.json / tok*.bin, + tokenizer_config.json). */
async function tokenizerBytes(p: string): Promise<Uint8Array> {
  if (!(await isDirectory(p))) return readBytes(p);
  const files = await listDir(p);
  const name = files.includes('tokenizer.json')
    ? 'tokenizer.json'
    : files.find((f) => /^tok\d*\.bin$|^tokenizer\.bin$/.test(f));
  const cfg = joinPath(p, 'tokenizer_config.json');
  const main = name ? await readBytes(joinPath(p, name)) : new Uint8Array();
  const extra = (await pathExists(cfg)) ? await readBytes(cfg) : new Uint8Array();
  const out = new Uint8Array(main.length + extra.length);
  out.set(main);
  out.set(extra, main.length);
  return out;
}

/**
 * Content hash of the tokenizer at `p` (the tokenisation cache key).
 * @example toTextTokenizer(await loadTokenizer(dir), await tokenizerFingerprint(dir));
 */
export async function tokenizerFingerprint(p: string): Promise<string> {
  return contentHash(await tokenizerBytes(p));
}

/**
 * Loads the tokenizer of `model` (see {@link tokenizerPathFor}) both raw and as the data pipeline's.
 * @example const tok = await openTokenizer('stories260K/stories260K.bin');
 */
export async function openTokenizer(
  model: string,
  explicit?: string,
): Promise<{ raw: Tokenizer; text: TextTokenizer; path: string }> {
  const p = tokenizerPathFor(model, explicit);
  const raw = await loadTokenizer(p);
  return { raw, text: toTextTokenizer(raw, await tokenizerFingerprint(p)), path: p };
}

/**
 * The task of a data file when not given: tables are classification, anything else causal LM text.
 * @example taskOfFile('train.tsv'); // 'classification'
 */
export function taskOfFile(dataFile: string): DataTask {
  return /\.(tsv|csv|jsonl|json)$/i.test(dataFile) ? 'classification' : 'causal_lm';
}

/** Where the examples come from and how they are cut. */
export interface DataOptions {
  /** Training file: a .tsv/.csv/.jsonl table or a text file. */
  data: string;
  /** Evaluation file (default: `evalFraction` of `data`, split with `seed`). */
  evalData?: string;
  /** Default: {@link taskOfFile}. */
  task?: DataTask;
  textColumn?: string;
  textPairColumn?: string;
  labelColumn?: string;
  labelNames?: string[];
  maxLength: number;
  evalFraction: number;
  /** Keep at most this many evaluation examples (0 or undefined: all). */
  evalLimit?: number;
  seed: number;
  /** Tokenisation cache folder (undefined: no cache). */
  cacheDir?: string;
}

export interface DataSets {
  task: DataTask;
  train: Example[];
  eval: Example[];
  labelNames?: string[];
  numLabels: number;
}

/**
 * Reads the training file (and the evaluation file or a held-out split) as encoded examples.
 * @example const d = await loadDataSets({ data: 'train.tsv', maxLength: 128, evalFraction: 0.1, seed: 42 }, tok.text);
 */
export async function loadDataSets(o: DataOptions, tok: TextTokenizer): Promise<DataSets> {
  const task = o.task ?? taskOfFile(o.data);
  const opts = {
    task,
    tokenizer: tok,
    maxLength: o.maxLength,
    columns: { text: o.textColumn, textPair: o.textPairColumn, label: o.labelColumn },
    labelNames: o.labelNames,
    cacheDir: o.cacheDir,
  };
  const train = await loadExamples(o.data, opts);
  let evalSet: Example[];
  let trainSet = train.examples;
  if (o.evalData) {
    evalSet = (await loadExamples(o.evalData, { ...opts, labelNames: opts.labelNames ?? train.labelNames }))
      .examples;
  } else {
    const split = splitExamples(train.examples, o.evalFraction, o.seed);
    trainSet = split.train;
    evalSet = split.evalSet;
  }
  const limit = o.evalLimit ?? 0;
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
