/** `lowrank train`: fine-tune a model with an adapter (or fully) and write a run folder with a report. */
import path from 'node:path';
import type { Command } from '../command.js';
import { UsageError, type ParsedValue } from '../args.js';
import type { CliIO } from '../io.js';
import { TRAIN_OPTIONS } from './train_options.js';
import { loadDataSets, openTokenizer, tokenizerFiles } from '../data.js';
import { buildAdapter, methodConfig, type AdapterMethod, type MethodSpec } from '../../run/methods.js';
import {
  checkResumeOptions,
  checkRunFolder,
  cleanInterruptedWrites,
  openRunFolder,
  rotateCheckpoints,
  trimSlash,
  withSavedOptions,
} from '../run_folder.js';
import { checkRanges } from '../flags.js';
import { checkInputPath, checkTextEncoding, maxPositions, withEncoding } from '../inputs.js';
import { Progress } from '../progress.js';
import type { TrainableModel, TrainSummary } from '../../training/types.js';
import type { Module } from '../../nn/module.js';
import type { ConditionDataSets, RowConditionModel } from '../hyperlora.js';

export interface TrainResult {
  summary: TrainSummary;
  output: string;
  report?: string;
  heatmap?: string;
  trainableParams: number;
  /** AdaLoRA: the weighted orthogonal regulariser at the last step (the train loss is the task loss alone). */
  lastRegLoss?: number;
  /** HyperLoRA: held-out loss of each condition's set. */
  byCondition?: { name: string; loss: number; perplexity?: number }[];
}

/**
 * The whole `lowrank train` flow on parsed option values (the demo calls it too).
 * @example await runTraining(parsed.values, io);
 */
