import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { CheckpointError } from '../errors.js';
import { HFTokenizer, Llama2cTokenizer, llama2cToTokenizerJson, loadTokenizer } from './tokenizer.js';
import { llama2cBytes } from '../testing/tiny_tokenizers.js';

function convert(tok: Llama2cTokenizer): HFTokenizer {
  const { tokenizerJson, tokenizerConfig } = llama2cToTokenizerJson(tok);
  return HFTokenizer.fromJson(tokenizerJson, tokenizerConfig);
}

function assertSameEncoding(a: Llama2cTokenizer, b: HFTokenizer, texts: string[]): void {
  for (const text of texts) {
    const ids = a.encode(text);
    assert.deepEqual(b.encode(text), ids, JSON.stringify(text.slice(0, 60)));
    assert.equal(b.decode(ids, { skipSpecialTokens: true }), a.decode(ids, { skipSpecialTokens: true }));
  }
}

test('converted tokenizer.json encodes and decodes like the llama2.c tokenizer (tiny vocab)', () => {
  // ' ' 259, 'a' 260, 'b' 261, ' a' 262 (score 1), 'ab' 263 (2), ' ab' 264 (3), 'é' 265
  const tok = Llama2cTokenizer.fromBytes(
    llama2cBytes([
      [' ', 0],
      ['a', 0],
      ['b', 0],
      [' a', 1],
      ['ab', 2],
      [' ab', 3],
      ['é', 0],
    ]),
    'small.bin',
  );
  const { tokenizerJson, tokenizerConfig } = llama2cToTokenizerJson(tok);
  const model = tokenizerJson.model as { vocab: Record<string, number>; merges: string[][] };
  // merges ranked by the score of their result: ' ab' (two splits, vocab order), then 'ab', then ' a'
  assert.deepEqual(model.merges, [
    ['▁', 'ab'],
    ['▁a', 'b'],
    ['a', 'b'],
    ['▁', 'a'],
  ]);
  assert.equal(model.vocab['▁ab'], 264);
  assert.equal(model.vocab['<s>'], 1);
  assert.equal(tokenizerConfig.bos_token, '<s>');
  assertSameEncoding(tok, convert(tok), ['ab', 'aé€', 'b a ab  ab', '', ' ', 'ba\nab']);
});

test('a vocabulary whose merge results tie on score is refused', () => {
  const tok = Llama2cTokenizer.fromBytes(
    llama2cBytes([
      [' ', 0],
      ['a', 0],
      ['b', 0],
      [' a', 1],
      ['ab', 1],
    ]),
    'tie.bin',
  );
  assert.throws(
    () => llama2cToTokenizerJson(tok),
    (e: unknown) => e instanceof CheckpointError && /both merge results with score 1/.test(e.message),
  );
});

const DATA = new URL('../../../shared/data/', import.meta.url);
const haveData = fs.existsSync(new URL('models/stories260K/tok512.bin', DATA));
/** Passages per corpus compared (each a blank-line-separated block); enough to cover every merge. */
const PASSAGES = 150;

test(
  'tok512.bin: tokenizer.json form agrees with llama2.c on TinyStories and Shakespeare passages',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const tok = (await loadTokenizer(
      new URL('models/stories260K/tok512.bin', DATA).pathname,
    )) as Llama2cTokenizer;
    const hf = convert(tok);
    const read = (p: string) => fs.readFileSync(new URL(p, DATA), 'utf8').split('\n\n').slice(0, PASSAGES);
    const texts = [
      ...read('text/tinystories/tinystories_val.txt'),
      ...read('text/tinyshakespeare/input.txt'),
    ];
    assertSameEncoding(tok, hf, [...texts, 'héllo wörld 😀', 'Hmmmm... aaaa!!!', '  two  spaces  ']);
    // Documented exception: text spelling a special token is that token in tokenizer.json.
    assert.notDeepEqual(hf.encode('a <s> b'), tok.encode('a <s> b'));
  },
);
