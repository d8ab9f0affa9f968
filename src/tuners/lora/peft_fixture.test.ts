/**
 * A PEFT-layout LoRA folder (tests/fixtures/lora/peft_gpt2, written by make_peft_fixture.py as PEFT saves:
 * Conv1D fan_in_fan_out, embedding LoRA, rank/alpha patterns, SEQ_CLS modules_to_save) loads and gives
 * the logits of a plain-torch LoRA forward; saving it again reproduces both files byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, type Tensor } from '../../tensor/tf.js';
import { modelFromConfig } from '../../models/from_config.js';
import { loadWeights } from '../../models/weights.js';
import type { PreTrainedModel } from '../../models/base.js';
import { PeftModel } from '../peft_model.js';
import { LoraLinear } from './layer.js';
import { LoraEmbedding } from './embedding.js';
import './index.js';
import { LoraConfig } from './config.js';
import { assertSamePeftConfig } from '../../testing/peft_files.js';
import { maxDiff } from '../../testing/compare.js';

/** float32 forward vs the float64 torch reference through two transformer blocks (logits O(1)). */
const REF_ATOL = 1e-4;

const fx = (name: string) => fileURLToPath(new URL(`../../../tests/fixtures/${name}`, import.meta.url));
const gpt2Fx = JSON.parse(readFileSync(fx('models_gpt2.json'), 'utf8'));
const expected = JSON.parse(readFileSync(fx('lora/peft_gpt2_expected.json'), 'utf8'));

function tinyGpt2Cls(): PreTrainedModel {
  const model = modelFromConfig(gpt2Fx.config, { task: 'SEQ_CLS', numLabels: 2 });
  const state = new Map<string, Tensor>(
    Object.entries(gpt2Fx.weights as Record<string, { shape: number[]; data: number[] }>).map(([k, w]) => [
      k,
      tf.tensor(w.data, w.shape),
    ]),
  );
  loadWeights(model, state);
  state.forEach((t) => t.dispose());
  return model.eval();
}

function logits(m: { forward: PreTrainedModel['forward'] }): number[] {
  return tf.tidy(() => {
    const out = m.forward({
      inputIds: tf.tensor2d(expected.input_ids, undefined, 'int32'),
      attentionMask: tf.tensor2d(expected.attention_mask, undefined, 'int32'),
    });
    return Array.from(out.logits.dataSync());
  });
}

test('PEFT LoRA folder (GPT-2 Conv1D, embedding, patterns, modules_to_save) reproduces torch logits', async () => {
  const base = tinyGpt2Cls();
  assert.ok(
    maxDiff(logits(base), expected.base_logits) <= REF_ATOL,
    'base model differs from the reference before loading',
  );
  const nBase = tf.memory().numTensors;
  const peft = await PeftModel.fromPretrained(base, fx('lora/peft_gpt2'));
  const n0 = tf.memory().numTensors;
  // loading adds exactly the adapter tensors: 2 per adapted layer + the trainable copy of `score`
  assert.equal(n0 - nBase, 7 * 2 + 1, 'loading left temporary tensors behind');
  const got = logits(peft);
  assert.ok(maxDiff(got, expected.logits) <= REF_ATOL, `logits ${got} vs ${expected.logits}`);
  assert.ok(
    maxDiff(expected.logits, expected.base_logits) > 100 * REF_ATOL,
    'the adapter must change the logits',
  );
  // structure as PEFT builds it
  const layers = peft.base_model.tunerLayers();
  assert.equal(layers.filter(([, l]) => l instanceof LoraLinear).length, 6);
  assert.equal(layers.filter(([, l]) => l instanceof LoraEmbedding).length, 1);
  const c1 = peft.base_model.model.getSubmodule('transformer.h.1.attn.c_proj') as LoraLinear;
  assert.equal(c1.r.get('default'), 3); // rank_pattern
  assert.equal(c1.fanInFanOut, true);
  const attn0 = peft.base_model.model.getSubmodule('transformer.h.0.attn.c_attn') as LoraLinear;
  assert.equal(attn0.scaling.get('default'), 6 / 2); // alpha_pattern
  assert.equal(peft.trainableParameters().length, 0, 'loaded for inference: frozen');
  // merged forward equals the unmerged one
  peft.merge({ safeMerge: true });
  assert.ok(maxDiff(logits(peft), expected.logits) <= REF_ATOL);
  peft.unmerge();
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-peftfx-'));
  try {
    await peft.savePretrained(dir);
    const f = 'adapter_model.safetensors';
    assert.ok(
      readFileSync(join(dir, f)).equals(readFileSync(fx(`lora/peft_gpt2/${f}`))),
      `${f} not byte-equal`,
    );
    // the config means the same, written with only the keys PEFT 0.10 knows (tuners/base/peft_keys.ts)
    const cfg = (d: string) => readFileSync(join(d, 'adapter_config.json'), 'utf8');
    assertSamePeftConfig(cfg(dir), cfg(fx('lora/peft_gpt2')), LoraConfig.fields);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(tf.memory().numTensors, n0, 'forward/merge/unmerge/save left tensors behind');
  peft.dispose();
});
