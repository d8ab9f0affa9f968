/**
 * The page's data (pasted text or a dropped TSV/CSV/JSONL file) turned into the trainer's examples
 * with the library's readers: plain text is packed into blocks for causal LM, tables are read with the
 * chosen text/label columns for classification. Bad rows raise the library's DataError (file, line, fix).
 */
import { DataError } from '../../src/errors.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { encodeTable, packText, type Example } from '../../src/training/data/dataset.js';
import { parseTable } from '../../src/training/data/readers.js';
import { toTextTokenizer } from '../../src/run/tokenizer.js';
import type { DataSpec } from '../protocol.js';

export interface PreparedData {
  examples: Example[];
  labelNames?: string[];
  padTokenId: number;
}

/**
 * Encodes the page's data for training.
 *
 * @example
 * const { examples } = prepareData({ format: 'text', content, task: 'CAUSAL_LM', ... }, tok, 32);
 */
export function prepareData(
  spec: DataSpec,
  tok: Tokenizer,
  seqLen: number,
  tokenizerName: string,
): PreparedData {
  const text = toTextTokenizer(tok, tokenizerName);
  const source = spec.format === 'text' ? 'pasted text' : `data (${spec.format.toUpperCase()})`;
  if (spec.content.trim().length === 0)
    throw new DataError(source, 'is empty', undefined, 'paste text or drop a file in step 2');
  if (spec.task === 'CAUSAL_LM') {
    if (spec.format !== 'text') {
      const table = parseTable(spec.content, source, spec.format, 'auto');
      const col = spec.textColumn || 'text';
      if (!table.columns.includes(col))
        throw new DataError(source, 'text column not found', col, `columns are: ${table.columns.join(', ')}`);
      return {
        examples: packText(table.rows.map((r) => r.fields[col]!).join('\n\n'), text, seqLen),
        padTokenId: text.padTokenId,
      };
    }
    return { examples: packText(spec.content, text, seqLen), padTokenId: text.padTokenId };
  }
  if (spec.format === 'text') {
    throw new DataError(
      source,
      'classification needs a table with a text and a label column',
      undefined,
      'choose TSV, CSV or JSONL',
    );
  }
  const table = parseTable(spec.content, source, spec.format, 'auto');
  const enc = encodeTable(table, text, {
    task: 'classification',
    columns: {
      ...(spec.textColumn ? { text: spec.textColumn } : {}),
      ...(spec.labelColumn ? { label: spec.labelColumn } : {}),
    },
    maxLength: seqLen,
  });
  return {
    examples: enc.examples,
    ...(enc.labelNames ? { labelNames: enc.labelNames } : {}),
    padTokenId: text.padTokenId,
  };
}
