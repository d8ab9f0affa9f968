/**
 * The native decode engine against the tfjs forward it replaces (the reference): logits at every
 * position of a 10-token sequence and greedy generations (one addon call for the whole greedy loop,
 * and one per token with a callback), for tiny Llama (GQA, attention biases), Qwen2, Gemma, Mistral
 * (windows longer and shorter than the run), Gemma 2 (soft-capping, alternate windows, post norms)
 * and Phi-3 (fused projections), with unmerged LoRA, DoRA and AdaLoRA adapters; settings it does not
 * cover are refused with a reason and `generate` falls back to tfjs. The stories260K oracle is checked through `generate` in stories260k.test.ts, which
 * runs the native path whenever the native backend is active (asserted there too).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Variable } from '../tensor/tf.js';
import { manualSeed, normal } from '../nn/init.js';
import { nativeAvailable } from '../testing/backend_parity.js';
import { loadAddon } from '../tensor/native/addon.js';
import { quantizeModel } from '../nn/linear4bit.js';
import '../tuners/index.js'; // registers the tuners
import { getPeftModel } from '../tuners/peft_model.js';
import { LoraConfig } from '../tuners/lora/config.js';
import { AdaLoraConfig } from '../tuners/adalora/config.js';
import type { HFConfig, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { generate } from './generate.js';
import { generateBatch } from './generate_batch.js';
import { NotSupportedError } from '../errors.js';
import { nativeDecodeSupport, openNativeDecoder } from './native_decode.js';
import { TINY_DECODERS } from '../testing/tiny_decoders.js';
import { maxDiff } from '../testing/compare.js';

/**
 * Native (sgemv, sequential dot products) and tfjs (batched GEMM, its own softmax) logits differ only
 * in float32 summation order: observed ≤ 3e-6 on these O(1) logits, so 2e-5 leaves room and still
 * catches any wrong term (a missing adapter or a RoPE pairing error moves logits by ≥ 1e-2).
 */
const NATIVE_LOGIT_ATOL = 2e-5;

const hasDecoder = (loadAddon() as { Decoder?: unknown } | null)?.Decoder !== undefined;
const skip = !nativeAvailable()
  ? 'native addon not built'
  : hasDecoder
    ? false
    : 'native addon built before decode.cc (rebuild: node scripts/install-native.mjs)';
const IDS = [5, 9, 3, 17, 22, 8, 11, 4, 27, 6];
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const TINY_LLAMA: HFConfig = {
  ...TINY_DECODERS.qwen2,
  model_type: 'llama',
  attention_bias: true,
  rms_norm_eps: 1e-5,
};

function build(cfg: HFConfig): PreTrainedModel {
  manualSeed(31);
  return modelFromConfig(cfg, { task: 'CAUSAL_LM' }).eval();
}

/** Moves every parameter whose name contains `part` to random values (so adapters are not no-ops). */
function perturb(model: PreTrainedModel, part: string, mean = 0): void {
  for (const [name, p] of model.namedParameters()) {
    if (!name.includes(part)) continue;
    const v = normal(p.shape, mean, 0.3);
    (p as Variable).assign(v);
    v.dispose();
  }
}

/** tfjs logits [T, V] of the whole sequence in one forward (the reference). */
function reference(model: PreTrainedModel, ids: number[]): Float32Array[] {
  return tf.tidy(() => {
    const { logits } = model.forward({ inputIds: tf.tensor2d([ids], undefined, 'int32') });
    const v = logits.shape[2]!;
    const all = logits.dataSync() as Float32Array;
    return ids.map((_, t) => all.slice(t * v, (t + 1) * v));
  });
}

async function checkAgainstTfjs(what: string, model: PreTrainedModel): Promise<void> {
  await tf.setBackend('native');
  assert.equal(nativeDecodeSupport(model, IDS.length), null, `${what} runs natively`);
  const want = reference(model, IDS);
  const before = tf.memory().numTensors;
  const dec = openNativeDecoder(model, IDS.length)!;
  try {
    IDS.forEach((id, t) => {
      const got = dec.feed([id]);
      const d = maxDiff(got, want[t]!);
      assert.ok(d < NATIVE_LOGIT_ATOL, `${what} position ${t}: max |Δlogit| ${d}`);
    });
    assert.equal(dec.position(), IDS.length);
  } finally {
    dec.dispose();
  }
  assert.equal(tf.memory().numTensors, before, `${what}: the decoder leaves no tensors behind`);
  const opts = { maxNewTokens: 12 };
  const viaNative = await generate(model, IDS.slice(0, 3), opts);
  const viaTfjs = await generate(model, IDS.slice(0, 3), { ...opts, native: false });
  assert.deepEqual(viaNative, viaTfjs, `${what}: greedy tokens`);
  const streamed: number[] = []; // a callback: one addon call per token instead of the greedy loop
  await generate(model, IDS.slice(0, 3), { ...opts, onToken: (id) => streamed.push(id) });
  assert.deepEqual(streamed, viaTfjs, `${what}: greedy tokens, one call per token`);
  assert.equal(tf.memory().numTensors, before, `${what}: generate leaves no tensors behind`);
}

