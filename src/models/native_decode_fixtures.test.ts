/**
 * The native decode engine against transformers' and PEFT's own greedy continuations
 * (../shared/fixtures/hf): for every causal case (Qwen2, Mistral, Gemma, Gemma 2, Phi-3) the base
 * model and each adapter — active and UNMERGED, as the server decodes it — run natively (asserted)
 * and give `model.generate`'s tokens, eos stop included. hf_fixtures.test.ts checks the logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../tensor/tf.js';
import { nativeAvailable } from '../testing/backend_parity.js';
import { PeftModel } from '../tuners/peft_model.js';
import '../tuners/index.js';
import { generate } from './generate.js';
import { loadModel } from './load.js';
import { nativeDecodeSupport } from './native_decode.js';

const HF = fileURLToPath(new URL('../../../shared/fixtures/hf', import.meta.url));
const CASES = ['qwen2', 'mistral', 'gemma', 'gemma2', 'phi3'];
const skip = !nativeAvailable()
  ? 'native addon not built'
  : existsSync(join(HF, 'index.json'))
    ? false
    : `needs ../shared/fixtures/hf (absent at ${HF})`;
const readJson = <T>(...parts: string[]): T => JSON.parse(readFileSync(join(HF, ...parts), 'utf8')) as T;

interface Generate {
  input_ids: number[][];
  max_new_tokens: number;
  new_tokens: number[];
}

for (const name of CASES) {
  test(
    `native decode: ${name} base and unmerged adapters give transformers' greedy tokens`,
    { skip },
    async () => {
      await tf.setBackend('native');
      const g = readJson<{ generate: Generate }>(name, 'probe.json').generate;
      const opts = { maxNewTokens: g.max_new_tokens, eosTokenId: 2 };
      const base = await loadModel(join(HF, name, 'base'));
      assert.equal(nativeDecodeSupport(base, 64), null, `${name} base runs natively`);
      assert.deepEqual(await generate(base, g.input_ids[0]!, opts), g.new_tokens, `${name} base`);
      base.dispose();
      for (const method of readdirSync(join(HF, name, 'peft')).sort()) {
        const want = readJson<{ generate_new_tokens?: number[] }>(name, 'peft', method, 'logits.json');
        if (!want.generate_new_tokens) continue;
        const model = await loadModel(join(HF, name, 'base'));
        const peft = await PeftModel.fromPretrained(model, join(HF, name, 'peft', method));
        const why = nativeDecodeSupport(model, 64);
        assert.equal(why, null, `${name}/${method} runs natively`);
        const got = await generate(model, g.input_ids[0]!, opts);
        assert.deepEqual(got, want.generate_new_tokens, `${name}/${method}`);
        peft.dispose();
      }
    },
  );
}
