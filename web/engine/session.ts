/**
 * The worker's state: one base model (loaded once) and the adapters trained or loaded on it. Adapters
 * are switched in place (PEFT's `setAdapter`), so changing adapters never reloads the base.
 */
import { CheckpointError, ConfigError, LowrankError } from '../../src/errors.js';
import { takeFile, unmount } from '../../src/io/source_browser.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import type { PreTrainedModel } from '../../src/models/base.js';
import { numLabelsOf } from '../../src/models/config.js';
import { generate } from '../../src/models/generate.js';
import { Linear } from '../../src/nn/layers.js';
import { quantizeModelAsync } from '../../src/nn/linear4bit.js';
import { tf, type Tensor } from '../../src/tensor/tf.js';
// The tuners' entry module: importing it registers every tuner (LoRA, DoRA, AdaLoRA, …).
import { adapterDir, CONFIG_NAME, PeftModel, WEIGHTS_NAME } from '../../src/tuners/index.js';
import type { TrainControl } from '../train_control.js';
import type { DemoHead } from '../demo.js';
import type {
  AdapterFiles,
  ModelInfo,
  ModelSource,
  PickedFile,
  ProbeResult,
  Replies,
  TrainSpec,
  WorkerEvent,
} from '../protocol.js';
import { buildAdapter, rankSnapshotOf } from './adapters.js';
import { prepareData, type PreparedData } from './data.js';
import { restoreHeads, snapshotHeads } from './heads.js';
import { loadBase, mountPicked, type LoadedBase } from './load.js';
import { trainOnPage } from './train.js';

/** Where trained adapters are kept (in the in-memory file tree, as PEFT folders). */
const STORE = '/adapters/trained';
/** Where uploaded adapter folders are mounted. */
const UPLOADS = '/adapters/uploaded';

/** Distinct last path segments of the base model's Linear layers, output layers excluded. */
function linearModuleNames(model: PreTrainedModel): string[] {
  const outputs = new Set(model.outputModuleNames());
  const names = new Set<string>();
  for (const [path, m] of model.namedModules()) {
    if (m instanceof Linear && !outputs.has(path)) names.add(path.split('.').pop()!);
  }
  return [...names];
}

function numLayersOf(model: PreTrainedModel): number {
  const idx = new Set<number>();
  for (const [path] of model.namedModules()) {
    const m = /\.(?:layers|layer|h)\.(\d+)\./.exec(`${path}.`);
    if (m) idx.add(Number(m[1]));
  }
  return idx.size;
}

interface StoredAdapter {
  dir: string;
  method: string;
  /** Class names of the data it was trained on (string labels), shown by probe. */
  labelNames?: string[];
}

export class Session {
  base: LoadedBase | null = null;
  trainingAdapter: string | null = null;
  trainingStep = 0;
  /** The adapter-wrapped base while an adapter is active. */
  private peft: PeftModel | null = null;
  private active: string | null = null;
  private readonly adapters = new Map<string, StoredAdapter>();
  /** Copies of the base's output heads, restored when an adapter is removed (unload keeps its own head copy). */
  private heads = new Map<string, Tensor>();
  private quantized = false;
  private source: ModelSource | null = null;

  constructor(readonly emit: (e: WorkerEvent) => void) {}

  /** The loaded base, or a ConfigError telling the user to load one. */
  need(): LoadedBase {
    if (!this.base)
      throw new ConfigError(
        'page',
        'no model is loaded',
        undefined,
        'load the demo model or your files first (step 1)',
      );
    return this.base;
  }

  get model(): PreTrainedModel {
    return this.need().model;
  }

  get tokenizer(): Tokenizer {
    return this.need().tokenizer;
  }

  /** Loads a base model, disposing the previous one and its adapters. */
  async loadModel(source: ModelSource, head: DemoHead = {}): Promise<ModelInfo> {
    const next = await loadBase(source, head);
    this.disposeBase();
    this.base = next;
    this.source = source;
    this.heads = snapshotHeads(next.model);
    const info = this.info();
    this.emit({ type: 'model', info });
    return info;
  }

  private disposeBase(): void {
    if (!this.base) return;
    this.detach();
    for (const [, p] of this.base.model.namedParameters()) p.dispose();
    tf.dispose([...this.heads.values()]);
    this.heads.clear();
    for (const name of this.adapters.keys()) this.adapters.delete(name);
    unmount(STORE);
    unmount(UPLOADS);
    this.quantized = false;
    this.base = null;
    this.emitAdapters();
  }

  /**
   * Rebuilds the base with the head the data asks for (e.g. a Llama classifier with as many labels as
   * the data has); its adapters go with the old head.
   */
  private async switchHead(task: 'CAUSAL_LM' | 'SEQ_CLS', data: PreparedData): Promise<void> {
    const source = this.source;
    if (!source) throw new ConfigError('task', 'needs a loaded model', task, 'load a model first');
    const numLabels = data.labelNames?.length ?? Math.max(2, ...data.examples.map((e) => e.label + 1));
    await this.loadModel(source, task === 'SEQ_CLS' ? { task, numLabels } : { task });
    this.emit({
      type: 'log',
      message: `the model was rebuilt with a ${task === 'SEQ_CLS' ? `${numLabels}-class classification` : 'causal-LM'} head for this data`,
    });
  }

