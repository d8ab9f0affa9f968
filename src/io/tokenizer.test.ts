import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointError, NotSupportedError } from '../errors.js';
import { HFTokenizer, Llama2cTokenizer, loadTokenizer } from './tokenizer.js';
import {
  byteLevelBpeJson,
  llama2cBytes,
  llama3Json,
  sentencePieceBpeJson,
  wordPieceJson,
} from '../testing/tiny_tokenizers.js';

// Expected ids below are derived by hand from the tiny vocabularies in src/testing/tiny_tokenizers.ts.

test('WordPiece (BERT): lower-casing, ## continuation, [UNK], [CLS]/[SEP] template, pairs with type ids', () => {
  const tok = HFTokenizer.fromJson(wordPieceJson());
  assert.deepEqual(tok.encode('Hello, Worlds!'), [2, 5, 11, 6, 7, 12, 3]);
  assert.deepEqual(tok.encode('unaffable zzz', { addSpecialTokens: false }), [8, 9, 10, 1]);
  assert.deepEqual(tok.encodePair('hello', 'world!'), {
    ids: [2, 5, 3, 6, 12, 3],
    typeIds: [0, 0, 0, 1, 1, 1],
  });
  assert.equal(tok.decode([2, 5, 11, 6, 7, 12, 3], { skipSpecialTokens: true }), 'hello, worlds!');
  assert.equal(tok.decode([2, 5, 3]), '[CLS] hello [SEP]');
  assert.deepEqual([tok.clsTokenId, tok.sepTokenId, tok.padTokenId, tok.bosTokenId], [2, 3, 0, undefined]);
  assert.equal(tok.vocabSize, 13);
});

test('byte-level BPE (GPT-2): merges by rank, Ġ for space, UTF-8 bytes for é, special added token', () => {
  const tok = HFTokenizer.fromJson(byteLevelBpeJson());
  assert.deepEqual(tok.encode('hello world!'), [11, 16, 19]);
  assert.deepEqual(tok.encode('é'), [17, 18]);
  assert.deepEqual(tok.encode('hello<|endoftext|>'), [11, 20]);
  assert.equal(tok.decode([11, 16, 19, 17, 18]), 'hello world!é');
  assert.equal(tok.decode([11, 20], { skipSpecialTokens: true }), 'hello');
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.vocabSize], [20, 20, 21]);
  assert.throws(() => tok.encodePair('a', 'b'), NotSupportedError);
});

test('Llama-3 style: regex split, ignore_merges takes a whole vocab word, BOS from tokenizer_config', () => {
  const tok = HFTokenizer.fromJson(llama3Json(), {
    bos_token: '<|begin_of_text|>',
    eos_token: { content: '<|end_of_text|>' },
  });
  assert.deepEqual(tok.encode('hello world!'), [21, 11, 16, 19]);
  assert.equal(tok.decode([21, 11, 16, 19], { skipSpecialTokens: true }), 'hello world!');
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId], [21, 22]);
});

test('SentencePiece BPE (Llama-2): ▁ prefix, byte fallback, fused <unk>, <s> template', () => {
  const tok = HFTokenizer.fromJson(sentencePieceBpeJson(), {
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: null,
  });
  assert.deepEqual(tok.encode('Hi Hi!'), [1, 8, 8, 3]);
  assert.deepEqual(tok.encode('é'), [1, 4, 9, 10]);
  assert.deepEqual(tok.encode('zz', { addSpecialTokens: false }), [4, 0]);
  assert.equal(tok.decode([1, 8, 8, 3], { skipSpecialTokens: true }), 'Hi Hi!');
  assert.equal(tok.decode([1, 4, 9, 10], { skipSpecialTokens: true }), 'é');
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.padTokenId], [1, 2, undefined]);
});

