/** `lowrank eval`, `generate`, `merge`, `convert`, `report`: thin shells over models, tuners, io and report. */
import fs from 'node:fs';
import type { Command } from '../command.js';
import { UsageError, type ParsedValue } from '../args.js';
import { DATA_OPTIONS } from './train_options.js';
import { loadDataSets, openTokenizer, tokenizerFiles, tokenizerPathFor } from '../data.js';
import { isHyperLoraFolder, loadHyperAsLora } from '../../run/hyperlora.js';
import { checkOutputFolder } from '../output_folder.js';
import { checkInputPath, checkTextEncoding, maxPositions, withEncoding } from '../inputs.js';
import { trimSlash } from '../run_folder.js';

export const BACKEND = {
  name: 'backend',
  type: 'string',
  description: 'compute backend',
  default: 'auto',
  choices: ['auto', 'native', 'wasm', 'cpu'],
} as const;
export const MODEL = {
  name: 'model',
  short: 'm',
  type: 'string',
  description: 'base model: Hugging Face folder or llama2.c .bin',
} as const;
export const ADAPTER = {
  name: 'adapter',
  short: 'a',
  type: 'string',
  description:
    "PEFT adapter folder (adapter_config.json + adapter_model.safetensors), or a HyperLoRA run's adapter/ with --condition",
} as const;
const CONDITION = {
  name: 'condition',
  type: 'string',
  description: 'HyperLoRA: the condition (name from --conditions, or id) whose adapter to use',
} as const;

export function need(v: Record<string, ParsedValue | undefined>, key: string, what: string): string {
  const x = v[key];
  if (typeof x !== 'string' || x === '') throw new UsageError(`missing --${key} (${what})`);
  return x;
}

/** Loads the base model and, if given, the adapter on top (inference mode). */
async function loadWithAdapter(
  v: Record<string, ParsedValue | undefined>,
  task: 'CAUSAL_LM' | 'SEQ_CLS',
  numLabels?: number,
  /** The collator's pad id: a decoder classifier finds each row's last real token with it. */
  padTokenId?: number,
) {
  const { initBackend } = await import('../../tensor/backend.js');
  await initBackend(v.backend as string);
  const { loadModel } = await import('../../models/load.js');
  const modelPath = need(v, 'model', 'a Hugging Face folder or llama2.c .bin');
  const base = await loadModel(modelPath, {
    task,
    ...(numLabels ? { numLabels } : {}),
    ...(task === 'SEQ_CLS' && padTokenId !== undefined ? { padTokenId } : {}),
    seed: 0,
  });
  const adapter = v.adapter as string | undefined;
  if (v.condition !== undefined && !(adapter && (await isHyperLoraFolder(adapter))))
    throw new UsageError('--condition: only with --adapter <a HyperLoRA hypernetwork folder>');
  if (!adapter) return { base, model: base };
  if (await isHyperLoraFolder(adapter)) {
    // the hypernetwork pinned to one condition is a plain LoRA: every LoRA path below applies to it
    const { peft } = await loadHyperAsLora(base, adapter, v.condition as string | undefined);
    return { base, model: peft, peft };
  }
  const { PeftModel } = await import('../../tuners/index.js');
  await import('../../tuners/adalora/index.js');
  const peft = await PeftModel.fromPretrained(base, adapter);
  return { base, model: peft, peft };
}

