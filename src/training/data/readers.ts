/**
 * Row readers for TSV (GLUE: no quoting), CSV (RFC 4180 quoting), JSONL and plain text. Every row keeps
 * its 1-based line number so a bad row is reported as `file:line: reason` (DataError).
 */
import { DataError } from '../../errors.js';

export interface Row {
  /** 1-based line number in the file where the row starts. */
  line: number;
  fields: Record<string, string>;
}

export interface Table {
  file: string;
  columns: string[];
  rows: Row[];
}

export type TableFormat = 'tsv' | 'csv' | 'jsonl';

/** CoLA's headerless layout (GLUE): source, label, original label (`*` marks), sentence. */
export const COLA_COLUMNS = ['source', 'label', 'original_label', 'sentence'];

/** Known header names: if the first row holds one of them it is a header. */
const HEADER_WORDS = new Set([
  'sentence',
  'label',
  'sentence1',
  'sentence2',
  'text',
  'index',
  'question',
  'score',
  'quality',
  '#1 string',
]);

/**
 * Picks the reader by extension (`.tsv`, `.csv`, `.jsonl`/`.json`).
 * @example formatOf('glue/SST-2/train.tsv'); // 'tsv'
 */
export function formatOf(file: string): TableFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.tsv')) return 'tsv';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.json')) return 'jsonl';
  throw new DataError(
    file,
    'unknown table format',
    lower.slice(lower.lastIndexOf('.')),
    'use a .tsv, .csv or .jsonl file (or .txt for causal LM)',
  );
}

/**
 * Parses a table. `header: 'auto'` treats the first row as a header when it contains a known column
 * name; a 4-column headerless file with a 0/1 second column is read as CoLA.
 *
 * @example
 * const t = parseTable(text, 'train.tsv', 'tsv'); t.rows[0].fields.sentence;
 */
export function parseTable(
  text: string,
  file: string,
  format: TableFormat,
  header: boolean | 'auto' = 'auto',
  columns?: string[],
): Table {
  if (format === 'jsonl') return parseJsonl(text, file);
  const records = format === 'tsv' ? splitTsv(text) : splitCsv(text, file);
  if (records.length === 0) throw new DataError(file, 'the file has no rows', 0, 'check the path');
  let cols: string[];
  let start = 0;
  const first = records[0]!.cells;
  const looksLikeHeader = first.some((c) => HEADER_WORDS.has(c.trim().toLowerCase()));
  if (columns) {
    cols = columns;
    start = header === true ? 1 : 0;
  } else if (header === true || (header === 'auto' && looksLikeHeader)) {
    cols = first.map((c) => c.trim());
    start = 1;
  } else if (first.length === 4 && /^[01]$/.test(first[1]!.trim())) {
    cols = COLA_COLUMNS;
  } else {
    cols = first.map((_, i) => `column${i}`);
  }
  const rows: Row[] = [];
  for (let r = start; r < records.length; r++) {
    const { line, cells } = records[r]!;
    if (cells.length !== cols.length) {
      throw new DataError(
        `${file}:${line}`,
        `expected ${cols.length} fields (${cols.join(', ')})`,
        cells.length,
        'fix the row or its delimiters',
      );
    }
    const fields: Record<string, string> = {};
    cols.forEach((c, i) => (fields[c] = cells[i]!));
    rows.push({ line, fields });
  }
  return { file, columns: cols, rows };
}

function splitTsv(text: string): { line: number; cells: string[] }[] {
  const out: { line: number; cells: string[] }[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const l = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (l.length > 0) out.push({ line: i + 1, cells: l.split('\t') });
  });
  return out;
}

function splitCsv(text: string, file: string): { line: number; cells: string[] }[] {
  const out: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else {
        if (ch === '\n') line++;
        cell += ch;
      }
    } else if (ch === '"' && cell.length === 0) quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      cells.push(cell);
      if (!(cells.length === 1 && cells[0] === '')) out.push({ line: rowLine, cells });
      cells = [];
      cell = '';
      line++;
      rowLine = line;
    } else cell += ch;
  }
  if (quoted)
    throw new DataError(`${file}:${rowLine}`, 'unterminated quoted field', undefined, 'close the quote');
  if (cell.length > 0 || cells.length > 0) {
    cells.push(cell);
    out.push({ line: rowLine, cells });
  }
  return out;
}

function parseJsonl(text: string, file: string): Table {
  const rows: Row[] = [];
  const cols = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (l.length === 0) return;
    let obj: unknown;
    try {
      obj = JSON.parse(l);
    } catch (e) {
      throw new DataError(
        `${file}:${i + 1}`,
        'invalid JSON',
        (e as Error).message,
        'each line must be one JSON object',
      );
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new DataError(`${file}:${i + 1}`, 'each line must be a JSON object', l.slice(0, 40));
    }
    const fields: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
      fields[k] = typeof v === 'string' ? v : JSON.stringify(v);
      cols.add(k);
    }
    rows.push({ line: i + 1, fields });
  });
  if (rows.length === 0) throw new DataError(file, 'the file has no rows', 0, 'check the path');
  return { file, columns: [...cols], rows };
}