// ids: ' ' 259, 'a' 260, 'b' 261, ' a' 262 (score 1), 'ab' 263 (2), ' ab' 264 (3), 'é' 265
const SMALL = llama2cBytes([
  [' ', 0],
  ['a', 0],
  ['b', 0],
  [' a', 1],
  ['ab', 2],
  [' ab', 3],
  ['é', 0],
]);

test('llama2.c tokenizer: dummy prefix, highest-score merge first, byte fallback, BOS space strip', () => {
  const tok = Llama2cTokenizer.fromBytes(SMALL, 'small.bin');
  assert.equal(tok.vocabSize, 266);
  // [' ', a, b] → 'ab' (score 2) beats ' a' (1) → [' ', ab] → ' ab' (3)
  assert.deepEqual(tok.encode('ab'), [1, 264]);
  // € is not a piece: its UTF-8 bytes E2 82 AC become ids 0xE2+3, 0x82+3, 0xAC+3
  assert.deepEqual(tok.encode('aé€', { addSpecialTokens: false }), [262, 265, 229, 133, 175]);
  assert.deepEqual(tok.encode(''), [1]);
  assert.equal(tok.decode([1, 264]), '\n<s>\nab');
  assert.equal(tok.decode([1, 264, 2], { skipSpecialTokens: true }), 'ab');
  assert.equal(tok.decode([262, 265, 229, 133, 175]), ' aé€');
  assert.throws(() => tok.decode([266]), CheckpointError);
  assert.throws(() => tok.encodePair('a', 'b'), NotSupportedError);
  assert.throws(
    () => Llama2cTokenizer.fromBytes(SMALL.subarray(0, SMALL.length - 1), 'cut.bin'),
    (e: unknown) => e instanceof CheckpointError && /^cut\.bin: token 265/.test(e.message),
  );
});

test('loadTokenizer: folder with tokenizer.json + config, folder or file with tok*.bin, errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceBpeJson()));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }),
  );
  const hf = await loadTokenizer(dir);
  assert.equal(hf.kind, 'huggingface');
  assert.deepEqual(hf.encode('Hi'), [1, 8]);
  assert.equal(hf.eosTokenId, 2);
  assert.equal((await loadTokenizer(path.join(dir, 'tokenizer.json'))).eosTokenId, 2);

  const binDir = path.join(dir, 'bin');
  fs.mkdirSync(binDir);
  fs.writeFileSync(path.join(binDir, 'tok266.bin'), SMALL);
  assert.deepEqual((await loadTokenizer(binDir)).encode('ab'), [1, 264]);
  assert.equal((await loadTokenizer(path.join(binDir, 'tok266.bin'))).kind, 'llama2c');

  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  fs.writeFileSync(path.join(empty, 'vocab.txt'), 'x');
  await assert.rejects(loadTokenizer(empty), /has no tokenizer\.json.*only tokenizer\.json is read/);
  await assert.rejects(loadTokenizer(path.join(dir, 'nope.bin')), CheckpointError);
  fs.writeFileSync(path.join(empty, 'tokenizer.json'), '{"version":"1.0"}');
  await assert.rejects(loadTokenizer(empty), /no "model" field/);
  fs.rmSync(dir, { recursive: true });
});

const DATA = new URL('../../../shared/data/models/stories260K/', import.meta.url);
const haveData = fs.existsSync(new URL('tok512.bin', DATA));

test(
  'tok512.bin matches the stories260K oracle (encode example, greedy text)',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const oracle = JSON.parse(fs.readFileSync(new URL('oracle.json', DATA), 'utf8'));
    const tok = await loadTokenizer(new URL('tok512.bin', DATA).pathname);
    assert.equal(tok.vocabSize, 512);
    for (const [text, ids] of Object.entries(oracle.encode_examples as Record<string, number[]>)) {
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), ids);
      assert.deepEqual(tok.encode(text), [oracle.bos_id, ...ids]);
    }
    assert.equal(
      tok.decode(oracle.greedy_256_steps_token_ids_from_BOS, { skipSpecialTokens: true }),
      oracle.greedy_256_steps_text,
    );
  },
);