export const evalCommand: Command = {
  spec: {
    name: 'eval',
    summary: 'Evaluate a model (optionally with an adapter) on a dataset: loss, perplexity, task metrics',
    options: [
      MODEL,
      ADAPTER,
      CONDITION,
      ...DATA_OPTIONS.filter((o) => o.name !== 'eval-data').map((o) =>
        o.name === 'data'
          ? {
              ...o,
              description: 'evaluation data: .tsv/.csv/.jsonl table (GLUE layouts detected) or plain text',
            }
          : o,
      ),
      {
        name: 'heldout',
        type: 'boolean',
        description: "evaluate on train's held-out split of --data (same --seed, --eval-fraction)",
        default: false,
      },
      { name: 'batch-size', short: 'b', type: 'int', description: 'examples per batch', default: 16 },
      { name: 'seed', type: 'int', description: 'seed', default: 42 },
      BACKEND,
      { name: 'json', type: 'boolean', description: 'print JSON', default: false },
    ],
    configFile: true,
    examples: [
      'lowrank eval -m stories260K.bin --tokenizer tok512.bin --data input.txt --heldout --eval-limit 64',
      'lowrank eval -m ./bert --adapter runs/sst2/adapter --data glue/SST-2/dev.tsv',
      'lowrank eval -m stories260K.bin --adapter runs/hyper/adapter --condition shakespeare --data input.txt --heldout',
    ],
  },
  async run(p, io) {
    const v = p.values;
    checkInputPath(need(v, 'model', 'a model'), '--model');
    if (typeof v.data === 'string') {
      checkInputPath(v.data, '--data');
      checkTextEncoding(v.data, '--data', v.encoding as string);
    }
    const tok = await openTokenizer(need(v, 'model', 'a model'), v.tokenizer as string | undefined);
    // --heldout: the very examples `lowrank train` holds out of --data (same --seed and --eval-fraction),
    // so a base model and a trained adapter are compared on identical text
    const data = await withEncoding(v, (w) =>
      loadDataSets(
        w.heldout ? { ...w, 'eval-data': undefined } : { ...w, 'eval-data': w.data },
        tok.text,
        undefined,
      ),
    );
    const { model } = await loadWithAdapter(
      v,
      data.task === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS',
      data.task === 'causal_lm' ? undefined : data.numLabels,
      tok.text.padTokenId,
    );
    const { evaluate } = await import('../../training/evaluate.js');
    const metricTask = (v.metric as never) ?? (data.task === 'classification' ? 'classification' : data.task);
    const r = await evaluate(
      model as never,
      data.eval,
      data.task,
      metricTask,
      v['batch-size'] as number,
      tok.text.padTokenId,
    );
    if (v.json) return void io.out(JSON.stringify(r, null, 2));
    io.out(
      `examples: ${data.eval.length}   loss: ${r.loss.toFixed(4)}${r.perplexity !== undefined ? `   perplexity: ${r.perplexity.toFixed(3)}` : ''}`,
    );
    for (const [k, x] of Object.entries(r.metrics)) io.out(`${k}: ${x.toFixed(4)}`);
  },
};