  /** Removes the active adapter from the base (restoring the base's own heads). */
  private detach(): void {
    if (!this.peft) return;
    this.peft.unload();
    this.peft = null;
    this.active = null;
    restoreHeads(this.model, this.heads);
  }

  /** Makes `name` the active adapter (loaded from its PEFT folder), or the bare base for null. */
  private async attach(name: string | null): Promise<void> {
    if (name === this.active) return;
    this.detach();
    if (name === null) return;
    const stored = this.adapters.get(name);
    if (!stored)
      throw new ConfigError(
        'adapter',
        'no adapter with this name is loaded',
        name,
        'train one or load a PEFT folder',
      );
    this.peft = await PeftModel.fromPretrained(this.model, stored.dir, { adapterName: name });
    this.peft.eval();
    this.active = name;
  }

  private emitAdapters(): void {
    this.emit({ type: 'adapters', names: [...this.adapters.keys()], active: this.active });
  }

  /**
   * Trains a new adapter on the base with the page's data and method, saving it as a PEFT folder in
   * memory when the run ends (also when stopped). The adapter stays active afterwards.
   */
  async train(spec: TrainSpec, control: TrainControl): Promise<Replies['train']> {
    const base = this.need();
    const name = spec.adapterName;
    if (!/^[A-Za-z0-9_-]+$/.test(name)) {
      throw new ConfigError('adapter name', 'must be letters, digits, _ or -', name, 'e.g. "sst2_ada"');
    }
    const data = prepareData(spec.data, base.tokenizer, spec.seqLen, base.name);
    if (spec.data.task !== base.model.taskType) await this.switchHead(spec.data.task, data);
    const model = this.model;
    this.detach();
    if (spec.method.method === 'qlora' && !this.quantized) {
      const report = await quantizeModelAsync(model, { quantType: 'nf4' });
      this.quantized = true;
      this.emit({
        type: 'log',
        message: `QLoRA: ${report.quantized.length} linear layers now 4-bit NF4 (reload the model to undo)`,
      });
    }
    const config = buildAdapter(spec, model.taskType === 'SEQ_CLS' ? 'SEQ_CLS' : 'CAUSAL_LM');
    const peft = new PeftModel(model, config, name);
    this.peft = peft;
    this.active = name;
    this.trainingAdapter = name;
    this.trainingStep = 0;
    if (!control.start()) throw new ConfigError('train', 'a run is already active', name, 'stop it first');
    let result;
    try {
      result = await trainOnPage(
        peft,
        {
          examples: data.examples,
          task: model.taskType === 'SEQ_CLS' ? 'classification' : 'causal_lm',
          padTokenId: data.padTokenId,
          steps: spec.steps,
          batchSize: spec.batchSize,
          learningRate: spec.learningRate,
          seed: spec.seed,
        },
        control,
        {
          progress: (e) => this.emit({ type: 'progress', ...e }),
          newRanks: (step, budget) =>
            this.emit({ type: 'ranks', ...rankSnapshotOf(peft, name, step + 1, spec.method.initR, budget) }),
          stepDone: (step) => (this.trainingStep = step),
        },
      );
    } finally {
      control.finish();
      this.trainingAdapter = null;
    }
    unmount(adapterDir(STORE, name));
    await peft.savePretrained(STORE, { selectedAdapters: [name] });
    this.adapters.set(name, {
      dir: adapterDir(STORE, name),
      method: spec.method.method,
      ...(data.labelNames ? { labelNames: data.labelNames } : {}),
    });
    this.emitAdapters();
    return { adapterName: name, steps: result.steps, finalLoss: result.finalLoss, stopped: result.stopped };
  }

  /** Switches adapters without reloading the base (null = the bare base model). */
  async setAdapter(name: string | null): Promise<Replies['setAdapter']> {
    await this.attach(name);
    this.emitAdapters();
    return { active: this.active };
  }

  /** Forgets an adapter (its files too). */
  async deleteAdapter(name: string): Promise<Replies['deleteAdapter']> {
    if (this.active === name) this.detach();
    const stored = this.adapters.get(name);
    if (stored) unmount(stored.dir);
    this.adapters.delete(name);
    this.emitAdapters();
    return { names: [...this.adapters.keys()] };
  }

  /** The two PEFT files of an adapter, for download. */
  async exportAdapter(name: string): Promise<AdapterFiles> {
    const stored = this.adapters.get(name);
    if (!stored)
      throw new ConfigError(
        'download',
        'no adapter with this name',
        name,
        'choose a trained or loaded adapter',
      );
    return {
      name,
      config: new TextDecoder().decode(takeFile(`${stored.dir}/${CONFIG_NAME}`)),
      safetensors: takeFile(`${stored.dir}/${WEIGHTS_NAME}`).slice(),
    };
  }

