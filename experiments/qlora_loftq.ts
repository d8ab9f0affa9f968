/**
 * LoftQ on stories260K (issue 5, docs/qlora.md): how close a *fresh* QLoRA model gets to the f32 model
 * when its LoRA adapters start from LoftQ (`initLoraWeights: 'loftq'`) instead of B = 0.
 *
 * For each rank r and number of alternating rounds: load the f32 model, attach LoRA (r, loraAlpha = r so
 * the scaling is 1, all seven projections) with the LoftQ init, pack the base with
 * `quantizeModel(model, { doubleQuant })` and measure the TinyStories val loss (the method of
 * experiments/qlora.ts: first ~20k tokens, 256-token windows, BOS per story) before any training.
 * Baselines in the same run: f32, and the NF4 base with plain LoRA (B = 0, i.e. the 4-bit model).
 *
 *   npx tsx experiments/qlora_loftq.ts [--eval-tokens 20480]
 * writes experiments/results/qlora_loftq.json. Needs ../shared/data.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { getPeftModel } from '../src/tuners/peft_model.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import { quantizeModel, corpusIds, windowedLoss, memoryByCategory } from '../src/index.js';
import { DATA, STORIES260K, numberArg } from './script_args.js';

const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const backend = await initBackend((process.env.LOWRANK_BACKEND as 'auto') ?? 'auto');
const tok = await loadTokenizer(`${DATA}/models/stories260K/tok512.bin`);
const valIds = corpusIds(
  fs.readFileSync(`${DATA}/text/tinystories/tinystories_val.txt`, 'utf8'),
  (s: string) => tok.encode(s, { addSpecialTokens: false }),
  1,
  numberArg('eval-tokens', 20480),
);
console.log(`backend ${backend.backend}; ${valIds.length} TinyStories val tokens`);

const f32 = await loadModel(STORIES260K);
const f32Loss = windowedLoss(f32, valIds, 256);
f32.dispose();
console.log(`f32: ${f32Loss.toFixed(4)}`);

interface Row {
  init: 'zero' | 'loftq';
  r: number;
  iters: number;
  doubleQuant: boolean;
  loss: number;
  delta: number;
  adapterParams: number;
  frozen4bitBytes: number;
  seconds: number;
}
const rows: Row[] = [];
async function run(init: Row['init'], r: number, iters: number, doubleQuant: boolean): Promise<void> {
  const t0 = Date.now();
  const peft = getPeftModel(
    await loadModel(STORIES260K),
    new LoraConfig({
      r,
      loraAlpha: r,
      targetModules: TARGETS,
      initLoraWeights: init === 'loftq' ? 'loftq' : true,
      loftqConfig: init === 'loftq' ? { loftq_bits: 4, loftq_iter: iters } : {},
    }),
  );
  quantizeModel(peft.base_model.model, { quantType: 'nf4', doubleQuant });
  const loss = windowedLoss(peft, valIds, 256);
  const row: Row = {
    init,
    r,
    iters,
    doubleQuant,
    loss,
    delta: loss - f32Loss,
    adapterParams: peft.trainableParameters().reduce((n, [, v]) => n + v.size, 0),
    frozen4bitBytes: memoryByCategory(peft).frozenQuantized,
    seconds: (Date.now() - t0) / 1000,
  };
  rows.push(row);
  console.log(
    `${init} r ${r} rounds ${iters} ${doubleQuant ? 'nf4+dq' : 'nf4'}: loss ${loss.toFixed(4)} (Δ ${row.delta.toFixed(4)}), ${row.adapterParams} adapter params, ${row.seconds.toFixed(1)} s`,
  );
  peft.dispose();
}

for (const dq of [false, true]) await run('zero', 1, 0, dq); // B = 0: the plain 4-bit model
for (const r of [1, 2, 4, 8])
  for (const iters of [1, 5]) for (const dq of [false, true]) await run('loftq', r, iters, dq);

console.log(
  '\n| init | r | rounds | base | loss | Δ vs f32 | adapter params |\n|---|---|---|---|---|---|---|',
);
for (const x of rows)
  console.log(
    `| ${x.init === 'zero' ? 'B = 0 (4-bit model)' : 'LoftQ'} | ${x.init === 'zero' ? '—' : x.r} | ${x.init === 'zero' ? '—' : x.iters} | ${x.doubleQuant ? 'NF4 + DQ' : 'NF4'} | ${x.loss.toFixed(4)} | ${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(4)} | ${x.init === 'zero' ? '—' : x.adapterParams.toLocaleString('en-US')} |`,
  );
fs.writeFileSync(
  path.resolve(import.meta.dirname, 'results/qlora_loftq.json'),
  JSON.stringify({ backend: backend.backend, evalTokens: valIds.length, f32Loss, rows }, null, 2) + '\n',
);
console.log('\nwrote experiments/results/qlora_loftq.json');
