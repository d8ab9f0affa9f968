/**
 * `lowrank info`: version, compute backend in use (and why faster ones were passed over), addon, BLAS,
 * threads; with `--model`, the model's parameters and the bytes its tensors hold by category, and with
 * `--quantize` what a 4-bit (QLoRA) base holds against its f32 size (docs/qlora.md), and the process RSS
 * beside the tensor bytes (a folder loads streaming, so RSS stays near what the tensors hold); for a
 * decoder, an estimate of a training step's activations at --batch-size × --max-length
 * (models/step_memory.ts), with the memory flags suggested when a plain step would not fit.
 */
import type { Command } from '../command.js';
import { UsageError } from '../args.js';
import { table } from '../io.js';
import type { CliIO } from '../io.js';
import { totalmem } from 'node:os';
import type { MemoryByCategory } from '../../nn/memory_report.js';
import type { StepActivationEstimate } from '../../models/step_memory.js';
import { checkRanges } from '../flags.js';

export const infoCommand: Command = {
  spec: {
    name: 'info',
    summary:
      'Show the lowrank version and the compute backend in use (native addon, BLAS, threads); with --model, its memory by category',
    options: [
      {
        name: 'backend',
        type: 'string',
        description: 'backend to try',
        default: 'auto',
        choices: ['auto', 'native', 'wasm', 'cpu'],
      },
      { name: 'model', type: 'string', description: 'also inspect this model (HF folder or llama2.c .bin)' },
      {
        name: 'quantize',
        type: 'string',
        description: 'with --model: quantise its linear layers to 4 bits first (as train --quantize)',
        choices: ['nf4', 'fp4'],
      },
      {
        name: 'double-quant',
        type: 'boolean',
        description: 'with --quantize: quantise the absmax constants again (as train; --no-double-quant off)',
        default: true,
      },
      {
        name: 'embedding-dtype',
        type: 'string',
        description: 'with --quantize: storage of the frozen embeddings and a tied head (as train)',
        choices: ['float32', 'float16'],
      },
      {
        name: 'batch-size',
        type: 'int',
        description: 'with --model: batch size of the training step to estimate (as train)',
        default: 8,
      },
      {
        name: 'max-length',
        type: 'int',
        description: 'with --model: tokens per example of the training step to estimate (as train)',
        default: 128,
      },
      { name: 'json', type: 'boolean', description: 'print machine-readable JSON', default: false },
    ],
    examples: [
      'lowrank info',
      'lowrank info --backend wasm',
      'lowrank info --json',
      'lowrank info --model stories260K.bin --quantize nf4',
      'lowrank info --model ./smollm-135m --quantize nf4 --embedding-dtype float16 --batch-size 4 --max-length 256',
    ],
  },
  async run(p, io) {
    const v = p.values;
    if (v.quantize !== undefined && v.model === undefined)
      throw new UsageError('--quantize: needs --model (the model to quantise)');
    if (v['embedding-dtype'] === 'float16' && v.quantize === undefined)
      throw new UsageError('--embedding-dtype float16: needs --quantize (add --quantize nf4)');
    checkRanges(v);
    const { initBackend, backendInfo } = await import('../../tensor/backend.js');
    const report = await initBackend(v.backend as string);
    const info = backendInfo();
    const model =
      v.model === undefined
        ? undefined
        : await inspectModel(v.model as string, {
            quantType: v.quantize as 'nf4' | 'fp4' | undefined,
            doubleQuant: Boolean(v['double-quant']),
            half: v['embedding-dtype'] === 'float16',
            batch: v['batch-size'] as number,
            seq: v['max-length'] as number,
          });
    if (v.json) {
      io.out(JSON.stringify({ ...info, tried: report.tried, ...(model ? { model } : {}) }, null, 2));
      return;
    }
    io.out(`lowrank ${info.version} (tfjs-core ${info.tfjsVersion}, node ${process.versions.node})`);
    io.out(`backend in use: ${info.backend}`);
    io.out(
      `native addon: ${info.addonLoaded ? 'loaded' : `not loaded (${info.addonError ?? 'unknown reason'})`}`,
    );
    io.out(`BLAS: ${info.blas ?? 'none (addon not loaded)'}`);
    io.out(`threads: ${info.threads}`);
    io.out('');
    io.out(
      table(
        ['backend', 'status'],
        report.tried.map((t) => [t.name, t.ok ? 'ok (selected)' : `skipped: ${t.reason}`]),
      ),
    );
    if (model) await printModel(model, io);
  },
};

/** What `info --model` reports (also its JSON). */
interface ModelInfo {
  path: string;
  architecture: string;
  /** Parameters including 4-bit weights (counted as out·in elements). */
  parameters: number;
  quantize: { quantType: 'nf4' | 'fp4'; doubleQuant: boolean; quantized: number; skipped: string[] } | null;
  memory: MemoryByCategory;
  /** Packed 4-bit bytes / their f32 size, or null without 4-bit layers. */
  quantizedRatio: number | null;
  /**
   * This process's resident memory (bytes) with the model loaded: `rss` now, `peakRss` the most it
   * held (load included), next to `heldBytes`, what the model's tensors take.
   */
  process: { rss: number; peakRss: number; heldBytes: number };
  /** Estimated activations of one training step (decoders only), against the machine's memory. */
  step: StepInfo | null;
}

