/**
 * From files to encoded examples: table rows → (text, pair, label) by column mapping → token ids,
 * and plain text → packed causal-LM blocks. Encodings are cached on disk keyed by file content hash,
 * tokenizer fingerprint and options, so a second run skips tokenisation.
 */
import { DataError } from '../../errors.js';
import { joinPath, makeDir, pathExists, readBytes, readJson, writeFileAtomic } from '../../io/source.js';
import { contentHash } from './hash.js';
import { formatOf, parseTable, type Table } from './readers.js';
import type { TextTokenizer } from './tokenizer.js';

export type DataTask = 'classification' | 'regression' | 'causal_lm';

export interface Example {
  inputIds: number[];
  tokenTypeIds?: number[];
  /** Class id, regression target, or -1 for causal LM (labels come from inputIds). */
  label: number;
  /**
   * The example's condition for a conditioned tuner (HyperLoRA): a condition id, or a condition
   * vector. The collator batches it as `ModelInputs.condition`.
   */
  condition?: number | number[];
}

export interface ColumnMap {
  text?: string;
  textPair?: string;
  label?: string;
}

export interface TableOptions {
  task: 'classification' | 'regression';
  columns?: ColumnMap;
  /** Fixed label order (string labels → index); default: numeric labels as is, strings sorted. */
  labelNames?: string[];
  maxLength: number;
  /** Header handling for TSV/CSV (`'auto'` detects GLUE headers and CoLA's headerless layout). */
  header?: boolean | 'auto';
}

export interface EncodedTable {
  examples: Example[];
  labelNames?: string[];
  columns: Required<Pick<ColumnMap, 'text' | 'label'>> & { textPair?: string };
}

const TEXT_GUESSES = ['sentence', 'text', 'sentence1', 'question', '#1 String', 'premise'];
const PAIR_GUESSES = ['sentence2', '#2 String', 'hypothesis'];
const LABEL_GUESSES = ['label', 'score', 'Quality', 'labels'];

function pick(
  table: Table,
  explicit: string | undefined,
  guesses: string[],
  role: string,
  required: boolean,
): string | undefined {
  if (explicit !== undefined) {
    if (!table.columns.includes(explicit)) {
      throw new DataError(
        table.file,
        `${role} column not found`,
        explicit,
        `columns are: ${table.columns.join(', ')}`,
      );
    }
    return explicit;
  }
  const found = guesses.find((g) => table.columns.includes(g));
  if (!found && required) {
    throw new DataError(
      table.file,
      `cannot guess the ${role} column`,
      table.columns,
      `name it with --${role}-column`,
    );
  }
  return found;
}

/**
 * Maps rows to (text, pair, label) and tokenises them.
 * @example
 * const enc = encodeTable(table, tok, { task: 'classification', maxLength: 128 });
 */
export function encodeTable(table: Table, tok: TextTokenizer, opts: TableOptions): EncodedTable {
  const text = pick(table, opts.columns?.text, TEXT_GUESSES, 'text', true)!;
  const textPair = pick(
    table,
    opts.columns?.textPair,
    text === 'sentence1' || text === '#1 String' ? PAIR_GUESSES : [],
    'text-pair',
    false,
  );
  const label = pick(table, opts.columns?.label, LABEL_GUESSES, 'label', true)!;
  let labelNames = opts.labelNames;
  if (opts.task === 'classification' && !labelNames) {
    const values = [...new Set(table.rows.map((r) => r.fields[label]!.trim()))];
    if (!values.every((v) => /^-?\d+$/.test(v))) labelNames = values.sort();
  }
  const index = labelNames ? new Map(labelNames.map((n, i) => [n, i])) : undefined;
  const examples: Example[] = table.rows.map((row) => {
    const where = `${table.file}:${row.line}`;
    const t = row.fields[text]!;
    if (t.trim().length === 0)
      throw new DataError(where, `empty ${text} field`, t, 'remove the row or fill it');
    const raw = row.fields[label]!.trim();
    let y: number;
    if (opts.task === 'regression') {
      y = Number(raw);
      if (raw === '' || !Number.isFinite(y))
        throw new DataError(where, `label must be a number for regression`, raw, 'fix the label column');
    } else if (index) {
      const id = index.get(raw);
      if (id === undefined)
        throw new DataError(where, 'unknown label', raw, `labels are ${labelNames!.join(', ')}`);
      y = id;
    } else {
      y = Number(raw);
      if (!/^-?\d+$/.test(raw) || y < 0)
        throw new DataError(
          where,
          'label must be a non-negative integer class id',
          raw,
          'fix the label column or pass --label-names',
        );
    }
    const enc = tok.encode(t, textPair ? row.fields[textPair] : undefined);
    const ids = enc.ids.slice(0, opts.maxLength);
    const ex: Example = { inputIds: ids, label: y };
    if (enc.typeIds) ex.tokenTypeIds = enc.typeIds.slice(0, opts.maxLength);
    return ex;
  });
  return { examples, labelNames, columns: { text, label, textPair } };
}

