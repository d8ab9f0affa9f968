/**
 * Where does the 4-bit loss gap of stories260K come from? (issue 5: target ≤ 0.05 nats over f32 on
 * TinyStories val; experiments/qlora.ts measured 0.10 for NF4 + double quantisation, blocksize 64.)
 *
 *  1. Methodology checks: the f32 loss against the oracle; the same delta on more tokens and with one
 *     story per sequence (BOS + story, no mid-story windows); the set of quantised modules (every
 *     linear layer except the output head, as transformers + bitsandbytes); a dense model holding the
 *     dequantised weights gives the quantised model's loss (the 4-bit forward adds nothing); and a
 *     control with Gaussian noise of the same per-matrix norm as the quantisation error.
 *  2. Attribution: quantise one module type (all layers), one layer (all types) or one matrix at a
 *     time; and everything except one type (bitsandbytes' `llm_int8_skip_modules`).
 *  3. Greedy skip list: keep the matrices with the largest single-matrix deltas in f32 until the gap
 *     is ≤ 0.05, and what that costs in bytes.
 * Writes experiments/results/qlora_gap.json. Needs ../shared/data. Takes ~N evaluations of the
 * 80-window set (printed as it goes).
 *
 *   npx tsx experiments/qlora_gap.ts [--eval-tokens 20480] [--long-tokens 102400]
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import type { PreTrainedModel } from '../src/models/base.js';
import type { Linear } from '../src/nn/layers.js';
import { dequantize4bit } from '../src/tensor/quant/index.js';
import { manualSeed } from '../src/nn/init.js';
import {
  Linear4bit,
  quantizeModel,
  memoryByCategory,
  corpusIds,
  windowedLoss,
  denseLinearWeights,
} from '../src/index.js';
import { DATA, STORIES260K, numberArg } from './script_args.js';

const MODEL = STORIES260K;
const arg = numberArg;
const EVAL_TOKENS = arg('eval-tokens', 20480);
const LONG_TOKENS = arg('long-tokens', 102_400);
const TARGET = 0.05; // issue 5
const WINDOW = 256;
const SEQ_LEN = 512; // stories260K's trained context
const NF4_DQ = { quantType: 'nf4', doubleQuant: true, blocksize: 64 } as const;

const backend = await initBackend('auto');
console.log(`backend: ${backend.backend}`);
const tok = await loadTokenizer(`${DATA}/models/stories260K/tok512.bin`);
const encode = (s: string) => tok.encode(s, { addSpecialTokens: false });
const valText = fs.readFileSync(`${DATA}/text/tinystories/tinystories_val.txt`, 'utf8');
const valIds = corpusIds(valText, encode, 1, EVAL_TOKENS);
const t0 = Date.now();
const out: Record<string, unknown> = { backend: backend.backend, evalTokens: valIds.length, window: WINDOW };
const save = () =>
  fs.writeFileSync(
    path.resolve(import.meta.dirname, 'results/qlora_gap.json'),
    JSON.stringify({ ...out, seconds: (Date.now() - t0) / 1000 }, null, 2) + '\n',
  );

const typeOf = (p: string) => p.slice(p.lastIndexOf('.') + 1);
const layerOf = (p: string) => Number(/layers\.(\d+)\./.exec(p)![1]);

/** Loss on the val windows, then disposes the model. */
function lossOf(model: PreTrainedModel, ids = valIds): number {
  const l = windowedLoss(model, ids, WINDOW);
  model.dispose();
  return l;
}

/** stories260K with only the linear layers `pick` accepts quantised (NF4 + DQ, blocksize 64). */
async function quantizedWhere(pick: (p: string) => boolean): Promise<PreTrainedModel> {
  const model = await loadModel(MODEL);
  const skip = ['lm_head', ...LINEAR.filter((p) => !pick(p))];
  if (skip.length <= LINEAR.length) quantizeModel(model, { ...NF4_DQ, skipModules: skip });
  return model;
}

