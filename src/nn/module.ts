/**
 * A small module system in the spirit of `torch.nn.Module` (docs/design.md "Floors", nn/).
 *
 * Parameters are `tf.Variable`s; `variable.trainable` is PyTorch's `requires_grad`. Children are
 * registered under the exact names of the Hugging Face checkpoint keys, and each child is also
 * reachable as a property of the same name (`this.q_proj`), so `replaceChild` swaps a module in
 * place and the parent's forward code picks up the replacement (how tuners inject adapters).
 *
 * @example
 * class Mlp extends Module {
 *   declare fc: Linear;
 *   constructor() { super(); this.registerModule('fc', new Linear(4, 2)); }
 *   forward(x: Tensor) { return this.fc.forward(x); }
 * }
 * new Mlp().namedParameters(); // [['fc.weight', Variable], ['fc.bias', Variable]]
 */
import { tf, type Tensor, type Variable } from '../tensor/tf.js';
import { CheckpointError, ConfigError, internal } from '../errors.js';

let variableCounter = 0;

/** A tf.Variable with a unique tfjs name (tfjs requires uniqueness across the process). */
export function newVariable(value: Tensor, trainable = true, label = 'param'): Variable {
  return tf.variable(value, trainable, `${label}#${variableCounter++}`);
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Variable>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _children = new Map<string, Module>();

  /** Registers (or replaces, disposing the old one) a parameter; returns the variable. */
  registerParameter(name: string, value: Tensor | Variable, trainable = true): Variable {
    const old = this._params.get(name);
    if (old && old !== value) old.dispose();
    const v = value instanceof tf.Variable ? value : newVariable(value, trainable, name);
    if (value instanceof tf.Variable) v.trainable = trainable;
    this._params.set(name, v);
    (this as any)[name] = v;
    return v;
  }

  /** Registers a parameter from a freshly made init tensor and frees that tensor (the variable keeps its own copy). */
  registerInitialised(name: string, init: Tensor, trainable = true): Variable {
    const v = this.registerParameter(name, init, trainable);
    init.dispose();
    return v;
  }

  /** A buffer is state saved in the state dict but never trained (e.g. AdaLoRA's `ranknum`). */
  registerBuffer(name: string, value: Tensor): Tensor {
    const old = this._buffers.get(name);
    if (old && old !== value) old.dispose();
    const kept = tf.keep(value);
    this._buffers.set(name, kept);
    (this as any)[name] = kept;
    return kept;
  }

  registerModule<M extends Module>(name: string, module: M): M {
    this._children.set(name, module);
    (this as any)[name] = module;
    return module;
  }

  /** Removes a parameter, buffer or child by local name (disposing tensors). */
  deleteAttribute(name: string): void {
    this._params.get(name)?.dispose();
    this._buffers.get(name)?.dispose();
    this._params.delete(name);
    this._buffers.delete(name);
    this._children.delete(name);
    delete (this as any)[name];
  }

  hasParameter(name: string): boolean {
    return this._params.has(name);
  }

  hasChild(name: string): boolean {
    return this._children.has(name);
  }

  getParameter(name: string): Variable | undefined {
    return this._params.get(name);
  }

  getBuffer(name: string): Tensor | undefined {
    return this._buffers.get(name);
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._children.entries()];
  }

  /** Local (non-recursive) parameters in registration order. */
  localParameters(): [string, Variable][] {
    return [...this._params.entries()];
  }

  localBuffers(): [string, Tensor][] {
    return [...this._buffers.entries()];
  }

  /** Every module below this one (this one first, under `''`), dotted names, depth-first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this._children) {
      out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Every parameter below this module with its dotted name, in PyTorch's order. */
  namedParameters(prefix = ''): [string, Variable][] {
    const out: [string, Variable][] = [];
    const seen = new Set<Variable>();
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [pName, p] of mod._params) {
        if (seen.has(p)) continue; // tied weights appear once, like PyTorch's named_parameters()
        seen.add(p);
        out.push([modName ? `${modName}.${pName}` : pName, p]);
      }
    }
    return out;
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [modName, mod] of this.namedModules(prefix)) {
      for (const [bName, b] of mod._buffers) out.push([modName ? `${modName}.${bName}` : bName, b]);
    }
    return out;
  }

  parameters(): Variable[] {
    return this.namedParameters().map(([, p]) => p);
  }

  trainableParameters(): [string, Variable][] {
    return this.namedParameters().filter(([, p]) => p.trainable);
  }

  /** Sets `requires_grad` on every parameter below this module. */
  requiresGrad(flag: boolean): this {
    for (const [, p] of this.namedParameters()) p.trainable = flag;
    return this;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** The module at a dotted path (`''` is this module). */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    return path.split('.').reduce<Module>((mod, part) => {
      const next = mod._children.get(part);
      if (!next) throw new ConfigError('Module.getSubmodule', `no submodule "${part}" in path`, path);
      return next;
    }, this);
  }

  /** Replaces the module at a dotted path, keeping its name; returns the old module. */
  replaceChild(path: string, replacement: Module): Module {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this : this.getSubmodule(path.slice(0, dot));
    const name = dot < 0 ? path : path.slice(dot + 1);
    const old = parent._children.get(name);
    if (!old) throw new ConfigError('Module.replaceChild', 'no module at this path', path);
    parent.registerModule(name, replacement);
    return old;
  }

  /**
   * Parameters and buffers by dotted name (tensors are the live variables: do not dispose them).
   * Tied weights appear under every name, as in PyTorch's `state_dict()`.
   */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [modName, mod] of this.namedModules(prefix)) {
      const at = (n: string) => (modName ? `${modName}.${n}` : n);
      for (const [n, p] of mod._params) out.set(at(n), p);
      for (const [n, b] of mod._buffers) out.set(at(n), b);
    }
    return out;
  }

  /**
   * Copies tensors into parameters/buffers by name. Strict mode throws a `CheckpointError` listing
   * missing and unexpected keys; shape mismatches always throw. The caller keeps ownership of `state`.
   */
  loadStateDict(state: Map<string, Tensor>, strict = true): LoadStateDictResult {
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !state.has(k));
    const unexpectedKeys = [...state.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of state) {
      const target = own.get(k);
      if (target && !sameShape(target.shape, t.shape)) {
        mismatched.push(`${k}: checkpoint [${t.shape}] vs model [${target.shape}]`);
      }
    }
    if (mismatched.length > 0) {
      throw new CheckpointError(
        'loadStateDict',
        'tensor shapes differ from the model',
        mismatched,
        'load a checkpoint made for this model configuration',
      );
    }
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      throw new CheckpointError(
        'loadStateDict',
        'keys do not match the model',
        {
          missing: missingKeys.slice(0, 20),
          unexpected: unexpectedKeys.slice(0, 20),
          counts: [missingKeys.length, unexpectedKeys.length],
        },
        'check the checkpoint matches the architecture, or pass strict=false',
      );
    }
    for (const [modName, mod] of this.namedModules()) {
      const at = (n: string) => (modName ? `${modName}.${n}` : n);
      for (const [n, p] of mod._params) {
        const src = state.get(at(n));
        if (src) p.assign(src.dtype === p.dtype ? src : tf.cast(src, p.dtype));
      }
      for (const [n] of mod._buffers) {
        const src = state.get(at(n));
        if (src) mod.registerBuffer(n, tf.clone(src));
      }
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Number of parameter elements (trainable only if asked). */
  numParameters(trainableOnly = false): number {
    return this.namedParameters()
      .filter(([, p]) => !trainableOnly || p.trainable)
      .reduce((n, [, p]) => n + p.size, 0);
  }

  /** Frees every parameter and buffer below this module. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const [, p] of m._params) if (!p.isDisposed) p.dispose();
      for (const [, b] of m._buffers) if (!b.isDisposed) b.dispose();
      m.disposeOwned();
    }
  }

  /**
   * Frees tensors a module holds outside its parameters and buffers (e.g. float16 storage,
   * nn/half_embedding.ts); called by {@link dispose} for every module below. Default: nothing.
   */
  protected disposeOwned(): void {}
}

/** An ordered list of modules named "0", "1", … like `torch.nn.ModuleList`. */
export class ModuleList<M extends Module = Module> extends Module {
  constructor(modules: M[] = []) {
    super();
    modules.forEach((m) => this.push(m));
  }

  push(m: M): void {
    this.registerModule(String(this.length), m);
  }

  get length(): number {
    return this.namedChildren().length;
  }

  at(i: number): M {
    const m = (this as any)[String(i)] as M | undefined;
    if (!m) internal(`ModuleList index ${i} out of range (length ${this.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return (this.namedChildren().map(([, m]) => m) as M[])[Symbol.iterator]();
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A module whose forward maps one tensor to one tensor (Linear, adapters, norms, …). */
export interface TensorLayer extends Module {
  forward(x: Tensor): Tensor;
}