const BASES: [string, HFConfig][] = [
  ['llama (GQA, attention biases)', TINY_LLAMA],
  ['qwen2 (q/k/v biases)', TINY_DECODERS.qwen2!],
  ['gemma (offset norm, gelu tanh, embedding scale)', TINY_DECODERS.gemma!],
  ['mistral (window 64, longer than the run)', { ...TINY_DECODERS.mistral!, sliding_window: 64 }],
  ['mistral (window 3, shorter than the run)', TINY_DECODERS.mistral!],
  ['gemma2 (soft-capping, windows of 3 on alternate layers, post norms)', TINY_DECODERS.gemma2!],
  ['phi3 (fused qkv_proj and gate_up_proj)', TINY_DECODERS.phi3!],
];

for (const [what, cfg] of BASES) {
  test(`native decode equals tfjs: ${what}`, { skip }, async () => {
    const model = build(cfg);
    // offsets near 0 hide a (1 + w) mistake, and Gemma 2's four norms must not be interchangeable
    if (cfg.model_type?.startsWith('gemma')) perturb(model, 'norm', 0);
    await checkAgainstTfjs(what, model);
    model.dispose();
  });
}

test(
  'native decode equals tfjs with unmerged LoRA (two active adapters) on every projection',
  { skip },
  async () => {
    const model = build(TINY_LLAMA);
    const peft = getPeftModel(
      model,
      new LoraConfig({ r: 4, loraAlpha: 8, targetModules: TARGETS, initLoraWeights: false }),
    );
    peft.addAdapter(
      'second',
      new LoraConfig({ r: 2, loraAlpha: 3, targetModules: ['q_proj', 'down_proj'], initLoraWeights: false }),
    );
    peft.setAdapter(['default', 'second']);
    await checkAgainstTfjs('LoRA', model);
    peft.setAdapter('default');
    peft.merge(); // merged layers decode as plain ones
    await checkAgainstTfjs('LoRA merged', model);
    model.dispose();
  },
);

test('native decode equals tfjs with DoRA (magnitudes moved off ‖W + sBA‖)', { skip }, async () => {
  const model = build(TINY_LLAMA);
  getPeftModel(
    model,
    new LoraConfig({ r: 4, loraAlpha: 8, targetModules: TARGETS, useDora: true, initLoraWeights: false }),
  );
  perturb(model, 'lora_magnitude_vector', 1);
  await checkAgainstTfjs('DoRA', model);
  model.dispose();
});

test('native decode equals tfjs with AdaLoRA (Λ moved off 0)', { skip }, async () => {
  const model = build(TINY_DECODERS.qwen2!);
  getPeftModel(
    model,
    new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, loraAlpha: 6, targetModules: TARGETS }),
  );
  perturb(model, 'lora_E');
  await checkAgainstTfjs('AdaLoRA', model);
  model.dispose();
});

test("native decode equals tfjs with LoRA on Phi-3's fused projections", { skip }, async () => {
  const model = build(TINY_DECODERS.phi3!);
  const targets = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];
  getPeftModel(model, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: targets, initLoraWeights: false }));
  await checkAgainstTfjs('Phi-3 LoRA', model);
  model.dispose();
});

test(
  'settings outside the native kernel are refused with a reason; generate falls back',
  { skip },
  async () => {
    await tf.setBackend('native');
    const model = build(TINY_LLAMA);
    const cfg = { r: 2, loraAlpha: 4, targetModules: ['q_proj'], loraBias: true, initLoraWeights: false };
    getPeftModel(model, new LoraConfig(cfg));
    assert.match(nativeDecodeSupport(model) ?? '', /not covered natively: lora_bias/);
    const ids = await generate(model, IDS.slice(0, 3), { maxNewTokens: 4 }); // the tfjs path
    assert.deepEqual(ids, await generate(model, IDS.slice(0, 3), { maxNewTokens: 4, native: false }));
    process.env.LOWRANK_NATIVE_DECODE = '0';
    try {
      assert.match(nativeDecodeSupport(model) ?? '', /LOWRANK_NATIVE_DECODE=0/);
    } finally {
      delete process.env.LOWRANK_NATIVE_DECODE;
    }
    await tf.setBackend('cpu');
    assert.match(nativeDecodeSupport(model) ?? '', /backend is cpu/);
    await tf.setBackend('native');
    model.dispose();
  },
);