/** A training step's activation estimate at batch × seq (models/step_memory.ts), bytes. */
interface StepInfo {
  batch: number;
  seq: number;
  plain: number;
  withMemoryOptions: number;
  /** Physical memory of the machine. */
  totalMemory: number;
  /** RSS now + the plain estimate fits in `totalMemory`. */
  plainFits: boolean;
  withOptionsFits: boolean;
  /** What to do, or null when a plain step fits. */
  suggestion: string | null;
}

/**
 * The step estimate against the machine's memory, and the flags to suggest when a plain step would
 * not fit.
 *
 * @example stepInfo({ plain: 30e9, withMemoryOptions: 1e9 }, 8, 512, 2e9, 24e9).suggestion;
 * // 'a plain step would not fit: add --gradient-checkpointing --chunked-loss'
 */
export function stepInfo(
  est: StepActivationEstimate,
  batch: number,
  seq: number,
  rss: number,
  totalMemory: number,
): StepInfo {
  const plainFits = rss + est.plain <= totalMemory;
  const withOptionsFits = rss + est.withMemoryOptions <= totalMemory;
  const suggestion = plainFits
    ? null
    : withOptionsFits
      ? 'a plain step would not fit: add --gradient-checkpointing --chunked-loss'
      : 'a step would not fit even with --gradient-checkpointing --chunked-loss: lower --batch-size or --max-length';
  return { batch, seq, ...est, totalMemory, plainFits, withOptionsFits, suggestion };
}

interface InspectOptions {
  quantType: 'nf4' | 'fp4' | undefined;
  doubleQuant: boolean;
  half: boolean;
  batch: number;
  seq: number;
}

async function inspectModel(path: string, o: InspectOptions): Promise<ModelInfo> {
  const { quantType, doubleQuant } = o;
  const { loadModel } = await import('../../models/load.js');
  const { Linear4bit } = await import('../../nn/linear4bit.js');
  const { memoryByCategory, totalBytes } = await import('../../nn/memory_report.js');
  const { isLinearLike } = await import('../../nn/linear_like.js');
  const { processMemory } = await import('../../util/process_memory.js');
  const { estimateStepActivations } = await import('../../models/step_memory.js');
  // a folder streams tensor by tensor and quantises each as it is read (models/stream_load.ts)
  const model = await loadModel(
    path,
    quantType
      ? { quantize: quantType, doubleQuant, ...(o.half ? { embeddingDtype: 'float16' as const } : {}) }
      : {},
  );
  try {
    const modules = model.namedModules();
    const quantized = modules.filter(([, m]) => m instanceof Linear4bit).length;
    const skipped = modules
      .filter(([p, m]) => p !== '' && isLinearLike(m) && !(m instanceof Linear4bit))
      .filter(([, m]) => !m.namedChildren().some(([, c]) => isLinearLike(c)))
      .map(([p]) => p);
    let parameters = model.numParameters();
    for (const [, m] of modules) if (m instanceof Linear4bit) parameters += m.inFeatures * m.outFeatures;
    const memory = memoryByCategory(model);
    const proc = processMemory();
    const est = model.taskType === 'CAUSAL_LM' ? estimateStepActivations(model.config, o.batch, o.seq) : null;
    return {
      path,
      architecture: model.architecture,
      parameters,
      quantize: quantType ? { quantType, doubleQuant, quantized, skipped } : null,
      memory,
      quantizedRatio:
        memory.frozenQuantizedFp32 > 0 ? memory.frozenQuantized / memory.frozenQuantizedFp32 : null,
      process: { ...proc, heldBytes: totalBytes(memory) },
      step: est ? stepInfo(est, o.batch, o.seq, proc.rss, totalmem()) : null,
    };
  } finally {
    model.dispose();
  }
}

async function printModel(m: ModelInfo, io: CliIO): Promise<void> {
  const { memoryRows, formatBytes } = await import('../../nn/memory_report.js');
  io.out('');
  io.out(`model: ${m.path} (${m.architecture}), ${m.parameters.toLocaleString('en-US')} parameters`);
  if (m.quantize) {
    const dq = m.quantize.doubleQuant ? ' + double quantisation' : '';
    const skipped = m.quantize.skipped.length ? `; kept f32: ${m.quantize.skipped.join(', ')}` : '';
    io.out(
      `quantised: ${m.quantize.quantized} linear layers to ${m.quantize.quantType.toUpperCase()}${dq} (blocksize 64)${skipped}`,
    );
  }
  io.out('memory by category (bare model: every parameter trains until an adapter freezes the base):');
  io.out(table(['category', 'bytes'], memoryRows(m.memory)));
  io.out(
    `process RSS: ${formatBytes(m.process.rss)} (peak ${formatBytes(m.process.peakRss)}); ` +
      `tensors held: ${formatBytes(m.process.heldBytes)}`,
  );
  if (!m.step) return;
  const s = m.step;
  io.out(
    `training step ${s.batch} × ${s.seq} (rough estimate of activations): plain ${formatBytes(s.plain)}; ` +
      `with --gradient-checkpointing --chunked-loss ${formatBytes(s.withMemoryOptions)}; ` +
      `machine memory ${formatBytes(s.totalMemory)}`,
  );
  if (s.suggestion) io.out(s.suggestion);
}
