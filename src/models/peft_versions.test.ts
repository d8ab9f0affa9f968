/**
 * Adapter files written by the real PEFT 0.10.0 and 0.20.0 (../shared/fixtures/peft-0.10, peft-0.20:
 * BERT SEQ_CLS, GPT-2 with Conv1D fan_in_fan_out, Llama; LoRA, DoRA, AdaLoRA) load in lowrank and give
 * PEFT's logits at real positions; re-saved, they hold only keys PEFT 0.10.0 knows. Skips when
 * ../shared is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../tensor/tf.js';
import { PeftModel } from '../tuners/peft_model.js';
import '../tuners/index.js';
import '../tuners/adalora/index.js';
import { keysKnownBy, OLDEST_PEFT } from '../tuners/base/peft_keys.js';
import { loadModel } from './load.js';

/** The fixtures' tolerance: logits at real positions within 1e-4 of PEFT's. */
const LOGIT_ATOL = 1e-4;

const ROOT = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));
const skip = existsSync(join(ROOT, 'peft-0.10')) ? false : 'needs ../shared/fixtures/peft-0.10 and peft-0.20';

interface Probe {
  input_ids: number[][];
  attention_mask: number[][];
  [method: string]: unknown;
}

function worst(got: Float32Array, want: unknown, mask: number[][], perPos: number): number {
  const flat = (want as number[]).flat(3) as number[];
  assert.equal(got.length, flat.length);
  const t = mask[0]!.length;
  let m = 0;
  for (let i = 0; i < got.length; i++) {
    if (perPos > 0) {
      const pos = Math.floor(i / perPos);
      if (mask[Math.floor(pos / t)]![pos % t] === 0) continue;
    }
    m = Math.max(m, Math.abs(got[i]! - flat[i]!));
  }
  return m;
}

for (const version of ['peft-0.10', 'peft-0.20']) {
  for (const arch of ['bert', 'gpt2', 'llama']) {
    test(
      `${version}/${arch}: PEFT's LoRA, DoRA and AdaLoRA files load with PEFT's logits`,
      { skip },
      async () => {
        const dir = join(ROOT, version, arch);
        const probe = JSON.parse(readFileSync(join(dir, 'probe.json'), 'utf8')) as Probe;
        const run = (m: { forward: (i: never) => { logits: tf.Tensor } }) =>
          tf.tidy(() => {
            const out = m.forward({
              inputIds: tf.tensor2d(probe.input_ids, undefined, 'int32'),
              attentionMask: tf.tensor2d(probe.attention_mask, undefined, 'int32'),
            } as never);
            return out.logits.dataSync() as Float32Array;
          });
        const perPos = arch === 'bert' ? 0 : 1000;
        const base = await loadModel(join(dir, 'base'));
        const b = worst(run(base), probe.base, probe.attention_mask, perPos);
        assert.ok(b <= LOGIT_ATOL, `base logits differ by ${b}`);
        const row = [`base ${b.toExponential(1)}`];
        base.dispose();
        for (const method of ['lora', 'dora', 'adalora']) {
          if (!existsSync(join(dir, method))) continue; // peft-0.10/gpt2 has no DoRA (0.10 failed on Conv1D)
          const peft = await PeftModel.fromPretrained(await loadModel(join(dir, 'base')), join(dir, method));
          const d = worst(run(peft), probe[method], probe.attention_mask, perPos);
          assert.ok(d <= LOGIT_ATOL, `${method} logits differ by ${d}`);
          row.push(`${method} ${d.toExponential(1)}`);
          const out = mkdtempSync(join(tmpdir(), 'lowrank-peftv-'));
          try {
            await peft.savePretrained(out);
            const json = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
            const known = keysKnownBy(json.peft_type, OLDEST_PEFT);
            assert.deepEqual(
              Object.keys(json).filter((k) => !known.has(k)),
              [],
              `${method} re-saved`,
            );
          } finally {
            rmSync(out, { recursive: true, force: true });
            peft.dispose();
          }
        }
        console.log(`| ${version}/${arch} | ${row.join(' | ')} |`); // the docs/models.md table
      },
    );
  }
}
