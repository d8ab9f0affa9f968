/**
 * The demo's pieces, each against an independent reference: the planted change is exactly σ·U·Vᵀ of
 * rank k, sampled text re-tokenises to the sampled ids, the loss floor equals the trainer's own
 * causal-LM loss when nothing is restricted, the input subspace solves its eigen-equation, and the
 * demo's folder rules keep user files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tmp } from '../src/testing/cli_runner.js';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { manualSeed } from '../src/nn/init.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { Rng } from '../src/util/rng.js';
import { evaluate } from '../src/training/evaluate.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { ALPHABET, charTokenizerFile } from '../src/cli/demo/language.js';
import { charLlamaConfig } from '../src/testing/char_llama.js';
import {
  inputSubspace,
  orthonormalColumns,
  plantChange,
  sampleSequences,
  samplingLoss,
} from '../src/cli/demo/planted.js';
import { claimDemoFolder, DEMO_MARKER } from '../src/cli/output_folder.js';

/** float32 Gram–Schmidt and matmuls on 48-wide matrices. */
const F32_TOL = 1e-4;
/** Two float32 paths (masked gather + log-softmax vs the model's fused cross-entropy). */
const LOSS_TOL = 1e-4;
/** Subspace iteration stops at a fixed round count; the eigen-residual is relative to λ_max. */
const EIG_TOL = 1e-3;

function tinyLlama() {
  manualSeed(0);
  return modelFromConfig(charLlamaConfig({ num_attention_heads: 4, num_key_value_heads: 4 }), {
    task: 'CAUSAL_LM',
  });
}

test('orthonormalColumns: QᵀQ = I', () => {
  const q = orthonormalColumns(12, 5, new Rng(3));
  for (let a = 0; a < 5; a++)
    for (let b = 0; b < 5; b++) {
      let d = 0;
      for (let i = 0; i < 12; i++) d += q[i * 5 + a]! * q[i * 5 + b]!;
      assert.ok(Math.abs(d - (a === b ? 1 : 0)) < F32_TOL, `${a},${b}: ${d}`);
    }
});

test('plantChange adds ΔW with k singular values all equal to σ', async () => {
  await initBackend('cpu');
  const m = tinyLlama();
  const p = 'model.layers.1.self_attn.v_proj';
  const w0 = (m.namedParameters().find(([n]) => n === `${p}.weight`)![1] as tf.Tensor).clone();
  const [planted] = await plantChange(m, [{ path: p, rank: 3 }], 2, 9);
  const w1 = m.namedParameters().find(([n]) => n === `${p}.weight`)![1];
  const gram = tf.tidy(() => {
    const d = tf.sub(w1, w0);
    return tf.matMul(d, d, true, false); // ΔWᵀΔW = σ² V Vᵀ: eigenvalues σ² (×k) and 0
  });
  const g = await gram.data();
  const n = gram.shape[0]!;
  let trace = 0;
  let frob2 = 0;
  for (let i = 0; i < n; i++) trace += g[i * n + i]!;
  for (const x of g) frob2 += x * x;
  const s2 = planted!.sigma ** 2;
  // trace = k σ², ‖ΔWᵀΔW‖_F² = k σ⁴ only when all k nonzero eigenvalues equal σ²
  assert.ok(Math.abs(trace - 3 * s2) / (3 * s2) < F32_TOL, `trace ${trace} vs ${3 * s2}`);
  assert.ok(Math.abs(frob2 - 3 * s2 * s2) / (3 * s2 * s2) < F32_TOL, `frob ${frob2}`);
  tf.dispose([w0, gram]);
  m.dispose();
});

