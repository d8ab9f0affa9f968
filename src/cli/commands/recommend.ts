/**
 * `lowrank recommend`: turns the method-selection flow (memory limit → QLoRA; many tasks or
 * input-dependent adaptation → HyperLoRA; expressiveness close to full fine-tuning → DoRA; a fixed
 * parameter budget whose best placement is unknown → AdaLoRA; otherwise LoRA) into answers with
 * reasons, a trade-offs table and a ready `lowrank train` command.
 */
import readline from 'node:readline/promises';
import type { Command } from '../command.js';
import { table } from '../io.js';
import { UsageError, type ParsedValue } from '../args.js';

export type Method = 'lora' | 'adalora' | 'dora' | 'qlora' | 'hyperlora';
type Level = 'low' | 'medium' | 'high';

export interface Needs {
  /** Accelerator/host memory available for training, GB. */
  memoryGb?: number;
  /** Base model parameters (e.g. 7e9). */
  modelParams?: number;
  tasks: number;
  dynamic: boolean;
  compute: Level;
  expressiveness: Level;
}

export interface Recommendation {
  method: Method;
  /** Adapter style under QLoRA (the 4-bit base carries LoRA or AdaLoRA). */
  adapterOnQuantized?: 'lora' | 'adalora';
  reasons: string[];
}

/** bytes for weights + activations rough rule: fp32 weights ×4, Adam on adapters only, activations ~ 30% extra. */
const BYTES_PER_PARAM_FP32 = 4;
const ACTIVATION_OVERHEAD = 1.3;

/**
 * The selection flow as a function.
 * @example recommend({ tasks: 1, dynamic: false, compute: 'medium', expressiveness: 'medium' }).method; // 'adalora'
 */
export function recommend(n: Needs): Recommendation {
  const reasons: string[] = [];
  if (n.memoryGb !== undefined && n.modelParams !== undefined) {
    const weightsGb = (n.modelParams * BYTES_PER_PARAM_FP32) / 1e9;
    const needGb = weightsGb * ACTIVATION_OVERHEAD;
    if (needGb > n.memoryGb) {
      const q = (n.modelParams * 0.5) / 1e9;
      reasons.push(
        `the frozen base's fp32 weights take ${weightsGb.toFixed(1)} GB (~${needGb.toFixed(1)} GB with activations) but only ${n.memoryGb} GB is available; 4-bit NF4 weights take ${q.toFixed(1)} GB (~${(q * ACTIVATION_OVERHEAD).toFixed(1)} GB with activations)`,
      );
      const ada = n.compute !== 'low';
      reasons.push(
        ada
          ? 'compute allows adaptive rank allocation on top of the 4-bit base (QLoRA + AdaLoRA)'
          : 'low compute: plain LoRA adapters on the 4-bit base',
      );
      return { method: 'qlora', adapterOnQuantized: ada ? 'adalora' : 'lora', reasons };
    }
    reasons.push(
      `the base fits in memory (${weightsGb.toFixed(1)} GB of fp32 weights, ~${needGb.toFixed(1)} GB with activations, of ${n.memoryGb} GB), so no quantisation is needed`,
    );
  }
  if (n.tasks > 1 || n.dynamic) {
    reasons.push(
      n.dynamic
        ? 'the adaptation must change with the input/task at run time: a hypernetwork generates the low-rank weights'
        : `${n.tasks} tasks share one hypernetwork instead of ${n.tasks} separate adapters`,
    );
    return { method: 'hyperlora', reasons };
  }
  if (n.expressiveness === 'high' && n.compute !== 'low') {
    reasons.push(
      'high expressiveness: DoRA splits each weight into magnitude and direction and tracks full fine-tuning more closely than LoRA at the same rank',
    );
    reasons.push('costs ~10–20% more compute per step (the column norm of W + BA)');
    return { method: 'dora', reasons };
  }
  if (n.compute === 'low') {
    reasons.push('low compute: LoRA has no allocation overhead and the fewest moving parts');
    return { method: 'lora', reasons };
  }
  reasons.push(
    'a single task with a fixed parameter budget: AdaLoRA starts wider (initR) and prunes singular values by importance down to targetR on average, putting rank where it helps',
  );
  reasons.push(
    'its overhead (importance scores and the orthogonal regulariser) is modest at this compute level',
  );
  return { method: 'adalora', reasons };
}

export const TRADE_OFFS: [string, string, string, string, string][] = [
  [
    'LoRA',
    'r·(in+out) per matrix',
    'base + small',
    'lowest',
    'simple, robust baseline; same rank everywhere',
  ],
  [
    'AdaLoRA',
    'same budget as LoRA (avg targetR)',
    'base + small',
    '+ importance scores',
    'moves rank to the matrices that matter; needs totalStep',
  ],
  [
    'DoRA',
    'LoRA + one magnitude per output',
    'base + small',
    '+10–20%',
    'closer to full fine-tuning; slower',
  ],
  [
    'QLoRA',
    'LoRA/AdaLoRA on a 4-bit base',
    'base / 8 (fp32→NF4)',
    '+ dequantisation',
    'fits big bases in small memory; small quantisation error',
  ],
  [
    'HyperLoRA',
    'hypernetwork (shared across tasks)',
    'base + hypernet',
    '+ hypernet forward',
    'multi-task / dynamic adaptation; more to tune',
  ],
];

/**
 * The `lowrank train` command line for a recommendation.
 * @example trainCommand({ method: 'adalora', reasons: [] });
 */
