/**
 * HyperLoRA × model matrix (issue 5): the shared invariants of `src/testing/tuner_matrix.ts` on the tiny
 * MLP, BERT, GPT-2 (Conv1D) and Llama, through the conditioned-tuner hooks — a fresh hypernetwork is
 * the base model (B heads start at zero); save → load → save is byte-identical; one SGD step changes
 * only `hypernet.*`; no leaks; a batch mixing conditions equals each row alone; and the plain LoRA
 * materialised for each condition gives that condition's outputs and merges to the same outputs.
 * The hypernetwork itself has no merge (its factors depend on the row's condition): merging is checked
 * on the materialised adapters.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import type { Module } from '../../nn/module.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';
import { TINY } from '../../testing/tiny_models.js';
import {
  registerTunerMatrix,
  type ConditionedSubject,
  type ConditionedTuner,
  type MatrixCase,
} from '../../testing/tuner_matrix.js';
import '../lora/index.js';
import {
  HyperLoraConfig,
  HyperLoraModel,
  HYPER_CONFIG_NAME,
  HYPER_WEIGHTS_NAME,
  type HyperCondition,
  type HyperLoraConfigOptions,
} from './index.js';

/** Every tiny input has two rows; they run under two different conditions of three. */
const ROW_CONDITIONS = [2, 0];
const NUM_CONDITIONS = 3;
/** Condition vectors for `conditionType: 'vector'`: condition k is row k. */
const VECTORS = [
  [1, 0, 0, 0.5],
  [0, 1, -1, 0],
  [0.3, -0.2, 0.7, 1],
];

/** The matrix's view of a HyperLoraModel: `forward` runs the mixed rows, conditions index VECTORS or ids. */
class HyperSubject implements ConditionedSubject {
  constructor(readonly hyper: HyperLoraModel) {}

  private condition(ks: number[]): HyperCondition {
    if (this.hyper.config.conditionType === 'id') return ks;
    return tf.tensor2d(ks.map((k) => VECTORS[k]!));
  }

  private run(inputs: ModelInputs, ks: number[]): ModelOutput {
    const cond = this.condition(ks);
    try {
      return this.hyper.forward(inputs, cond);
    } finally {
      if (!Array.isArray(cond)) cond.dispose();
    }
  }

  forward(inputs: ModelInputs): ModelOutput {
    return this.run(inputs, ROW_CONDITIONS);
  }
  forwardUnder(inputs: ModelInputs, k: number): ModelOutput {
    return this.run(
      inputs,
      ROW_CONDITIONS.map(() => k),
    );
  }
  async saveMaterialized(dir: string, k: number): Promise<void> {
    const cond = this.condition([k]);
    try {
      await this.hyper.saveMaterialized(dir, Array.isArray(cond) ? cond[0]! : (cond as Tensor));
    } finally {
      if (!Array.isArray(cond)) cond.dispose();
    }
  }
  withAdapterDisabled<T>(fn: () => T): T {
    return this.hyper.withAdapterDisabled(fn);
  }
  namedParameters() {
    return this.hyper.namedParameters();
  }
  trainableParameters() {
    return this.hyper.trainableParameters();
  }
  train() {
    return this.hyper.train();
  }
  eval() {
    return this.hyper.eval();
  }
  dispose() {
    this.hyper.dispose();
  }
  savePretrained(dir: string) {
    return this.hyper.savePretrained(dir);
  }
}

const hyperTuner = (o: Omit<HyperLoraConfigOptions, 'numConditions' | 'conditionDim'>): ConditionedTuner => {
  const config = () =>
    new HyperLoraConfig(
      o.conditionType === 'vector'
        ? { hiddenDim: 8, ...o, conditionDim: VECTORS[0]!.length }
        : { hiddenDim: 8, ...o, numConditions: NUM_CONDITIONS },
    );
  return {
    build: (model: Module) => new HyperSubject(new HyperLoraModel(model, config())),
    load: async (model: Module, dir: string) =>
      new HyperSubject(await HyperLoraModel.fromPretrained(model, dir)),
    files: [HYPER_CONFIG_NAME, HYPER_WEIGHTS_NAME],
    numConditions: NUM_CONDITIONS,
    rowConditions: ROW_CONDITIONS,
  };
};

const common = { isAdapterParam: (n: string) => n.startsWith('hypernet.'), noMerge: true };

const cases: MatrixCase[] = [
  {
    name: 'hyperlora × mlp',
    ...TINY.mlp,
    tuner: hyperTuner({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'] }),
    ...common,
  },
  {
    name: 'hyperlora × bert SEQ_CLS',
    ...TINY.bertCls,
    tuner: hyperTuner({ r: 2, targetModules: ['query', 'key', 'value'] }),
    ...common,
  },
  {
    name: 'hyperlora + dropout × gpt2 (Conv1D)',
    ...TINY.gpt2,
    tuner: hyperTuner({ r: 2, loraDropout: 0.1, targetModules: ['c_attn', 'c_fc'] }),
    ...common,
  },
  {
    name: 'hyperlora × llama',
    ...TINY.llama,
    tuner: hyperTuner({ r: 2, targetModules: ['q_proj', 'v_proj', 'down_proj'] }),
    ...common,
  },
  {
    name: 'hyperlora film conditioning × bert SEQ_CLS',
    ...TINY.bertCls,
    tuner: hyperTuner({ r: 2, conditioning: 'film', targetModules: ['query', 'value'] }),
    ...common,
  },
  {
    name: 'hyperlora shared A × llama',
    ...TINY.llama,
    tuner: hyperTuner({ r: 2, sharedA: true, targetModules: ['q_proj', 'v_proj', 'down_proj'] }),
    ...common,
  },
  {
    name: 'hyperlora condition vectors × llama',
    ...TINY.llama,
    tuner: hyperTuner({
      r: 3,
      conditionType: 'vector',
      conditioning: 'film',
      targetModules: ['q_proj', 'o_proj'],
    }),
    ...common,
  },
];

registerTunerMatrix(cases);