// ---- 1. methodology -------------------------------------------------------------------------------
const fp32 = await loadModel(MODEL);
const dense = denseLinearWeights(fp32);
const fp32Loss = windowedLoss(fp32, valIds, WINDOW);
const full = await loadModel(MODEL);
const report = quantizeModel(full, NF4_DQ); // default: every linear layer except the output head
const LINEAR = report.quantized;
const SIZES = new Map<string, number>();
for (const [p, m] of full.namedModules())
  if (m instanceof Linear4bit) SIZES.set(p, m.inFeatures * m.outFeatures);
const fullLoss = windowedLoss(full, valIds, WINDOW);
const gap = fullLoss - fp32Loss;
const stillDense = full
  .namedParameters()
  .map(([n, p]) => `${n} [${p.shape}]`)
  .filter((n) => !/layers\.\d+\.(self_attn|mlp)\./.test(n));
console.log(
  `f32 ${fp32Loss.toFixed(4)} (oracle 1.429), NF4+DQ ${fullLoss.toFixed(4)}, gap ${gap.toFixed(4)}`,
);
console.log(
  `quantised ${LINEAR.length} linear layers; kept: ${report.skipped}; f32 tensors: ${stillDense.length}`,
);
out.fp32Loss = fp32Loss;
out.nf4dqLoss = fullLoss;
out.gap = gap;
out.quantizedModules = LINEAR;
out.skippedModules = report.skipped;
out.f32Tensors = stillDense;

// The dense twin: the f32 model with every linear weight replaced by its dequantised 4-bit value.
for (const [p, m] of full.namedModules()) {
  if (!(m instanceof Linear4bit)) continue;
  const w = tf.tensor(dequantize4bit(m.quant), m.quant.shape);
  (fp32.getSubmodule(p) as Linear).setDenseWeight(w);
  w.dispose();
}
const twinLoss = windowedLoss(fp32, valIds, WINDOW);
console.log(
  `dense model over the dequantised weights: ${twinLoss.toFixed(6)} (4-bit: ${fullLoss.toFixed(6)})`,
);
out.dequantizedDenseTwinLoss = twinLoss;
fp32.dispose();

// Control: Gaussian noise with each matrix's quantisation-error norm (is NF4's error worse than noise?).
const noiseDeltas: number[] = [];
for (const seed of [1, 2, 3]) {
  manualSeed(seed);
  const m = await loadModel(MODEL);
  for (const [p, w] of dense) {
    if (!SIZES.has(p)) continue;
    const q = dequantize4bit((full.getSubmodule(p) as Linear4bit).quant);
    let errSq = 0;
    for (let i = 0; i < w.length; i++) errSq += (q[i]! - w[i]!) ** 2;
    const layer = m.getSubmodule(p) as Linear;
    const noisy = tf.tidy(() => {
      const n = tf.randomNormal(layer.weight.shape, 0, 1, 'float32', seed * 1000 + LINEAR.indexOf(p));
      const scale = Math.sqrt(errSq) / Math.sqrt(n.square().sum().dataSync()[0]!);
      return layer.weight.add(n.mul(scale));
    });
    layer.setDenseWeight(noisy);
    noisy.dispose();
  }
  noiseDeltas.push(lossOf(m) - fp32Loss);
}
console.log(
  `same-norm Gaussian noise instead of NF4 error: Δ ${noiseDeltas.map((d) => d.toFixed(4)).join(', ')}`,
);
out.noiseControlDeltas = noiseDeltas;
full.dispose();

// More tokens, and one story per sequence (BOS + story, truncated at the trained context of 512).
const longIds = corpusIds(valText, encode, 1, LONG_TOKENS);
const longFp32 = lossOf(await loadModel(MODEL), longIds);
const longNf4 = lossOf(await quantizedWhere(() => true), longIds);
console.log(
  `${longIds.length} tokens: f32 ${longFp32.toFixed(4)}, NF4+DQ ${longNf4.toFixed(4)}, gap ${(longNf4 - longFp32).toFixed(4)}`,
);
out.long = { tokens: longIds.length, fp32: longFp32, nf4dq: longNf4, gap: longNf4 - longFp32 };

