import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../../tensor/tf.js';
import { DataError } from '../../errors.js';
import { COLA_COLUMNS, parseTable } from './readers.js';
import { encodeTable, loadExamples, packText } from './dataset.js';
import { DataLoader, collate, splitExamples } from './loader.js';
import type { TextTokenizer } from './tokenizer.js';

/** Characters as ids (a=1 …), 0 = pad, [SEP]=99 between pairs. */
const charTok: TextTokenizer = {
  encode: (t: string, pair?: string) => {
    const a = [...t].map((c) => c.charCodeAt(0) % 97);
    if (pair === undefined) return { ids: a };
    const b = [...pair].map((c) => c.charCodeAt(0) % 97);
    return { ids: [...a, 99, ...b], typeIds: [...a.map(() => 0), 0, ...b.map(() => 1)] };
  },
  decode: (ids) => ids.map((i) => String.fromCharCode(i + 97)).join(''),
  padTokenId: 0,
  fingerprint: 'char-v1',
};
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
const haveData = fs.existsSync(path.resolve('../shared/data/glue'));

test('GLUE layouts: SST-2 header, CoLA headerless, RTE string labels, STS-B regression', () => {
  const sst = parseTable('sentence\tlabel\na "quoted" film \t1\nbad\t0\n', 'sst.tsv', 'tsv');
  assert.deepEqual(sst.columns, ['sentence', 'label']);
  assert.equal(sst.rows[0]!.fields.sentence, 'a "quoted" film ');
  const cola = parseTable(
    'gj04\t1\t\tOur friends won.\ngj04\t0\t*\tThey drank the pub.\n',
    'cola.tsv',
    'tsv',
  );
  assert.deepEqual(cola.columns, COLA_COLUMNS);
  const enc = encodeTable(cola, charTok, { task: 'classification', maxLength: 8 });
  assert.deepEqual(
    enc.examples.map((e) => e.label),
    [1, 0],
  );
  assert.equal(enc.examples[0]!.inputIds.length, 8);
  const rte = parseTable(
    'index\tsentence1\tsentence2\tlabel\n0\tab\tc\tnot_entailment\n1\tx\ty\tentailment\n',
    'rte.tsv',
    'tsv',
  );
  const r = encodeTable(rte, charTok, { task: 'classification', maxLength: 16 });
  assert.deepEqual(r.labelNames, ['entailment', 'not_entailment']);
  assert.deepEqual(r.examples[0], { inputIds: [0, 1, 99, 2], tokenTypeIds: [0, 0, 0, 1], label: 1 });
  const sts = parseTable('index\tsentence1\tsentence2\tscore\n0\ta\tb\t3.8\n', 'sts.tsv', 'tsv');
  assert.equal(encodeTable(sts, charTok, { task: 'regression', maxLength: 8 }).examples[0]!.label, 3.8);
});

test('bad rows name file, line and reason', () => {
  assert.throws(
    () => parseTable('sentence\tlabel\nok\t1\nno tab here\n', 'f.tsv', 'tsv'),
    (e: Error) => e instanceof DataError && /f\.tsv:3: expected 2 fields/.test(e.message),
  );
  const t = parseTable('sentence\tlabel\nok\t1\nok\tmaybe\n', 'g.tsv', 'tsv');
  assert.throws(
    () => encodeTable(t, charTok, { task: 'classification', maxLength: 8, labelNames: ['0', '1'] }),
    /g\.tsv:3: unknown label \(got "maybe"\)/,
  );
  assert.throws(
    () =>
      encodeTable(parseTable('sentence\tlabel\nx\tfoo\n', 'h.tsv', 'tsv'), charTok, {
        task: 'regression',
        maxLength: 4,
      }),
    /h\.tsv:2: label must be a number/,
  );
  assert.throws(
    () => parseTable('{"text": "a", "label": 1}\n{oops\n', 'j.jsonl', 'jsonl'),
    /j\.jsonl:2: invalid JSON/,
  );
  assert.throws(
    () =>
      encodeTable(parseTable('a\tb\nx\t1\n', 'k.tsv', 'tsv', true), charTok, {
        task: 'classification',
        maxLength: 4,
      }),
    /cannot guess the text column/,
  );
});

