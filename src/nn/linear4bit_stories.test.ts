/**
 * QLoRA on real weights (issue 5): stories260K (../shared/data) quantised NF4 + double quantisation.
 * Skips when the data folder is absent. Full numbers (20k tokens, FP4, blocksize 32, fine-tune):
 * experiments/qlora.ts → docs/qlora.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../models/load.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { quantizeModel } from './linear4bit.js';
import { memoryByCategory } from './memory_report.js';
import { denseLinearWeights, quantizationErrors } from './linear4bit_report.js';
import { corpusIds, windowedLoss } from '../models/windowed_loss.js';

const DATA = path.resolve(import.meta.dirname, '../../../shared/data');
const MODEL = `${DATA}/models/stories260K/stories260K.bin`;
const haveData = fs.existsSync(MODEL);
// Measured on 20k tokens: f32 1.427, NF4+DQ 1.529 (Δ 0.102, docs/qlora.md). This 2k-token slice is
// noisier; the bound catches a broken quantiser (FP4 gives Δ ≈ 0.2, a wrong nibble order Δ > 1) but is
// NOT the 0.05 target, which blocksize-64 NF4 does not reach on this 64-wide model.
const NF4_DQ_LOSS_DELTA_BOUND = 0.15;
// NF4 on Gaussian-like weights: ‖ŵ − w‖/‖w‖ ≈ 0.09 (QLoRA paper's NF4 is information-theoretically
// optimal for N(0, 1) blocks); the 35 matrices of stories260K measure 0.086–0.101.
const NF4_REL_FROBENIUS_BOUND = 0.11;

test(
  'stories260K NF4+DQ: per-matrix error, bytes ≤ 0.135× f32, TinyStories loss close to f32',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const tok = await loadTokenizer(`${DATA}/models/stories260K/tok512.bin`);
    const text = fs.readFileSync(`${DATA}/text/tinystories/tinystories_val.txt`, 'utf8');
    const ids = corpusIds(text, (s) => tok.encode(s, { addSpecialTokens: false }), 1, 2048);
    const model = await loadModel(MODEL);
    const fp32 = windowedLoss(model, ids, 256);
    const dense = denseLinearWeights(model);
    quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
    const rows = quantizationErrors(model, dense);
    assert.equal(rows.length, 5 * 7);
    for (const r of rows) assert.ok(r.relFrobenius < NF4_REL_FROBENIUS_BOUND, JSON.stringify(r));
    const mem = memoryByCategory(model);
    assert.ok(mem.frozenQuantized / mem.frozenQuantizedFp32 <= 0.135, JSON.stringify(mem));
    const nf4 = windowedLoss(model, ids, 256);
    console.log(`stories260K TinyStories (2048 tokens): f32 ${fp32.toFixed(4)}, NF4+DQ ${nf4.toFixed(4)}`);
    assert.ok(nf4 - fp32 < NF4_DQ_LOSS_DELTA_BOUND, `f32 ${fp32} vs NF4+DQ ${nf4}`);
    model.dispose();
  },
);