  /**
   * Loads a PEFT adapter folder picked by the user and makes it active. A bad folder (wrong format,
   * shapes that do not fit the base) leaves the previous adapter active and raises the library's error.
   */
  async loadAdapter(name: string, files: PickedFile[]): Promise<Replies['loadAdapter']> {
    this.need();
    if (files.length === 0)
      throw new CheckpointError(
        'adapter folder',
        'is empty',
        undefined,
        'pick the folder with adapter_config.json',
      );
    const clean = name.replace(/[^A-Za-z0-9_-]/g, '_') || 'loaded';
    const dir = mountPicked(`${UPLOADS}/${clean}`, files);
    const previous = this.active;
    const before = this.adapters.get(clean);
    this.adapters.set(clean, { dir, method: 'uploaded' });
    try {
      await this.attach(clean);
    } catch (err) {
      if (before) this.adapters.set(clean, before);
      else this.adapters.delete(clean);
      this.detach();
      await this.attach(previous).catch(() => undefined);
      this.emitAdapters();
      // Library errors are typed and name the file; anything else (a parser's SyntaxError) is wrapped
      // so the page still says which folder failed and what to do.
      if (err instanceof LowrankError) throw err;
      const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new CheckpointError(
        `${name}/${CONFIG_NAME}`,
        'could not be read as a PEFT adapter folder',
        msg,
        'pick a folder written by PEFT save_pretrained or lowrank savePretrained',
      );
    }
    const method = String(this.peft?.peftConfig.get(clean)?.peftType ?? 'unknown');
    this.adapters.set(clean, { dir, method });
    this.emitAdapters();
    return { name: clean, method };
  }

  /** What the page shows about the base model. */
  info(): ModelInfo {
    const { model, tokenizer, name } = this.need();
    const numParameters = model.namedParameters().reduce((n, [, p]) => n + p.size, 0);
    return {
      name,
      modelType: model.modelType,
      taskType: model.taskType === 'SEQ_CLS' ? 'SEQ_CLS' : 'CAUSAL_LM',
      numParameters,
      numLayers: numLayersOf(model),
      linearModules: linearModuleNames(model),
      vocabSize: tokenizer.vocabSize,
      numLabels: model.taskType === 'SEQ_CLS' ? numLabelsOf(model.config) : 0,
    };
  }

  /**
   * Runs the model (with the active adapter) on one input: greedy generation for a causal LM, the
   * class probabilities for a classifier. Also returns the raw logits, for comparing with Node.
   */
  async probe(prompt: string, maxNewTokens: number): Promise<ProbeResult> {
    const model = this.model;
    const tok = this.tokenizer;
    const inputIds = tok.encode(prompt);
    if (inputIds.length === 0) throw new ConfigError('prompt', 'gives no tokens', prompt, 'type some text');
    const wasTraining = model.training;
    model.eval();
    try {
      const logitsT = tf.tidy(() => {
        const ids = tf.tensor2d(inputIds, [1, inputIds.length], 'int32');
        const out = model.forward({ inputIds: ids, attentionMask: tf.onesLike(ids) });
        return model.taskType === 'SEQ_CLS'
          ? out.logits.reshape([-1])
          : out.logits.slice([0, inputIds.length - 1, 0], [1, 1, -1]).reshape([-1]);
      });
      const logits = Array.from(await logitsT.data());
      logitsT.dispose();
      const adapter = this.activeAdapter();
      if (model.taskType === 'SEQ_CLS') {
        const m = Math.max(...logits);
        const e = logits.map((x) => Math.exp(x - m));
        const s = e.reduce((a, b) => a + b, 0);
        const probs = e.map((x) => x / s);
        const best = probs.indexOf(Math.max(...probs));
        const id2label = (model.config.id2label ?? {}) as Record<string, string>;
        const names = adapter ? this.adapters.get(adapter)?.labelNames : undefined;
        return {
          text: `${names?.[best] ?? id2label[String(best)] ?? `LABEL_${best}`} (${(probs[best]! * 100).toFixed(1)}%)`,
          inputIds,
          logits,
          probs,
          labels: probs.map((_, i) => names?.[i] ?? id2label[String(i)] ?? `LABEL_${i}`),
          adapter,
        };
      }
      const eos = tok.eosTokenId;
      const ids = await generate(model, inputIds, {
        maxNewTokens,
        temperature: 0,
        ...(eos !== undefined ? { eosTokenId: eos } : {}),
      });
      return {
        text: tok.decode([...inputIds, ...ids], { skipSpecialTokens: true }),
        inputIds,
        logits,
        probs: [],
        adapter,
      };
    } finally {
      model.train(wasTraining);
    }
  }

  /** Name of the adapter in use, or null when the bare base model runs. */
  activeAdapter(): string | null {
    return this.active;
  }
}