test('CSV quoting and JSONL with column mapping', () => {
  const c = parseTable('text,label\n"a, ""b""\nc",1\nd,0\n', 'x.csv', 'csv');
  assert.equal(c.rows[0]!.fields.text, 'a, "b"\nc');
  assert.equal(c.rows[1]!.line, 4);
  const j = parseTable(
    '{"review": "good", "stars": 1}\n\n{"review": "bad", "stars": 0}\n',
    'r.jsonl',
    'jsonl',
  );
  const e = encodeTable(j, charTok, {
    task: 'classification',
    maxLength: 8,
    columns: { text: 'review', label: 'stars' },
  });
  assert.deepEqual(
    e.examples.map((x) => x.label),
    [1, 0],
  );
});

test('tokenisation cache: second load comes from disk with equal examples; content change misses', async () => {
  const dir = tmp();
  const f = path.join(dir, 'train.tsv');
  fs.writeFileSync(f, 'sentence\tlabel\nabc\t1\nde\t0\n');
  const opts = {
    task: 'classification' as const,
    tokenizer: charTok,
    maxLength: 8,
    cacheDir: path.join(dir, 'cache'),
  };
  const a = await loadExamples(f, opts);
  const b = await loadExamples(f, opts);
  assert.equal(a.fromCache, false);
  assert.equal(b.fromCache, true);
  assert.deepEqual(b.examples, a.examples);
  fs.writeFileSync(f, 'sentence\tlabel\nabc\t1\nxy\t0\n');
  assert.equal((await loadExamples(f, opts)).fromCache, false);
});

test('packing, collation with dynamic padding, seeded loader resumes mid-epoch', () => {
  const blocks = packText('abcd\n\nefgh ij', charTok, 3);
  assert.deepEqual(
    blocks.map((b) => b.inputIds),
    [
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 32],
    ],
  );
  const before = tf.memory().numTensors;
  const b = collate(
    [
      { inputIds: [5, 6, 7], label: -1 },
      { inputIds: [8], label: -1 },
    ],
    'causal_lm',
    0,
  );
  assert.deepEqual(Array.from(b.inputIds.dataSync()), [5, 6, 7, 8, 0, 0]);
  assert.deepEqual(Array.from(b.attentionMask.dataSync()), [1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(b.labels.dataSync()), [5, 6, 7, 8, -100, -100]);
  tf.dispose(Object.values(b));
  assert.equal(tf.memory().numTensors, before);

  const ex = Array.from({ length: 10 }, (_, i) => ({ inputIds: [i], label: i % 2 }));
  const l1 = new DataLoader(ex, 3, 7);
  const seq1 = Array.from({ length: 8 }, () => l1.next().map((e) => e.inputIds[0]));
  const l2 = new DataLoader(ex, 3, 7);
  for (let i = 0; i < 4; i++) l2.next();
  const saved = JSON.parse(JSON.stringify(l2.state()));
  const l3 = new DataLoader(ex, 3, 999);
  l3.setState(saved);
  const rest = Array.from({ length: 4 }, () => l3.next().map((e) => e.inputIds[0]));
  assert.deepEqual(rest, seq1.slice(4));
  assert.notDeepEqual(seq1[0], seq1[3]); // epochs reshuffle
  const { train, evalSet } = splitExamples(ex, 0.2, 1);
  assert.equal(evalSet.length, 2);
  assert.deepEqual(
    [...train, ...evalSet].map((e) => e.inputIds[0]).sort((a, b) => a! - b!),
    ex.map((e) => e.inputIds[0]),
  );
});

test(
  'real GLUE files parse (CoLA headerless, RTE pairs)',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const cola = await loadExamples(path.resolve('../shared/data/glue/CoLA/dev.tsv'), {
      task: 'classification',
      tokenizer: charTok,
      maxLength: 32,
    });
    assert.equal(cola.examples.length, 1043);
    const rte = await loadExamples(path.resolve('../shared/data/glue/RTE/dev.tsv'), {
      task: 'classification',
      tokenizer: charTok,
      maxLength: 64,
    });
    assert.equal(rte.examples.length, 277);
    assert.deepEqual(rte.labelNames, ['entailment', 'not_entailment']);
  },
);
