import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HFTokenizer, Llama2cTokenizer } from '../io/tokenizer.js';
import { packText } from '../training/data/dataset.js';
import { byteLevelBpeJson, llama2cBytes, wordPieceJson } from '../testing/tiny_tokenizers.js';
import { toTextTokenizer } from './tokenizer.js';

// Expected ids are those of the tiny vocabularies in src/testing/tiny_tokenizers.ts, derived by hand
// in src/io/tokenizer.test.ts; here we check only what the adapter adds on top.

// ids: ' ' 259, 'a' 260, 'b' 261, ' a' 262, 'ab' 263, ' ab' 264, 'é' 265; BOS 1, EOS 2
const SMALL = llama2cBytes([
  [' ', 0],
  ['a', 0],
  ['b', 0],
  [' a', 1],
  ['ab', 2],
  [' ab', 3],
  ['é', 0],
]);

test('toTextTokenizer: llama2.c pairs are BOS a ␣b with segment ids 0/1 (the tokenizer itself refuses pairs)', () => {
  const tok = toTextTokenizer(Llama2cTokenizer.fromBytes(SMALL, 'small.bin'), 'f');
  // 'ab' → [BOS, ' ab']; the pair 'a' → [' a'] (dummy prefix, one space) without BOS
  // (the CLI's old copy encoded ' ' + pair: [' ', ' a'], two spaces)
  assert.deepEqual(tok.encode('ab', 'a'), { ids: [1, 264, 262], typeIds: [0, 0, 1] });
  assert.deepEqual(tok.encode('ab'), { ids: [1, 264] });
});

test('toTextTokenizer: decode skips special tokens; llama2.c packs without EOS, BPE with EOS', () => {
  const l2c = toTextTokenizer(Llama2cTokenizer.fromBytes(SMALL, 'small.bin'), 'f');
  assert.equal(l2c.decode([1, 264, 2]), 'ab');
  assert.equal(l2c.eosTokenId, undefined);
  assert.equal(l2c.padTokenId, 2); // no pad token: EOS pads (masked out by the collator)
  // two paragraphs 'ab' → [1, 264] each: BOS starts each, nothing ends them
  assert.deepEqual(
    packText('ab\n\nab', l2c, 2).map((e) => e.inputIds),
    [
      [1, 264],
      [1, 264],
    ],
  );
  const bpe = toTextTokenizer(HFTokenizer.fromJson(byteLevelBpeJson()), 'g');
  assert.equal(bpe.decode([11, 20]), 'hello'); // <|endoftext|> (20) is special
  assert.equal(bpe.eosTokenId, 20);
  assert.equal(bpe.padTokenId, 20); // no pad token: EOS pads (masked out by the collator)
  // 'hello' → [11], then EOS ends the paragraph
  assert.deepEqual(
    packText('hello\n\nhello', bpe, 2).map((e) => e.inputIds),
    [
      [11, 20],
      [11, 20],
    ],
  );
  assert.equal(bpe.fingerprint, 'huggingface:g');
  assert.equal(l2c.fingerprint, 'llama2c:f');
});

test('toTextTokenizer: WordPiece pairs use the tokenizer template with type ids; pad id is [PAD]', () => {
  const tok = toTextTokenizer(HFTokenizer.fromJson(wordPieceJson()), 'w');
  assert.deepEqual(tok.encode('hello', 'world!'), { ids: [2, 5, 3, 6, 12, 3], typeIds: [0, 0, 0, 1, 1, 1] });
  assert.equal(tok.decode([2, 5, 3]), 'hello');
  assert.equal(tok.padTokenId, 0);
});