test('sampled text re-tokenises to exactly the sampled ids; samplingLoss = the trainer loss when unrestricted', async () => {
  await initBackend('cpu');
  const m = tinyLlama();
  const dir = tmp();
  const tokFile = path.join(dir, 'tok.bin');
  fs.writeFileSync(tokFile, charTokenizerFile(ALPHABET));
  const tok = await loadTokenizer(tokFile);
  const allowed = [...ALPHABET].map((_, i) => 259 + i);
  const before = tf.memory().numTensors;
  const seqs = await sampleSequences(m, [1, 259], 12, 20, allowed, 4, 8);
  assert.equal(tf.memory().numTensors, before, 'sampling leaks no tensors');
  for (const s of seqs) {
    const text = s.map((id) => ALPHABET[id - 259]).join('');
    assert.deepEqual(tok.encode(text), [1, 259, ...s]);
  }
  // with every token allowed and a one-token prefix, the floor is the plain causal-LM loss
  const all = Array.from({ length: 259 + ALPHABET.length }, (_, i) => i);
  const free = await sampleSequences(m, [1], 10, 16, all, 5, 16);
  const floor = await samplingLoss(m, [1], free, all);
  const ref = (
    await evaluate(
      m,
      free.map((s) => ({ inputIds: [1, ...s], label: -1 })),
      'causal_lm',
      'causal_lm',
      16,
      2,
    )
  ).loss;
  assert.ok(Math.abs(floor - ref) < LOSS_TOL, `samplingLoss ${floor} vs evaluate ${ref}`);
  m.dispose();
});

test('inputSubspace returns eigenvectors of the layer input covariance', async () => {
  await initBackend('cpu');
  const m = tinyLlama();
  const p = 'model.layers.0.self_attn.v_proj';
  const rng = new Rng(1);
  const seqs = Array.from({ length: 8 }, () => [1, ...Array.from({ length: 10 }, () => 259 + rng.int(15))]);
  const k = 3;
  const v = await inputSubspace(m, p, seqs, k);
  // reference: the layer's input is input_layernorm(embed(ids)) in layer 0
  const c = tf.tidy(() => {
    const layer = m.getSubmodule('model.layers.0.input_layernorm') as unknown as {
      forward(x: tf.Tensor): tf.Tensor;
    };
    const emb = m.getSubmodule('model.embed_tokens') as unknown as { forward(x: tf.Tensor): tf.Tensor };
    const x = layer.forward(emb.forward(tf.tensor2d(seqs.flat(), [8, 11], 'int32')));
    const flat = tf.reshape(x, [-1, 16]);
    return tf.matMul(flat, flat, true, false);
  });
  const cv = tf.tidy(() => tf.matMul(c, tf.tensor2d(v, [16, k])));
  const [cd, cvd] = [await c.data(), await cv.data()];
  let lmax = 0;
  for (let i = 0; i < 16; i++) lmax = Math.max(lmax, cd[i * 16 + i]!);
  for (let j = 0; j < k; j++) {
    let lambda = 0; // Rayleigh quotient vᵀCv
    for (let i = 0; i < 16; i++) lambda += v[i * k + j]! * cvd[i * k + j]!;
    let res = 0;
    for (let i = 0; i < 16; i++) res += (cvd[i * k + j]! - lambda * v[i * k + j]!) ** 2;
    assert.ok(Math.sqrt(res) / lmax < EIG_TOL, `column ${j}: residual ${Math.sqrt(res)}`);
  }
  tf.dispose([c, cv]);
  m.dispose();
});

test('claimDemoFolder: new, empty or own-marked only; own entries replaced, user files kept', () => {
  const dir = tmp();
  const fresh = path.join(dir, 'new');
  claimDemoFolder(fresh, false);
  assert.ok(fs.existsSync(path.join(fresh, DEMO_MARKER)));
  fs.mkdirSync(path.join(fresh, 'lora'));
  fs.writeFileSync(path.join(fresh, 'lora', 'old.txt'), 'from the last demo');
  fs.writeFileSync(path.join(fresh, 'mine.txt'), 'the user put this here');
  claimDemoFolder(fresh, false); // marked: the demo's entries go, the user's file stays
  assert.ok(!fs.existsSync(path.join(fresh, 'lora')));
  assert.equal(fs.readFileSync(path.join(fresh, 'mine.txt'), 'utf8'), 'the user put this here');
  const user = path.join(dir, 'user');
  fs.mkdirSync(user);
  fs.writeFileSync(path.join(user, 'lora'), 'a user file named like a demo entry');
  assert.throws(() => claimDemoFolder(user, false), /already holds files the demo did not make/);
  assert.equal(fs.readFileSync(path.join(user, 'lora'), 'utf8'), 'a user file named like a demo entry');
});