export function trainCommand(r: Recommendation, model = './my-model', data = './train.tsv'): string {
  const base = `lowrank train --model ${model} --data ${data} --output runs/${r.method}`;
  switch (r.method) {
    case 'adalora':
      return `${base} --method adalora --init-r 12 --target-r 8 --lr 1e-3 --max-steps 1000`;
    case 'lora':
      return `${base} --method lora --r 8 --lr 1e-3 --max-steps 1000`;
    case 'dora':
      return `${base} --method dora --r 8 --lr 1e-3 --max-steps 1000`;
    case 'qlora':
      return r.adapterOnQuantized === 'adalora'
        ? `${base} --method adalora --quantize nf4 --init-r 12 --target-r 8 --lr 1e-3 --max-steps 1000`
        : `${base} --method lora --quantize nf4 --r 8 --lr 1e-3 --max-steps 1000`;
    case 'hyperlora':
      // One hypernetwork over several named text sets (causal LM); `--data` is replaced by them.
      return (
        `lowrank train --model ${model} --method hyperlora --conditions task-a=./a.txt,task-b=./b.txt ` +
        `--output runs/hyperlora --r 8 --lr 5e-3 --max-steps 1000`
      );
  }
}

function parseCount(v: ParsedValue | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmbgKMBG]?)$/.exec(String(v).trim());
  if (!m)
    throw new UsageError(`--${flag}: expects a number like 7e9, 350m or 1.3b (got ${JSON.stringify(v)})`);
  const mult: Record<string, number> = { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9 };
  return Number(m[1]) * mult[m[2]!.toLowerCase()]!;
}

export const recommendCommand: Command = {
  spec: {
    name: 'recommend',
    summary: 'Recommend a method (LoRA / AdaLoRA / DoRA / QLoRA / HyperLoRA) from your constraints',
    options: [
      { name: 'memory-gb', type: 'number', description: 'memory available for training, GB' },
      { name: 'model-params', type: 'string', description: 'base model size, e.g. 125m, 7b, 6.7e9' },
      { name: 'tasks', type: 'int', description: 'number of tasks to serve', default: 1 },
      {
        name: 'dynamic',
        type: 'boolean',
        description: 'adaptation must change per input/task at run time',
        default: false,
      },
      {
        name: 'compute',
        type: 'string',
        description: 'compute budget',
        default: 'medium',
        choices: ['low', 'medium', 'high'],
      },
      {
        name: 'expressiveness',
        type: 'string',
        description: 'how close to full fine-tuning you need',
        default: 'medium',
        choices: ['low', 'medium', 'high'],
      },
      {
        name: 'interactive',
        short: 'i',
        type: 'boolean',
        description: 'ask the questions instead of reading flags',
        default: false,
      },
      { name: 'json', type: 'boolean', description: 'print machine-readable JSON', default: false },
    ],
    examples: [
      'lowrank recommend --memory-gb 16 --model-params 7b',
      'lowrank recommend --tasks 5',
      'lowrank recommend --expressiveness high --compute high',
      'lowrank recommend -i',
    ],
  },
  async run(p, io) {
    const v = p.values;
    let memoryGb = v['memory-gb'] as number | undefined;
    let modelParams = parseCount(v['model-params'], 'model-params');
    let tasks = v.tasks as number;
    let dynamic = v.dynamic as boolean;
    let compute = v.compute as Level;
    let expressiveness = v.expressiveness as Level;
    if (v.interactive) {
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
      const ask = async (q: string, d: string) => (await rl.question(`${q} [${d}] `)).trim() || d;
      try {
        const mem = await ask('Memory available for training, GB (blank: no limit)?', '');
        memoryGb = mem ? Number(mem) : undefined;
        modelParams = parseCount(
          (await ask('Base model size (e.g. 125m, 7b)?', '125m')) || undefined,
          'model-params',
        );
        tasks = Number(await ask('How many tasks?', '1'));
        dynamic = /^y/i.test(await ask('Must the adaptation change per input at run time (y/n)?', 'n'));
        compute = (await ask('Compute budget (low/medium/high)?', 'medium')) as Level;
        expressiveness = (await ask('Expressiveness needed (low/medium/high)?', 'medium')) as Level;
      } finally {
        rl.close();
      }
      for (const [k, val] of [
        ['compute', compute],
        ['expressiveness', expressiveness],
      ] as const) {
        if (!['low', 'medium', 'high'].includes(val))
          throw new UsageError(`${k}: must be low, medium or high (got "${val}")`);
      }
      if (!Number.isInteger(tasks) || tasks < 1)
        throw new UsageError(`tasks: must be a positive integer (got ${tasks})`);
    }
    if (tasks < 1) throw new UsageError(`--tasks: must be >= 1 (got ${tasks})`);
    if (memoryGb !== undefined && !(memoryGb > 0))
      throw new UsageError(`--memory-gb: must be > 0 (got ${memoryGb})`);
    const r = recommend({ memoryGb, modelParams, tasks, dynamic, compute, expressiveness });
    const cmd = trainCommand(r);
    if (v.json) {
      io.out(JSON.stringify({ ...r, command: cmd }, null, 2));
      return;
    }
    const label =
      r.method === 'qlora'
        ? `QLoRA (4-bit base + ${r.adapterOnQuantized === 'adalora' ? 'AdaLoRA' : 'LoRA'} adapters)`
        : { lora: 'LoRA', adalora: 'AdaLoRA', dora: 'DoRA', hyperlora: 'HyperLoRA' }[r.method];
    io.out(`Recommended: ${label}`);
    io.out('');
    io.out('Why:');
    for (const reason of r.reasons) io.out(`  - ${reason}`);
    io.out('');
    io.out(table(['method', 'trainable parameters', 'memory', 'compute', 'trade-off'], TRADE_OFFS));
    io.out('');
    io.out('Run:');
    io.out(`  ${cmd}`);
  },
};
