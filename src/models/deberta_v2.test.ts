/**
 * DeBERTa-v2 properties on a tiny seeded config (the numbers themselves are pinned against transformers
 * by hf_fixtures.test.ts, including the 128-token probe that reaches the log buckets): hand-computed
 * buckets, right padding equals the unpadded row, the relative terms matter, HF module paths, and
 * refused config options by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { NotSupportedError, ConfigError } from '../errors.js';
import type { HFConfig, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { logBucket, relativeIndex } from './deberta_v2.js';
import { TINY_DEBERTA } from '../testing/tiny_decoders.js';
import { maxDiff } from '../testing/compare.js';

/** Padded and unpadded rows differ only by float32 summation order. */
const PAD_ATOL = 1e-5;

const build = (cfg: HFConfig = TINY_DEBERTA): PreTrainedModel => {
  manualSeed(31);
  return modelFromConfig(cfg).eval();
};

function logits(model: PreTrainedModel, ids: number[][], mask?: number[][]): number[] {
  return tf.tidy(() => {
    const out = model.forward({
      inputIds: tf.tensor2d(ids, undefined, 'int32'),
      ...(mask ? { attentionMask: tf.tensor2d(mask, undefined, 'int32') } : {}),
    });
    return Array.from(out.logits.dataSync());
  });
}

test('log buckets: hand-computed values (bucket size 32, max position 128)', () => {
  // |d| ≤ 16 is kept; beyond, 16 + ceil(ln(|d|/16) / ln(127/16) · 15) with the sign of d
  assert.equal(logBucket(0, 32, 128), 0);
  assert.equal(logBucket(-16, 32, 128), -16);
  assert.equal(logBucket(17, 32, 128), 17); // ceil(0.44) = 1
  assert.equal(logBucket(100, 32, 128), 30); // ceil(13.27) = 14
  assert.equal(logBucket(-100, 32, 128), -30);
  assert.equal(logBucket(127, 32, 128), 31); // the ratio is exactly 1: ceil(15) = 15
  const idx = relativeIndex(3, { span: 4, buckets: -1, maxRelative: 4 });
  assert.deepEqual(Array.from(idx), [4, 3, 2, 5, 4, 3, 6, 5, 4]); // i − j + span
});

test('deberta-v2: a right-padded row gives the logits of the unpadded row, short and past the buckets', () => {
  const model = build();
  for (const n of [5, 20]) {
    const real = Array.from({ length: n }, (_, i) => 3 + ((i * 7) % 26));
    const alone = logits(model, [real]);
    const padded = logits(model, [[...real, 0, 0, 0]], [[...real.map(() => 1), 0, 0, 0]]);
    assert.ok(maxDiff(alone, padded) < PAD_ATOL, `${n} tokens: ${maxDiff(alone, padded)}`);
  }
  model.dispose();
});

test('deberta-v2: c2p and p2c both change the output, and unshared position projections load as pos_*_proj', () => {
  const ids = [[3, 9, 4, 17, 22, 8, 11]];
  const full = build();
  for (const types of [['c2p'], ['p2c']]) {
    const m = build({ ...TINY_DEBERTA, pos_att_type: types });
    assert.ok(maxDiff(logits(full, ids), logits(m, ids)) > 1e-4, `${types} alone equals both`);
    m.dispose();
  }
  const unshared = build({ ...TINY_DEBERTA, share_att_key: false, pos_att_type: 'p2c|c2p' });
  const keys = [...unshared.stateDict().keys()];
  assert.ok(keys.includes('deberta.encoder.layer.0.attention.self.pos_key_proj.weight'));
  assert.ok(keys.includes('deberta.encoder.layer.0.attention.self.pos_query_proj.bias'));
  assert.ok(keys.includes('pooler.dense.weight') && keys.includes('deberta.encoder.rel_embeddings.weight'));
  assert.deepEqual(full.outputModuleNames(), ['classifier']);
  unshared.dispose();
  full.dispose();
});

test('deberta-v2: options that are not implemented are refused by name', () => {
  const refused: [HFConfig, string, typeof NotSupportedError | typeof ConfigError][] = [
    [{ ...TINY_DEBERTA, relative_attention: false }, 'DebertaV2Config.relative_attention', NotSupportedError],
    [{ ...TINY_DEBERTA, conv_kernel_size: 3 }, 'DebertaV2Config.conv_kernel_size', NotSupportedError],
    [{ ...TINY_DEBERTA, pos_att_type: ['p2p'] }, 'DebertaV2Config.pos_att_type', ConfigError],
  ];
  for (const [cfg, where, cls] of refused) {
    assert.throws(
      () => build(cfg),
      (e: unknown) => e instanceof cls && e.message.startsWith(where),
      where,
    );
  }
  assert.throws(() => modelFromConfig(TINY_DEBERTA, { task: 'CAUSAL_LM' }), NotSupportedError);
});