test('native decode: an out-of-vocabulary token id is a ConfigError naming the field', { skip }, async () => {
  await tf.setBackend('native');
  const model = build(TINY_LLAMA);
  await assert.rejects(generate(model, [1, 99], { maxNewTokens: 2 }), /generate\.inputIds.*\[0, 30\)/);
  model.dispose();
});

test(
  'generateBatch: ragged rows with different adapters each equal their own tfjs generate',
  { skip },
  async () => {
    await tf.setBackend('native');
    const base = build(TINY_LLAMA); // same seed: the base weights of `model` below
    const model = build(TINY_LLAMA);
    const peft = getPeftModel(
      model,
      new LoraConfig({ r: 4, loraAlpha: 8, targetModules: TARGETS, initLoraWeights: false }),
      'a',
    );
    peft.addAdapter(
      'b',
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['v_proj', 'up_proj'], initLoraWeights: false }),
    );
    peft.addAdapter(
      'c',
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: TARGETS, useDora: true, initLoraWeights: false }),
    );
    perturb(model, 'lora_magnitude_vector', 1);
    const requests = [
      { inputIds: [1, 5, 9, 3, 17], adapters: ['a'] },
      { inputIds: [2, 8], adapters: ['b'] },
      { inputIds: [7], adapters: [] },
      { inputIds: [4, 4, 6], adapters: ['c'] },
      { inputIds: [3, 11, 2], adapters: ['a', 'b'] },
    ];
    const before = tf.memory().numTensors;
    const got = await generateBatch(model, requests, { maxNewTokens: 8 });
    assert.equal(tf.memory().numTensors, before, 'generateBatch leaves no tensors behind');
    for (const [i, r] of requests.entries()) {
      let want: number[];
      if (r.adapters.length === 0)
        want = await generate(base, r.inputIds, { maxNewTokens: 8, native: false });
      else {
        peft.setAdapter(r.adapters);
        want = await generate(model, r.inputIds, { maxNewTokens: 8, native: false });
      }
      assert.deepEqual(got[i], want, `row ${i} (adapters ${JSON.stringify(r.adapters)})`);
    }
    const eos = got[0]![2]!;
    const upToEos = (ids: number[]) => (ids.includes(eos) ? ids.slice(0, ids.indexOf(eos) + 1) : ids);
    const eosStop = await generateBatch(model, requests.slice(0, 2), { maxNewTokens: 8, eosTokenId: eos });
    assert.deepEqual(eosStop, [upToEos(got[0]!), upToEos(got[1]!)], 'each row stops at its own EOS');
    await tf.setBackend('cpu');
    await assert.rejects(generateBatch(model, requests, { maxNewTokens: 2 }), NotSupportedError);
    await tf.setBackend('native');
    [base, model].forEach((m) => m.dispose());
  },
);

for (const [quantType, doubleQuant] of [
  ['nf4', true],
  ['fp4', false],
] as const) {
  test(
    `native decode equals tfjs on a 4-bit (${quantType}${doubleQuant ? ', double quant' : ''}) base with LoRA and DoRA`,
    { skip },
    async () => {
      const lora = build(TINY_LLAMA);
      quantizeModel(lora, { quantType, doubleQuant }); // blocks of 64 straddle the 16-wide rows
      getPeftModel(
        lora,
        new LoraConfig({
          r: 4,
          loraAlpha: 8,
          targetModules: ['q_proj', 'down_proj'],
          initLoraWeights: false,
        }),
      );
      await checkAgainstTfjs(`QLoRA ${quantType}`, lora);
      lora.dispose();
      const dora = build(TINY_LLAMA);
      quantizeModel(dora, { quantType, doubleQuant });
      getPeftModel(
        dora,
        new LoraConfig({ r: 4, loraAlpha: 8, targetModules: TARGETS, useDora: true, initLoraWeights: false }),
      );
      perturb(dora, 'lora_magnitude_vector', 1);
      await checkAgainstTfjs(`QDoRA ${quantType}`, dora);
      dora.dispose();
    },
  );
}
