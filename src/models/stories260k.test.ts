/**
 * The stories260K oracle (../shared/data/models/stories260K/oracle.json, an independent forward of
 * llama2.c's run.c): greedy decoding and first-step logits, from the llama2.c `.bin` and from the
 * Hugging Face folder that io's converter writes. Skips with a reason when the data is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../tensor/tf.js';
import { convertLlama2cToHF } from '../io/llama2c.js';
import { loadTokenizer } from '../io/tokenizer.js';
import type { PreTrainedModel } from './base.js';
import { loadModel, loadModelWithReport } from './load.js';
import { generate } from './generate.js';
import { nativeDecodeSupport } from './native_decode.js';
import { loadAddon } from '../tensor/native/addon.js';

/** The oracle's own note: "treat logits as ~1e-4 tolerance" (float32 vs its float32/float64 numpy). */
const ORACLE_LOGIT_ATOL = 1e-4;

const DATA = fileURLToPath(new URL('../../../shared/data/models/stories260K/', import.meta.url));
const haveData = existsSync(join(DATA, 'oracle.json'));
const skip = haveData ? false : `needs ../shared/data/models/stories260K (absent at ${DATA})`;

interface Oracle {
  bos_id: number;
  eos_id: number;
  encode_examples: Record<string, number[]>;
  first_step_top5_logits_after_BOS: [number, number][];
  greedy_256_steps_token_ids_from_BOS: number[];
  greedy_256_steps_text: string;
}

function oracle(): Oracle {
  return JSON.parse(readFileSync(join(DATA, 'oracle.json'), 'utf8')) as Oracle;
}

/** Logits after BOS alone, checked against the oracle's top 5 (ids and values). */
function checkFirstStep(model: PreTrainedModel, o: Oracle): void {
  const inputIds = tf.tensor2d([[o.bos_id]], [1, 1], 'int32');
  const { logits } = model.forward({ inputIds });
  const row = Array.from(logits.dataSync());
  [inputIds, logits].forEach((t) => t.dispose());
  const top5 = row
    .map((v, i) => [i, v] as [number, number])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5);
  assert.deepEqual(
    top5.map(([i]) => i),
    o.first_step_top5_logits_after_BOS.map(([i]) => i),
  );
  top5.forEach(([, v], k) => {
    const want = o.first_step_top5_logits_after_BOS[k]![1];
    assert.ok(Math.abs(v - want) < ORACLE_LOGIT_ATOL, `top-${k + 1} logit ${v} vs oracle ${want}`);
  });
}

/** Greedy decoding from BOS + "Once upon a time" reproduces the oracle's continuation token for token. */
async function checkGreedy(model: PreTrainedModel, o: Oracle, prompt: number[]): Promise<void> {
  const want = o.greedy_256_steps_token_ids_from_BOS; // BOS + 256 greedy tokens
  assert.deepEqual(want.slice(0, prompt.length), prompt, 'the prompt is the oracle’s own greedy start');
  const before = tf.memory().numTensors;
  // On the native backend `generate` takes the native decode engine; `native: false` is the tfjs path.
  const haveDecoder = (loadAddon() as { Decoder?: unknown } | null)?.Decoder !== undefined; // stale builds lack it
  if (tf.getBackend() === 'native' && haveDecoder)
    assert.equal(nativeDecodeSupport(model), null, 'stories260K decodes natively');
  for (const native of [true, false]) {
    const got = await generate(model, prompt, {
      maxNewTokens: want.length - prompt.length,
      temperature: 0,
      native,
    });
    assert.equal(tf.memory().numTensors, before, 'generate leaves no tensors behind');
    assert.deepEqual(got, want.slice(prompt.length), native ? 'native engine' : 'tfjs path');
  }
}

test(
  'stories260K.bin: first-step top-5 logits and greedy 256 tokens equal the oracle',
  { skip },
  async () => {
    const o = oracle();
    const tok = await loadTokenizer(join(DATA, 'tok512.bin'));
    const promptText = 'Once upon a time';
    const prompt = [o.bos_id, ...tok.encode(promptText, { addSpecialTokens: false })];
    assert.deepEqual(prompt.slice(1), o.encode_examples[promptText]);
    const { model, report } = await loadModelWithReport(join(DATA, 'stories260K.bin'));
    assert.equal(report.format, 'llama2c');
    assert.equal(model.architecture, 'LlamaForCausalLM');
    assert.deepEqual(model.tiedParameterNames(), [['model.embed_tokens.weight', 'lm_head.weight']]);
    checkFirstStep(model, o);
    await checkGreedy(model, o, prompt);
    const text = tok.decode(o.greedy_256_steps_token_ids_from_BOS.slice(1));
    assert.equal(text.trim(), o.greedy_256_steps_text.trim());
    model.dispose();
  },
);

test(
  'stories260K converted to a Hugging Face folder loads to the same oracle outputs',
  { skip },
  async () => {
    const o = oracle();
    const dir = mkdtempSync(join(tmpdir(), 'lowrank-stories-'));
    try {
      await convertLlama2cToHF(join(DATA, 'stories260K.bin'), join(DATA, 'tok512.bin'), dir);
      const model = await loadModel(dir);
      assert.equal(model.architecture, 'LlamaForCausalLM');
      checkFirstStep(model, o);
      await checkGreedy(model, o, o.greedy_256_steps_token_ids_from_BOS.slice(0, 5));
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'stories260K.bin loaded for SEQ_CLS keeps the trunk and starts a seeded score head',
  { skip },
  async () => {
    const path = join(DATA, 'stories260K.bin');
    const a = await loadModelWithReport(path, { task: 'SEQ_CLS', numLabels: 2, seed: 3, padTokenId: 0 });
    const b = await loadModelWithReport(path, { task: 'SEQ_CLS', numLabels: 2, seed: 3, padTokenId: 0 });
    assert.equal(a.model.architecture, 'LlamaForSequenceClassification');
    assert.deepEqual(a.report.newKeys, ['score.weight']);
    assert.deepEqual(a.report.ignoredKeys, []);
    const sa = a.model.stateDict();
    assert.deepEqual(sa.get('score.weight')!.shape, [2, 64]);
    assert.deepEqual(sa.get('score.weight')!.dataSync(), b.model.stateDict().get('score.weight')!.dataSync());
    const inputIds = tf.tensor2d(
      [
        [1, 403, 407, 261, 378],
        [1, 403, 407, 0, 0],
      ],
      undefined,
      'int32',
    );
    const { logits } = a.model.forward({ inputIds });
    assert.deepEqual(logits.shape, [2, 2]);
    [inputIds, logits].forEach((t) => t.dispose());
    [a.model, b.model].forEach((m) => m.dispose());
  },
);