export async function runTraining(
  v: Record<string, ParsedValue | undefined>,
  io: CliIO,
  /** Options the user gave (the rest are defaults); a resume fills the rest from the run's config.json. */
  given?: ReadonlySet<string>,
): Promise<TrainResult> {
  const resume = Boolean(v.resume);
  if (resume && v.output) v = withSavedOptions(v, v.output as string, given);
  const modelPath = v.model as string | undefined;
  if (!modelPath) throw new UsageError('missing --model (a Hugging Face folder or a llama2.c .bin)');
  const hyper = v.method === 'hyperlora';
  if (!v.data && !hyper) throw new UsageError('missing --data (a .tsv/.csv/.jsonl table or a text file)');
  if (v.conditions !== undefined && !hyper)
    throw new UsageError('--conditions: only for --method hyperlora (use --data for one training set)');
  if (hyper && v.quantize !== undefined)
    throw new UsageError('--quantize: a 4-bit base under --method hyperlora is not supported yet');
  if (v.quantize !== undefined && v.method === 'full')
    throw new UsageError(
      '--quantize: a 4-bit base is frozen, so it needs an adapter method (use --method lora, adalora or dora)',
    );
  // Everything the user can get wrong is checked before anything is read at length or written.
  checkRanges(v);
  if (v.method === 'adalora' && (v['target-r'] as number) >= (v['init-r'] as number))
    throw new UsageError(
      `--target-r: must be below --init-r (got --target-r ${v['target-r']}, --init-r ${v['init-r']}): AdaLoRA starts at --init-r and prunes down to --target-r; lower --target-r or raise --init-r`,
    );
  const output = trimSlash(
    (v.output as string | undefined) ??
      path.join('runs', `${v.method}-${new Date().toISOString().replace(/[:.]/g, '-')}`),
  );
  checkRunFolder(output, resume);
  checkInputPath(modelPath, '--model');
  const positions = maxPositions(modelPath);
  if (positions !== undefined && (v['max-length'] as number) > positions)
    throw new UsageError(
      `--max-length: ${modelPath} has ${positions} positions (got ${v['max-length']}); pass --max-length ${positions} or less`,
    );
  for (const [flag, file] of [
    ['--data', v.data],
    ['--eval-data', v['eval-data']],
    ['--tokenizer', v.tokenizer],
  ] as const)
    if (typeof file === 'string') checkInputPath(file, flag);
  for (const [flag, file] of [
    ['--data', v.data],
    ['--eval-data', v['eval-data']],
  ] as const)
    if (typeof file === 'string') checkTextEncoding(file, flag, v.encoding as string);
  if (resume) checkResumeOptions(v, output);
  // the adapter config's own rules (e.g. AdaLoRA's schedule) before anything is loaded
  const spec = (taskType: 'SEQ_CLS' | 'CAUSAL_LM') =>
    v.method === 'full' ? 'full' : methodSpec(v, taskType);
  if (!hyper && v.method !== 'full')
    methodConfig(methodSpec(v, v.task === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS'));

  const { initBackend } = await import('../../tensor/backend.js');
  const backend = await initBackend(v.backend as string);
  const { manualSeed } = await import('../../nn/init.js');
  const { loadModel } = await import('../../models/load.js');
  const { Trainer } = await import('../../training/trainer.js');
  const { tf } = await import('../../tensor/tf.js');

  const tok = await openTokenizer(modelPath, v.tokenizer as string | undefined);
  const cacheRoot = path.join(path.dirname(path.resolve(output)), '.lowrank-cache');
  let conditionData: ConditionDataSets | undefined;
  if (hyper) {
    const { loadConditionSets } = await import('../hyperlora.js');
    conditionData = await loadConditionSets(v, tok.text, cacheRoot);
  }
  const data = conditionData ?? (await withEncoding(v, (w) => loadDataSets(w, tok.text, cacheRoot)));
  // config.json holds exactly the options (reusable with --config); derived facts go to run.json
  const config = {
    ...Object.fromEntries(
      Object.entries(v).filter(([k, x]) => x !== undefined && k !== 'resume' && k !== 'config'),
    ),
    output,
  };
  const runFacts = {
    task: data.task,
    labelNames: data.labelNames ?? null,
    numLabels: data.numLabels,
    backend: backend.backend,
    tokenizer: tok.path,
  };

  manualSeed(v.seed as number);
  const taskType = data.task === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS';
  const quantize = v.quantize as 'nf4' | 'fp4' | undefined;
  const base = await loadModel(modelPath, {
    task: taskType,
    // the collator pads with the tokenizer's id; a decoder classifier must look for the same id
    ...(taskType === 'SEQ_CLS' ? { numLabels: data.numLabels, padTokenId: tok.text.padTokenId } : {}),
    ...(quantize ? { quantize, doubleQuant: Boolean(v['double-quant']) } : {}),
    seed: v.seed as number,
  });
  const maxSteps = v['max-steps'] as number;
  const hyperModel = conditionData
    ? await (
        await import('../hyperlora.js')
      ).buildHyperLora(base, {
        r: v.r as number,
        loraAlpha: v['lora-alpha'] as number | undefined,
        loraDropout: v['lora-dropout'] as number,
        targetModules: v['target-modules'] as string[] | undefined,
        hiddenDim: v['hyper-hidden'] as number | undefined,
        embeddingDim: v['hyper-embedding'] as number | undefined,
        names: conditionData.names,
      })
    : undefined;
  const model: Module | RowConditionModel = hyperModel ?? buildAdapter(base, spec(taskType)).model;
  const trainableParams = model.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
  // only now, with every option checked and the model built, does the run folder get written
  const run = openRunFolder(output, config, runFacts, resume);
  const quiet = Boolean(v.quiet);
  if (!quiet) {
    io.err(
      `lowrank train: ${v.method} on ${path.basename(modelPath)} (${data.task}), backend ${backend.backend}`,
    );
    io.err(
      `  ${data.train.length} train / ${data.eval.length} eval examples; trainable parameters ${trainableParams.toLocaleString('en-US')}; run folder ${output}`,
    );
  }
  const progress = new Progress(io, maxSteps, Math.max(1, Math.round(maxSteps / 20)), quiet);
  const saveAdapter = async (dir: string) => {
    const m = model as unknown as { savePretrained?: (d: string) => Promise<void> };
    if (typeof m.savePretrained === 'function') return m.savePretrained(dir);
    // full fine-tuning: the result is a complete Hugging Face folder, tokenizer included
    const { saveModel } = await import('../../models/load.js');
    const files = tokenizerFiles(tok.path);
    await saveModel(base, dir, { tokenizerFiles: files });
  };
  const trainer = new Trainer(
    model as unknown as TrainableModel,
    {
      task: data.task,
      metricTask: v.metric as never,
      train: data.train,
      eval: data.eval,
      padTokenId: tok.text.padTokenId,
      lr: v.lr as number,
      weightDecay: v['weight-decay'] as number,
      schedule: v.schedule as never,
      warmupSteps: v['warmup-steps'] as number,
      maxSteps,
      batchSize: v['batch-size'] as number,
      evalBatchSize: v['eval-batch-size'] as number | undefined,
      gradientAccumulationSteps: v['grad-accum'] as number,
      maxGradNorm: v['max-grad-norm'] as number,
      evalEvery: v['eval-every'] as number,
      saveEvery: v['save-every'] as number,
      seed: v.seed as number,
      maxNonFinite: v['max-non-finite'] as number,
      outputDir: output,
      saveAdapter,
    },
    {
      onLog: (l) => run.log.append(l),
      onStep: (l) => {
        lastRegLoss = l.regLoss;
        progress.step(l);
      },
      onEval: (l) => progress.eval(l),
      onSkip: (s) => io.err(`\nstep ${s.step}: skipped (${s.reason}; ${s.inARow} in a row)`),
      onCheckpoint: () => rotateCheckpoints(output, v['keep-checkpoints'] as number),
    },
  );
  const onSignal = () => {
    io.err('\ninterrupted: finishing this step and writing a checkpoint (press Ctrl-C again to abort)');
    trainer.requestStop();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  let resumeFrom: string | undefined;
  let lastRegLoss: number | undefined;
  try {
    if (resume) {
      const { findResumableCheckpoint, loadCheckpoint, disposeCheckpoint } =
        await import('../../training/checkpoint.js');
      cleanInterruptedWrites(output);
      const found = await findResumableCheckpoint(output);
      for (const s of found.skipped) io.err(`  skipped ${path.relative(output, s.dir)}: ${s.reason}`);
      resumeFrom = found.dir;
      if (found.dir) {
        const c = await loadCheckpoint(found.dir);
        run.log.truncateAfter(c.state.step);
        disposeCheckpoint(c);
        if (!quiet || found.skipped.length) io.err(`  resuming from ${path.relative(output, found.dir)}`);
      } else {
        run.log.truncateAfter(0);
        if (!quiet || found.skipped.length)
          io.err(`  no intact checkpoint${found.skipped.length ? '' : ' yet'}: starting from step 0`);
      }
    }
    const summary = await trainer.train({ resume: resumeFrom ?? false });
    progress.done();
    const result: TrainResult = { summary, output, trainableParams, lastRegLoss };
    if (conditionData && hyperModel && summary.steps >= maxSteps) {
      const { evalByCondition } = await import('../hyperlora.js');
      result.byCondition = await evalByCondition(
        hyperModel,
        conditionData,
        (v['eval-batch-size'] as number | undefined) ?? (v['batch-size'] as number),
        tok.text.padTokenId,
      );
    }
    if (summary.steps < maxSteps) {
      io.err(
        `stopped at step ${summary.steps}/${maxSteps}; continue with: lowrank train --output ${output} --resume (same options)`,
      );
      return result;
    }
    if (!v['no-report']) {
      const { writeReport } = await import('../../report/report.js');
      const r = await writeReport(output);
      result.report = r.html;
      result.heatmap = r.heatmapPng;
    }
    return result;
  } finally {
    process.removeListener('SIGINT', onSignal);
    trainer.dispose();
    tf.dispose(model.parameters());
  }
}

/** The method spec of `lowrank train`'s values (`--r` is AdaLoRA's `--target-r`'s sibling). */
function methodSpec(
  v: Record<string, ParsedValue | undefined>,
  taskType: 'SEQ_CLS' | 'CAUSAL_LM',
): MethodSpec {
  const method = v.method as AdapterMethod;
  const adalora = method === 'adalora';
  return {
    method,
    taskType,
    r: (adalora ? v['target-r'] : v.r) as number,
    ...(adalora ? { initR: v['init-r'] as number } : {}),
    loraAlpha: v['lora-alpha'] as number | undefined,
    loraDropout: v['lora-dropout'] as number,
    targetModules: v['target-modules'] as string[] | undefined,
    totalStep: v['max-steps'] as number,
    schedule: {
      tinit: v.tinit as number | undefined,
      tfinal: v.tfinal as number | undefined,
      deltaT: v['delta-t'] as number | undefined,
    },
    orthRegWeight: v['orth-reg-weight'] as number,
  };
}

function printResult(r: TrainResult, io: CliIO): void {
  const e = r.summary.lastEval;
  const reg = r.lastRegLoss;
  io.out(
    `steps: ${r.summary.steps}   final train loss: ${r.summary.finalLoss.toFixed(4)}${reg !== undefined ? ` (task loss; + orthogonal regulariser ${reg.toFixed(4)})` : ''}`,
  );
  if (e) {
    const m = Object.entries(e.metrics).map(([k, x]) => `${k} ${x.toFixed(4)}`);
    if (e.perplexity !== undefined) m.push(`perplexity ${e.perplexity.toFixed(3)}`);
    io.out(`eval loss: ${e.loss.toFixed(4)}${m.length ? '   ' + m.join('   ') : ''}`);
  }
  if (r.summary.best)
    io.out(
      `best ${r.summary.best.metric}: ${r.summary.best.value.toFixed(4)} at step ${r.summary.best.step} (${r.summary.bestDir})`,
    );
  for (const c of r.byCondition ?? [])
    io.out(
      `eval loss [${c.name}]: ${c.loss.toFixed(4)}${c.perplexity !== undefined ? `   perplexity ${c.perplexity.toFixed(3)}` : ''}`,
    );
  if (r.summary.adapterDir)
    io.out(
      `${r.byCondition ? 'hypernetwork' : 'adapter'}: ${r.summary.adapterDir}${r.byCondition ? `   (export one condition: lowrank materialize --adapter ${r.summary.adapterDir} --condition ${r.byCondition[0]!.name} -o <dir>)` : ''}`,
    );
  if (r.report) io.out(`report: ${r.report}`);
  if (r.heatmap) io.out(`rank heatmap: ${r.heatmap}`);
}

export const trainCommand: Command = {
  spec: {
    name: 'train',
    summary:
      'Fine-tune a model with AdaLoRA / LoRA / DoRA / HyperLoRA (or fully); writes adapter, checkpoints, log and report',
    options: TRAIN_OPTIONS,
    configFile: true,
    examples: [
      'lowrank train -m ./bert-tiny --data glue/SST-2/train.tsv --eval-data glue/SST-2/dev.tsv --method adalora --init-r 12 --target-r 4 -o runs/sst2',
      'lowrank train -m stories260K.bin --tokenizer tok512.bin --data input.txt --task causal_lm --max-length 128 --max-steps 300 -o runs/shakespeare',
      'lowrank train --config train.yaml --lr 5e-4          # flags win over the file',
      'lowrank train -o runs/shakespeare --config runs/shakespeare/config.json --resume',
      'lowrank train -m stories260K.bin --method hyperlora --conditions shakespeare=input.txt,stories=tinystories.txt --max-length 64 -o runs/hyper',
    ],
  },
  async run(p, io) {
    printResult(await runTraining(p.values, io, p.given), io);
  },
};