/**
 * Tokenises a corpus and packs it into blocks of `blockSize` tokens (HF `group_texts`: concatenate,
 * drop the remainder). Paragraphs (blank-line separated) are encoded one at a time so tokenizers with
 * quadratic merges stay fast; `eosTokenId`, when set, ends each paragraph.
 *
 * @example packText('a b c\n\nd e', tok, 4);
 */
export function packText(text: string, tok: TextTokenizer, blockSize: number): Example[] {
  const ids: number[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    if (para.trim().length === 0) continue;
    for (const id of tok.encode(para).ids) ids.push(id);
    if (tok.eosTokenId !== undefined) ids.push(tok.eosTokenId);
  }
  const out: Example[] = [];
  for (let s = 0; s + blockSize <= ids.length; s += blockSize)
    out.push({ inputIds: ids.slice(s, s + blockSize), label: -1 });
  if (out.length === 0)
    throw new DataError(
      'packText',
      `corpus is shorter than one block of ${blockSize} tokens`,
      ids.length,
      'lower maxLength (the block size) or add text',
    );
  return out;
}

export interface LoadOptions {
  task: DataTask;
  tokenizer: TextTokenizer;
  maxLength: number;
  columns?: ColumnMap;
  labelNames?: string[];
  header?: boolean | 'auto';
  /** Folder for the tokenisation cache; undefined disables caching. */
  cacheDir?: string;
}

export interface LoadedData {
  examples: Example[];
  labelNames?: string[];
  fromCache: boolean;
}

/**
 * Reads and encodes a data file (`.tsv/.csv/.jsonl` tables, anything else as plain text for causal LM).
 *
 * @example
 * const d = await loadExamples('glue/SST-2/train.tsv', { task: 'classification', tokenizer, maxLength: 64 });
 */
export async function loadExamples(file: string, opts: LoadOptions): Promise<LoadedData> {
  const bytes = await readBytes(file);
  const key = contentHash(
    bytes,
    opts.tokenizer.fingerprint,
    JSON.stringify([
      opts.task,
      opts.maxLength,
      opts.columns ?? {},
      opts.labelNames ?? [],
      opts.header ?? 'auto',
    ]),
  );
  const cachePath = opts.cacheDir ? joinPath(opts.cacheDir, `${key}.json`) : undefined;
  if (cachePath && (await pathExists(cachePath))) {
    const c = (await readJson(cachePath)) as { examples: Example[]; labelNames?: string[] };
    return { examples: c.examples, labelNames: c.labelNames, fromCache: true };
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  let result: LoadedData;
  if (opts.task === 'causal_lm') {
    result = { examples: packText(text, opts.tokenizer, opts.maxLength), fromCache: false };
  } else {
    const table = parseTable(text, file, formatOf(file), opts.header ?? 'auto');
    const enc = encodeTable(table, opts.tokenizer, {
      task: opts.task,
      columns: opts.columns,
      labelNames: opts.labelNames,
      maxLength: opts.maxLength,
    });
    result = { examples: enc.examples, labelNames: enc.labelNames, fromCache: false };
  }
  if (cachePath && opts.cacheDir) {
    await makeDir(opts.cacheDir);
    await writeFileAtomic(
      cachePath,
      JSON.stringify({ examples: result.examples, labelNames: result.labelNames }),
    );
  }
  return result;
}
