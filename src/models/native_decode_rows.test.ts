/**
 * Row management of the native decoder (what a server needs): a row copied from another continues
 * exactly as the original would, new adapter slots can be installed while rows keep their caches, and
 * the one-call greedy loop equals the per-token loop and stops at EOS. The reference for each is the
 * decoder's own per-token path, itself checked against tfjs in native_decode.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { nativeRowsSkip } from '../testing/backend_parity.js';
import '../tuners/index.js'; // registers the tuners
import { getPeftModel } from '../tuners/peft_model.js';
import { LoraConfig } from '../tuners/lora/config.js';
import type { PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { argmax, generate } from './generate.js';
import { openNativeDecoder } from './native_decode.js';
import { TINY_DECODERS } from '../testing/tiny_decoders.js';

const skip = nativeRowsSkip();
const TARGETS = ['q_proj', 'v_proj', 'down_proj'];

function build(): PreTrainedModel {
  manualSeed(7);
  return modelFromConfig(TINY_DECODERS.qwen2!, { task: 'CAUSAL_LM' }).eval();
}

/** Greedy ids of `n` steps after `logits` through the per-token path of row `row`. */
function perToken(
  dec: ReturnType<typeof openNativeDecoder>,
  logits: Float32Array,
  n: number,
  row = 0,
  slot = 0,
) {
  const ids: number[] = [];
  let l = logits;
  for (let i = 0; i < n; i++) {
    ids.push(argmax(l));
    if (i < n - 1) l = dec!.feed([ids.at(-1)!], row, slot);
  }
  return ids;
}

test('native decoder: greedy in one call equals the per-token loop and stops at EOS', { skip }, async () => {
  await tf.setBackend('native');
  const model = build();
  const dec = openNativeDecoder(model, 40, { rows: 2 })!;
  try {
    const want = perToken(dec, dec.feed([1, 5, 9], 0), 12, 0);
    const first = argmax(dec.feed([1, 5, 9], 1));
    const got = [first, ...dec.greedy(first, 11, [], 1)];
    assert.deepEqual(got, want);
    dec.reset(1);
    const eos = want[4]!;
    const stop = [first, ...dec.greedy(argmax(dec.feed([1, 5, 9], 1)), 11, [eos], 1)];
    assert.deepEqual(stop, want.slice(0, want.indexOf(eos) + 1), 'ends after the first EOS id');
    assert.throws(() => dec.greedy(first, 100, [], 1), /row is full \(maxSeq 40\)/);
  } finally {
    dec.dispose();
  }
  model.dispose();
});

test('native decoder: copyRow continues like the original; setAdapters keeps caches', { skip }, async () => {
  await tf.setBackend('native');
  const model = build();
  const peft = getPeftModel(
    model,
    new LoraConfig({ r: 4, loraAlpha: 8, targetModules: TARGETS, initLoraWeights: false }),
    'a',
  );
  const before = tf.memory().numTensors;
  const dec = openNativeDecoder(model, 32, { rows: 3, adapters: [[], ['a']] })!;
  try {
    const prompt = [2, 8, 4, 11];
    const l0 = dec.feed(prompt, 0, 1);
    dec.copyRow(0, 2);
    assert.equal(dec.position(2), prompt.length);
    const want = perToken(dec, l0, 6, 0, 1);
    assert.deepEqual(perToken(dec, l0, 6, 2, 1), want, 'the copy decodes what the original did');
    peft.addAdapter(
      'b',
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['k_proj'], initLoraWeights: false }),
    );
    dec.reset(0);
    const base = dec.feed(prompt, 0, 0);
    assert.equal(dec.setAdapters([['b'], [], ['a']]), null);
    assert.equal(dec.slots, 3);
    // row 0 was filled with the base slot: its next token with slot 1 (now the base) continues it
    const cont = dec.feed([argmax(base)], 0, 1);
    const ref = openNativeDecoder(model, 32, { adapters: [[]] })!;
    try {
      ref.feed(prompt);
      assert.deepEqual(cont, ref.feed([argmax(base)]), 'caches survive setAdapters');
    } finally {
      ref.dispose();
    }
    peft.setAdapter('b');
    const viaB = await generate(model, prompt, { maxNewTokens: 5, native: false });
    dec.reset(1);
    assert.deepEqual(perToken(dec, dec.feed(prompt, 1, 0), 5, 1, 0), viaB, 'the new slot runs adapter b');
    assert.throws(() => dec.feed([1], 1, 3), /slots must be integers in \[0, 3\)/);
  } finally {
    dec.dispose();
  }
  assert.equal(
    tf.memory().numTensors,
    before + 2 * 2,
    'only adapter b (A, B on k_proj of 2 layers) was added',
  );
  model.dispose();
});

/** Chunked prefill (GEMMs) and one-token steps (GEMVs) differ only in float32 summation order. */
const PREFILL_ATOL = 2e-5;

test(
  'native decoder: a prompt longer than one prefill chunk equals feeding it token by token',
  { skip },
  async () => {
    await tf.setBackend('native');
    const model = build();
    const prompt = Array.from({ length: 150 }, (_, i) => (i * 7 + 3) % 30); // chunks of 64: 64 + 64 + 22
    const dec = openNativeDecoder(model, 160, { rows: 2 })!;
    try {
      const whole = dec.feed(prompt, 0);
      let last: Float32Array = new Float32Array(0);
      for (const id of prompt) last = dec.feed([id], 1);
      const d = Math.max(...whole.map((v, i) => Math.abs(v - last[i]!)));
      assert.ok(d < PREFILL_ATOL, `max |Δlogit| ${d}`);
      assert.equal(dec.position(0), 150);
      const ref = tf.tidy(() => {
        const { logits } = model.forward({ inputIds: tf.tensor2d([prompt], undefined, 'int32') });
        return logits.slice([0, 149, 0], [1, 1, 30]).dataSync() as Float32Array;
      });
      const dRef = Math.max(...whole.map((v, i) => Math.abs(v - ref[i]!)));
      assert.ok(dRef < PREFILL_ATOL, `against the tfjs forward: max |Δlogit| ${dRef}`);
    } finally {
      dec.dispose();
    }
    model.dispose();
  },
);