function storyLoss(model: PreTrainedModel): { loss: number; tokens: number; stories: number } {
  let sum = 0;
  let count = 0;
  let stories = 0;
  for (const block of valText.split(/\n\s*\n/)) {
    if (block.trim().length === 0) continue;
    const ids = [1, ...encode(block.trim())].slice(0, SEQ_LEN);
    if (ids.length < 2) continue;
    const l = tf.tidy(() => {
      const x = tf.tensor2d([ids], [1, ids.length], 'int32');
      return model.forward({ inputIds: x, labels: x }).loss!.dataSync()[0]!;
    });
    sum += l * (ids.length - 1);
    count += ids.length - 1;
    stories++;
    if (count >= EVAL_TOKENS) break;
  }
  model.dispose();
  return { loss: sum / count, tokens: count, stories };
}
const perStoryFp32 = storyLoss(await loadModel(MODEL));
const perStoryNf4 = storyLoss(await quantizedWhere(() => true));
console.log(
  `per story (${perStoryFp32.stories} stories, ${perStoryFp32.tokens} predictions): f32 ${perStoryFp32.loss.toFixed(4)}, NF4+DQ ${perStoryNf4.loss.toFixed(4)}, gap ${(perStoryNf4.loss - perStoryFp32.loss).toFixed(4)}`,
);
out.perStory = { fp32: perStoryFp32, nf4dq: perStoryNf4, gap: perStoryNf4.loss - perStoryFp32.loss };
save();

// ---- 2. attribution -------------------------------------------------------------------------------
const delta = async (pick: (p: string) => boolean) => lossOf(await quantizedWhere(pick)) - fp32Loss;
const TYPES = [...new Set(LINEAR.map(typeOf))];
const LAYERS = [...new Set(LINEAR.map(layerOf))];
const byType: Record<string, { only: number; allBut: number; bytesF32: number }> = {};
for (const t of TYPES) {
  const only = await delta((p) => typeOf(p) === t);
  const allBut = await delta((p) => typeOf(p) !== t);
  const bytesF32 = LINEAR.filter((p) => typeOf(p) === t).reduce((s, p) => s + 4 * SIZES.get(p)!, 0);
  byType[t] = { only, allBut, bytesF32 };
  console.log(
    `type ${t}: only Δ ${only.toFixed(4)}; all but Δ ${allBut.toFixed(4)} (keeps ${bytesF32} B f32)`,
  );
}
out.byType = byType;
const byLayer: Record<number, number> = {};
for (const l of LAYERS) {
  byLayer[l] = await delta((p) => layerOf(p) === l);
  console.log(`layer ${l}: only Δ ${byLayer[l]!.toFixed(4)}`);
}
out.byLayer = byLayer;
save();
const byMatrix: Record<string, number> = {};
for (const p of LINEAR) {
  byMatrix[p] = await delta((q) => q === p);
  console.log(`${p}: only Δ ${byMatrix[p]!.toFixed(4)}`);
}
out.byMatrix = byMatrix;
out.sumOfMatrixDeltas = Object.values(byMatrix).reduce((a, b) => a + b, 0);
save();

// ---- 3. greedy skip list ---------------------------------------------------------------------------
const order = [...LINEAR].sort((a, b) => byMatrix[b]! - byMatrix[a]!);
const fp32LinearBytes = LINEAR.reduce((s, p) => s + 4 * SIZES.get(p)!, 0);
const greedy: { kept: string[]; gap: number; linearBytes: number; ratio: number }[] = [];
for (let k = 1; k <= order.length; k++) {
  const kept = order.slice(0, k);
  const m = await quantizedWhere((p) => !kept.includes(p));
  const mem = memoryByCategory(m);
  const linearBytes = mem.frozenQuantized + kept.reduce((s, p) => s + 4 * SIZES.get(p)!, 0);
  const g = lossOf(m) - fp32Loss;
  greedy.push({ kept, gap: g, linearBytes, ratio: linearBytes / fp32LinearBytes });
  console.log(
    `keep ${k} in f32 (${kept.at(-1)}): gap ${g.toFixed(4)}, linear bytes ${(linearBytes / fp32LinearBytes).toFixed(4)}× f32`,
  );
  save();
  if (g <= TARGET) break;
}
out.greedy = greedy;
out.fp32LinearBytes = fp32LinearBytes;
save();
console.log(`wrote experiments/results/qlora_gap.json (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