export const generateCommand: Command = {
  spec: {
    name: 'generate',
    summary: 'Generate text with a causal LM (optionally with an adapter)',
    options: [
      MODEL,
      ADAPTER,
      CONDITION,
      { name: 'tokenizer', type: 'string', description: 'tokenizer (default: beside the model)' },
      { name: 'prompt', short: 'p', type: 'string', description: 'prompt text', default: '' },
      { name: 'max-new-tokens', short: 'n', type: 'int', description: 'tokens to generate', default: 64 },
      {
        name: 'steps',
        type: 'int',
        description: "llama2.c's -n: positions after BOS, prompt included (replaces --max-new-tokens)",
      },
      { name: 'temperature', short: 't', type: 'number', description: '0 = greedy', default: 0 },
      {
        name: 'top-k',
        type: 'int',
        description: 'sample from the k most likely tokens (0: all)',
        default: 0,
      },
      { name: 'top-p', type: 'number', description: 'nucleus sampling threshold', default: 1 },
      { name: 'seed', type: 'int', description: 'sampling seed', default: 0 },
      BACKEND,
    ],
    configFile: true,
    examples: [
      'lowrank generate -m stories260K.bin -p "Once upon a time"',
      'lowrank generate -m stories260K.bin --adapter runs/shakespeare/adapter -p "ROMEO:" -n 100 -t 0.8 --top-p 0.9',
      'lowrank generate -m stories260K.bin --adapter runs/hyper/adapter --condition shakespeare -p "ROMEO:"',
    ],
  },
  async run(p, io) {
    const v = p.values;
    checkInputPath(need(v, 'model', 'a causal LM'), '--model');
    const tok = await openTokenizer(need(v, 'model', 'a causal LM'), v.tokenizer as string | undefined);
    const { base, peft } = await loadWithAdapter(v, 'CAUSAL_LM');
    // The adapter is merged into the weights for decoding: the same function as the adapter forward
    // (W + scale·BA), and the KV-cached decoding loop runs on the plain model.
    const model = peft ? (peft.mergeAndUnload() as typeof base) : base;
    if (peft)
      io.err(
        `adapter ${v.adapter} loaded (${v.condition !== undefined ? `HyperLoRA condition ${v.condition} as ` : ''}${peft.peftConfig.get('default')?.peftType}) and merged for decoding`,
      );
    const prompt = tok.raw.encode(v.prompt as string);
    const { generate } = await import('../../models/generate.js');
    const asked = newTokenCount(
      v.steps as number | undefined,
      v['max-new-tokens'] as number,
      prompt,
      tok.raw.bosTokenId,
    );
    const positions = maxPositions(v.model as string);
    let maxNewTokens = asked;
    if (positions !== undefined) {
      if (prompt.length >= positions)
        throw new UsageError(
          `--prompt: ${prompt.length} tokens fill the model's ${positions} positions; shorten the prompt`,
        );
      if (prompt.length + asked > positions) {
        maxNewTokens = positions - prompt.length;
        io.err(
          `note: the model has ${positions} positions; generating ${maxNewTokens} tokens, not ${asked} (the prompt takes ${prompt.length})`,
        );
      }
    }
    const ids = await generate(model, prompt, {
      maxNewTokens,
      temperature: v.temperature as number,
      topK: v['top-k'] as number,
      topP: v['top-p'] as number,
      seed: v.seed as number,
      eosTokenId: tok.raw.eosTokenId,
    });
    io.out(tok.raw.decode([...prompt, ...ids], { skipSpecialTokens: true }));
  },
};

/** New tokens to generate: `--steps` counts llama2.c positions after BOS, the prompt included. */
function newTokenCount(steps: number | undefined, maxNew: number, prompt: number[], bos?: number): number {
  if (steps === undefined) return maxNew;
  const promptPositions = prompt.length - (prompt[0] === bos ? 1 : 0);
  if (steps <= promptPositions)
    throw new UsageError(`--steps: must exceed the prompt's ${promptPositions} tokens (got ${steps})`);
  return steps - promptPositions;
}

