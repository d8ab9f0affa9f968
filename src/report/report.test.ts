import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tensor/tf.js';
import { saveSafetensors } from '../io/safetensors.js';
import { rankGrid, readAdapterSummary } from './ranks.js';
import { writeReport } from './report.js';

/** A two-layer AdaLoRA adapter folder with a rank pattern (kept ranks 3,1 / 0,2). */
export async function writeFakeAdalora(dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const pattern: Record<string, boolean[]> = {};
  const tensors = new Map<string, tf.Tensor>();
  const kept = { '0.q_proj': 3, '0.v_proj': 1, '1.q_proj': 0, '1.v_proj': 2 } as Record<string, number>;
  for (const [k, r] of Object.entries(kept)) {
    const [layer, type] = k.split('.');
    const p = `model.layers.${layer}.self_attn.${type}`;
    pattern[`${p}.lora_E`] = [0, 1, 2, 3].map((i) => i < r);
    tensors.set(`base_model.model.${p}.lora_A`, tf.zeros([r, 8]));
    tensors.set(`base_model.model.${p}.lora_B`, tf.zeros([8, r]));
    tensors.set(`base_model.model.${p}.lora_E`, tf.zeros([r, 1]));
  }
  fs.writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({
      peft_type: 'ADALORA',
      init_r: 4,
      target_r: 2,
      total_step: 10,
      lora_alpha: 8,
      target_modules: ['q_proj', 'v_proj'],
      rank_pattern: pattern,
      task_type: 'CAUSAL_LM',
    }),
  );
  await saveSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors);
  tf.dispose([...tensors.values()]);
}

test('adapter summary: kept ranks from the rank pattern, grid layers × module type', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  await writeFakeAdalora(dir);
  const s = await readAdapterSummary(dir);
  assert.equal(s.method, 'ADALORA');
  assert.deepEqual(
    s.modules.map((m) => [m.layer, m.type, m.rank, m.params]),
    [
      [0, 'q_proj', 3, 3 * 8 * 2 + 3],
      [0, 'v_proj', 1, 8 * 2 + 1],
      [1, 'q_proj', 0, 0],
      [1, 'v_proj', 2, 2 * 8 * 2 + 2],
    ],
  );
  assert.deepEqual(rankGrid(s.modules).cells, [
    [3, 1],
    [0, 2],
  ]);
  await assert.rejects(readAdapterSummary(path.join(dir, 'nope')), /not a PEFT adapter folder/);
});

test('report: HTML with SVG charts (loss, metrics, lr, budget, heatmap) and a PNG heatmap', async () => {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  await writeFakeAdalora(path.join(run, 'adapter'));
  const lines = [];
  for (let s = 1; s <= 10; s++)
    lines.push(
      JSON.stringify({
        type: 'train',
        step: s,
        epoch: 0,
        loss: 3 / s,
        lr: 1e-3 * (1 - s / 10),
        gradNorm: 1,
        budget: 16 - s,
        ranks: { a: 8 - Math.floor(s / 2), b: 8 - Math.floor(s / 3) },
        elapsedMs: s,
      }),
    );
  lines.push(
    JSON.stringify({ type: 'eval', step: 10, loss: 0.4, metrics: {}, perplexity: Math.exp(0.4), best: true }),
  );
  fs.writeFileSync(path.join(run, 'log.jsonl'), lines.join('\n') + '\n{"type":"tra'); // torn last line
  fs.writeFileSync(path.join(run, 'config.json'), JSON.stringify({ method: 'adalora' }));
  const r = await writeReport(run);
  const html = fs.readFileSync(r.html, 'utf8');
  assert.equal((html.match(/<svg/g) ?? []).length, 5); // heatmap, loss, perplexity, lr, budget
  for (const t of [
    'AdaLoRA rank budget',
    'scheduled budget',
    'actual total rank',
    'Where the rank went',
    'final rank per adapted matrix',
  ])
    assert.ok(html.includes(t), t);
  const png = fs.readFileSync(r.heatmapPng!);
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  assert.ok(png.length > 1000);
});
