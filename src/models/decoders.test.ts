/**
 * Properties of the issue-15 decoders on tiny seeded configs (the numbers themselves are pinned by
 * hf_fixtures.test.ts): the KV cache equals recomputing (windows and soft-capping on), left padding
 * equals the unpadded row, the window and soft-capping change outputs, module paths are Hugging Face's,
 * and config options that are not implemented are refused by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { NotSupportedError } from '../errors.js';
import type { HFConfig, KVCache, PreTrainedModel } from './base.js';
import { modelFromConfig, modelTypeOf } from './from_config.js';
import { TINY_DECODERS } from '../testing/tiny_decoders.js';
import { maxDiff } from '../testing/compare.js';

/** Cached and recomputed logits differ only in float32 summation order. */
const CACHE_ATOL = 1e-5;

const build = (cfg: HFConfig): PreTrainedModel => {
  manualSeed(21);
  return modelFromConfig(cfg, { task: 'CAUSAL_LM' }).eval();
};

const IDS = [5, 9, 3, 17, 22, 8, 11, 4, 27, 6];

function lastLogits(model: PreTrainedModel, ids: number[]): Float32Array {
  return tf.tidy(() => {
    const out = model.forward({ inputIds: tf.tensor2d([ids], undefined, 'int32') });
    const v = out.logits.shape[2]!;
    return out.logits.slice([0, ids.length - 1, 0], [1, 1, v]).dataSync() as Float32Array;
  });
}

for (const [type, cfg] of Object.entries(TINY_DECODERS)) {
  test(`${type}: token-by-token KV-cache decoding equals recomputing the prefix`, () => {
    const model = build(cfg);
    const before = tf.memory().numTensors;
    let cache: KVCache | undefined;
    for (let i = 0; i < IDS.length; i++) {
      const inputIds = tf.tensor2d([[IDS[i]!]], undefined, 'int32');
      const step = model.forward({
        inputIds,
        ...(cache ? { pastKeyValues: cache } : {}),
        useCache: true,
      });
      inputIds.dispose();
      cache?.keys.concat(cache.values).forEach((t) => t.dispose());
      cache = step.pastKeyValues;
      const cached = step.logits.dataSync();
      step.logits.dispose();
      const full = lastLogits(model, IDS.slice(0, i + 1));
      assert.ok(maxDiff(cached, full) < CACHE_ATOL, `${type} position ${i}: ${maxDiff(cached, full)}`);
    }
    cache?.keys.concat(cache.values).forEach((t) => t.dispose());
    assert.equal(tf.memory().numTensors, before, 'decoding leaves no tensors');
    model.dispose();
  });

  test(`${type}: a left-padded row gives the logits of the unpadded row`, () => {
    const model = build(cfg);
    const real = IDS.slice(0, 6);
    const got = tf.tidy(() => {
      const out = model.forward({
        inputIds: tf.tensor2d([[0, 0, 0, ...real]], undefined, 'int32'),
        attentionMask: tf.tensor2d([[0, 0, 0, 1, 1, 1, 1, 1, 1]], undefined, 'int32'),
      });
      const v = out.logits.shape[2]!;
      return out.logits.slice([0, 8, 0], [1, 1, v]).dataSync();
    });
    // the window counts pad slots, but left pads shift every position alike, so the real keys seen match
    assert.ok(
      maxDiff(got, lastLogits(model, real)) < CACHE_ATOL,
      `${type}: ${maxDiff(got, lastLogits(model, real))}`,
    );
    model.dispose();
  });
}

test('the sliding window and Gemma 2 soft-capping change the output (they are not no-ops)', () => {
  const pairs: [string, HFConfig, HFConfig][] = [
    ['mistral window', TINY_DECODERS.mistral!, { ...TINY_DECODERS.mistral!, sliding_window: null }],
    ['gemma2 window', TINY_DECODERS.gemma2!, { ...TINY_DECODERS.gemma2!, sliding_window: 4096 }],
    ['gemma2 attn cap', TINY_DECODERS.gemma2!, { ...TINY_DECODERS.gemma2!, attn_logit_softcapping: null }],
    ['gemma2 final cap', TINY_DECODERS.gemma2!, { ...TINY_DECODERS.gemma2!, final_logit_softcapping: null }],
  ];
  for (const [what, a, b] of pairs) {
    const ma = build(a);
    const mb = build(b);
    const short = IDS.slice(0, 3); // within the window of 3: identical
    assert.ok(maxDiff(lastLogits(ma, short), lastLogits(mb, short)) < CACHE_ATOL || what.includes('cap'));
    assert.ok(maxDiff(lastLogits(ma, IDS), lastLogits(mb, IDS)) > 1e-3, `${what} has no effect`);
    ma.dispose();
    mb.dispose();
  }
});

test('module paths are the Hugging Face ones (Phi-3 fused, Gemma 2 four norms, Gemma tied head)', () => {
  const keys = (cfg: HFConfig) => {
    const m = build(cfg);
    const k = [...m.stateDict().keys()];
    const tied = m.tiedParameterNames();
    m.dispose();
    return { k, tied };
  };
  const phi3 = keys(TINY_DECODERS.phi3!).k;
  assert.ok(phi3.includes('model.layers.0.self_attn.qkv_proj.weight'));
  assert.ok(phi3.includes('model.layers.1.mlp.gate_up_proj.weight'));
  assert.ok(!phi3.some((k) => k.includes('q_proj') || k.includes('gate_proj.')));
  const qwen = keys(TINY_DECODERS.qwen2!).k;
  assert.ok(qwen.includes('model.layers.0.self_attn.q_proj.bias'));
  assert.ok(!qwen.includes('model.layers.0.self_attn.o_proj.bias'));
  const g2 = keys(TINY_DECODERS.gemma2!).k;
  for (const n of ['input', 'post_attention', 'pre_feedforward', 'post_feedforward'])
    assert.ok(g2.includes(`model.layers.1.${n}_layernorm.weight`), n);
  assert.deepEqual(keys(TINY_DECODERS.gemma!).tied, [['model.embed_tokens.weight', 'lm_head.weight']]);
  assert.equal(modelTypeOf({ architectures: ['Gemma2ForCausalLM'] }), 'gemma2');
  assert.equal(modelTypeOf({ architectures: ['DebertaV2ForSequenceClassification'] }), 'deberta-v2');
});

test('config options that are not implemented are refused by name', () => {
  const refused: [HFConfig, string][] = [
    [{ ...TINY_DECODERS.qwen2!, use_sliding_window: true }, 'Qwen2Config.use_sliding_window'],
    [{ ...TINY_DECODERS.qwen2!, rope_scaling: { type: 'yarn', factor: 4 } }, 'Qwen2Config.rope_scaling'],
    [{ ...TINY_DECODERS.phi3!, rope_scaling: { type: 'longrope' } }, 'Phi3Config.rope_scaling'],
    [{ ...TINY_DECODERS.phi3!, resid_pdrop: 0.1 }, 'Phi3Config.resid_pdrop'],
    [{ ...TINY_DECODERS.phi3!, partial_rotary_factor: 0.75 }, 'Phi3Config.partial_rotary_factor'],
    [{ ...TINY_DECODERS.mistral!, attention_dropout: 0.1 }, 'MistralConfig.attention_dropout'],
    [{ ...TINY_DECODERS.gemma2!, attention_dropout: 0.1 }, 'Gemma2Config.attention_dropout'],
  ];
  for (const [cfg, where] of refused) {
    assert.throws(
      () => build(cfg),
      (e: unknown) => e instanceof NotSupportedError && e.message.startsWith(where),
      where,
    );
  }
});