export const mergeCommand: Command = {
  spec: {
    name: 'merge',
    summary: 'Merge an adapter into its base model and write a Hugging Face folder',
    options: [
      MODEL,
      ADAPTER,
      { name: 'output', short: 'o', type: 'string', description: 'folder for the merged model' },
      {
        name: 'tokenizer',
        type: 'string',
        description: 'tokenizer file copied beside the model (default: found beside the model)',
      },
      {
        name: 'task',
        type: 'string',
        description: 'head of the model',
        default: 'causal_lm',
        choices: ['causal_lm', 'classification'],
      },
      { name: 'num-labels', type: 'int', description: 'classes (classification)', default: 2 },
      {
        name: 'force',
        type: 'boolean',
        description:
          "write into a non-empty --output, replacing the files merge writes there (never the base model's folder)",
        default: false,
      },
      BACKEND,
    ],
    examples: [
      'lowrank merge -m stories260K.bin --adapter runs/shakespeare/adapter -o merged-shakespeare',
      'lowrank merge -m ./bert --adapter runs/sst2/adapter --task classification -o bert-sst2',
    ],
  },
  async run(p, io) {
    const v = p.values;
    const out = trimSlash(need(v, 'output', 'folder for the merged model'));
    const adapter = need(v, 'adapter', 'the adapter to merge');
    const model = need(v, 'model', 'the base model the adapter was trained on');
    checkInputPath(model, '--model');
    checkInputPath(adapter, '--adapter');
    // never into the base model's (or the adapter's) own folder; an existing folder only with --force
    checkOutputFolder(out, '--output', Boolean(v.force), [
      ['the base model (--model)', model],
      ['the adapter (--adapter)', adapter],
      ['the tokenizer (--tokenizer)', v.tokenizer as string | undefined],
    ]);
    const task = v.task === 'classification' ? 'SEQ_CLS' : 'CAUSAL_LM';
    const { peft } = await loadWithAdapter(
      v,
      task,
      task === 'SEQ_CLS' ? (v['num-labels'] as number) : undefined,
    );
    const merged = peft!.mergeAndUnload();
    let tokPath: string | undefined;
    try {
      tokPath = tokenizerPathFor(v.model as string, v.tokenizer as string | undefined);
    } catch {
      tokPath = undefined; // a model without a tokenizer is still a valid merge
    }
    const files = tokenizerFiles(tokPath);
    const { saveModel } = await import('../../models/load.js');
    const created = !fs.existsSync(out);
    try {
      await saveModel(merged as never, out, { tokenizerFiles: files });
    } catch (e) {
      // a folder this run created goes again on failure (nothing half-written is left behind)
      if (created) fs.rmSync(out, { recursive: true, force: true });
      throw e;
    }
    io.out(
      `merged model written to ${out}${Object.keys(files).length ? ` (with ${Object.keys(files).join(', ')})` : ''}`,
    );
  },
};

export const convertCommand: Command = {
  spec: {
    name: 'convert',
    summary: 'Convert a llama2.c checkpoint (+ tokenizer) to a Hugging Face Llama folder',
    positionals: [{ name: 'checkpoint', description: 'llama2.c .bin file', required: true }],
    options: [
      {
        name: 'tokenizer',
        type: 'string',
        description: 'llama2.c tok*.bin (default: found beside the checkpoint)',
      },
      { name: 'output', short: 'o', type: 'string', description: 'output folder' },
    ],
    examples: ['lowrank convert stories260K.bin --tokenizer tok512.bin -o stories260K-hf'],
  },
  async run(p, io) {
    const out = trimSlash(need(p.values, 'output', 'the Hugging Face folder to write'));
    const bin = p.positionals[0]!;
    checkInputPath(bin, '<checkpoint>');
    checkOutputFolder(out, '--output', false, [['the checkpoint', bin]]);
    let tok = p.values.tokenizer as string | undefined;
    if (!tok) {
      try {
        tok = tokenizerPathFor(bin);
      } catch {
        tok = undefined;
      }
    }
    const { convertLlama2cToHF } = await import('../../io/llama2c.js');
    await convertLlama2cToHF(bin, tok, out);
    io.out(`wrote ${out}: ${fs.readdirSync(out).sort().join(', ')}`);
  },
};

export const reportCommand: Command = {
  spec: {
    name: 'report',
    summary: 'Write the HTML report (curves, AdaLoRA budget, rank heatmap + PNG) of a run folder',
    positionals: [{ name: 'run', description: 'run folder of lowrank train (--output)', required: true }],
    options: [{ name: 'title', type: 'string', description: 'page title' }],
    examples: ['lowrank report runs/shakespeare', 'lowrank report runs/demo/adalora --title "AdaLoRA demo"'],
  },
  async run(p, io) {
    const { writeReport } = await import('../../report/report.js');
    const r = await writeReport(p.positionals[0]!, p.values.title as string | undefined);
    io.out(`report: ${r.html}`);
    if (r.heatmapPng) io.out(`rank heatmap: ${r.heatmapPng}`);
  },
};
