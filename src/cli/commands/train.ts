/** `lowrank train`: fine-tune a model with an adapter (or fully) and write a run folder with a report. */
import path from 'node:path';
import type { Command } from '../command.js';
import { UsageError, type ParsedValue } from '../args.js';
import type { CliIO } from '../io.js';
import { TRAIN_OPTIONS } from './train_options.js';
import { dataOptions } from '../data.js';
import type { AdapterMethod, MethodSpec } from '../../run/methods.js';
import type { TrainingJob, TrainResult } from '../../run/train_job.js';
import { checkResumeOptions, checkRunFolder, trimSlash, withSavedOptions } from '../run_folder.js';
import { checkRanges } from '../flags.js';
import { parseConditions } from '../../run/hyperlora.js';
import { checkInputPath, checkTextEncoding, maxPositions, withEncoding } from '../inputs.js';
import { Progress } from '../progress.js';
import type { MetricTask } from '../../training/metrics.js';
import type { ScheduleName } from '../../training/optim.js';

export type { TrainResult } from '../../run/train_job.js';

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
  if (v['embedding-dtype'] === 'float16' && v.quantize === undefined)
    throw new UsageError(
      '--embedding-dtype float16: needs --quantize (it is the storage of a 4-bit base; add --quantize nf4)',
    );
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
  if (hyper) {
    parseConditions(v.conditions as string[] | undefined);
    if (v.data !== undefined || v['eval-data'] !== undefined)
      throw new UsageError(
        `--${v.data !== undefined ? 'data' : 'eval-data'}: --method hyperlora reads its training sets from --conditions name=path,… (each split by --eval-fraction)`,
      );
  }
  const maxSteps = v['max-steps'] as number;
  const quiet = Boolean(v.quiet);
  const progress = new Progress(io, maxSteps, Math.max(1, Math.round(maxSteps / 20)), quiet);
  const stop = new AbortController();
  const onSignal = () => {
    io.err('\ninterrupted: finishing this step and writing a checkpoint (press Ctrl-C again to abort)');
    stop.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const { runTrainingJob } = await import('../../run/train_job.js');
  try {
    const result = await withEncoding(v, (w) =>
      runTrainingJob(trainingJob(v, w, output, stop.signal), {
        onStart: (s) => {
          if (quiet) return;
          io.err(
            `lowrank train: ${v.method} on ${path.basename(modelPath)} (${s.task}), backend ${s.backend}`,
          );
          io.err(
            `  ${s.train} train / ${s.eval} eval examples; trainable parameters ${s.trainableParams.toLocaleString('en-US')}; run folder ${output}`,
          );
        },
        onStep: (l) => progress.step(l),
        onEval: (l) => progress.eval(l),
        onSkip: (s) => io.err(`\nstep ${s.step}: skipped (${s.reason}; ${s.inARow} in a row)`),
        onResume: (r) => {
          for (const s of r.skipped) io.err(`  skipped ${path.relative(output, s.dir)}: ${s.reason}`);
          if (quiet && !r.skipped.length) return;
          if (r.from) io.err(`  resuming from ${path.relative(output, r.from)}`);
          else io.err(`  no intact checkpoint${r.skipped.length ? '' : ' yet'}: starting from step 0`);
        },
      }),
    );
    progress.done();
    if (result.summary.steps < maxSteps)
      io.err(
        `stopped at step ${result.summary.steps}/${maxSteps}; continue with: lowrank train --output ${output} --resume (same options)`,
      );
    return result;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

/** The typed job of `lowrank train`'s checked values. */
function trainingJob(
  v: Record<string, ParsedValue | undefined>,
  /** `v` with --data / --eval-data transcoded to UTF-8 (see withEncoding) */
  w: Record<string, ParsedValue | undefined>,
  output: string,
  signal: AbortSignal,
): TrainingJob {
  const num = (k: string) => v[k] as number;
  const opt = (k: string) => v[k] as number | undefined;
  const method: TrainingJob['method'] =
    v.method === 'full'
      ? 'full'
      : v.method === 'hyperlora'
        ? {
            hyper: {
              conditions: parseConditions(v.conditions as string[] | undefined),
              r: num('r'),
              loraAlpha: opt('lora-alpha'),
              loraDropout: num('lora-dropout'),
              targetModules: v['target-modules'] as string[] | undefined,
              hiddenDim: opt('hyper-hidden'),
              embeddingDim: opt('hyper-embedding'),
            },
          }
        : methodFields(v);
  return {
    model: v.model as string,
    tokenizer: v.tokenizer as string | undefined,
    method,
    ...(v.quantize !== undefined
      ? {
          quantize: {
            quantType: v.quantize as 'nf4' | 'fp4',
            doubleQuant: Boolean(v['double-quant']),
            ...(v['embedding-dtype'] !== undefined
              ? { embeddingDtype: v['embedding-dtype'] as 'float32' | 'float16' }
              : {}),
          },
        }
      : {}),
    memory: {
      gradientCheckpointing: Boolean(v['gradient-checkpointing']),
      chunkedLoss: Boolean(v['chunked-loss']),
    },
    data: dataFields(w),
    trainer: {
      lr: num('lr'),
      weightDecay: num('weight-decay'),
      schedule: v.schedule as ScheduleName,
      warmupSteps: num('warmup-steps'),
      maxSteps: num('max-steps'),
      batchSize: num('batch-size'),
      evalBatchSize: opt('eval-batch-size'),
      gradientAccumulationSteps: num('grad-accum'),
      maxGradNorm: num('max-grad-norm'),
      evalEvery: num('eval-every'),
      saveEvery: num('save-every'),
      maxNonFinite: num('max-non-finite'),
      metricTask: v.metric as MetricTask | undefined,
    },
    seed: num('seed'),
    backend: v.backend as string,
    output,
    resume: Boolean(v.resume),
    keepCheckpoints: num('keep-checkpoints'),
    report: !v['no-report'],
    // config.json holds exactly the options (reusable with --config); derived facts go to run.json
    config: {
      ...Object.fromEntries(
        Object.entries(v).filter(([k, x]) => x !== undefined && k !== 'resume' && k !== 'config'),
      ),
      output,
    },
    signal,
    outputLabel: '--output',
  };
}

/** The data fields of `lowrank train`'s values (with --encoding, the file read is a UTF-8 copy). */
function dataFields(v: Record<string, ParsedValue | undefined>): TrainingJob['data'] {
  const { seed: _seed, cacheDir: _cache, ...rest } = dataOptions({ ...v, data: v.data ?? '-' }, undefined);
  return { ...rest, data: v.data as string | undefined, cache: !v['no-cache'] };
}

/** The adapter fields of `lowrank train`'s values (`--r` is LoRA's rank, `--target-r` AdaLoRA's). */
function methodFields(
  v: Record<string, ParsedValue | undefined>,
): Omit<MethodSpec, 'taskType' | 'totalStep'> {
  const method = v.method as AdapterMethod;
  const adalora = method === 'adalora';
  return {
    method,
    r: (adalora ? v['target-r'] : v.r) as number,
    ...(adalora ? { initR: v['init-r'] as number } : {}),
    loraAlpha: v['lora-alpha'] as number | undefined,
    loraDropout: v['lora-dropout'] as number,
    targetModules: v['target-modules'] as string[] | undefined,
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
