/**
 * `ModuleDict` and `ParameterDict` like `torch.nn`: children/parameters keyed by name (adapter names
 * in tuners: `lora_A.default.weight`, `lora_embedding_A.default`, as PEFT utils/save_and_load.py keys them).
 *
 * @example
 * const d = new ModuleDict<Linear>();
 * d.set('default', new Linear(4, 2, { bias: false }));
 * d.get('default')?.forward(x);
 */
import type { Tensor, Variable } from '../tensor/tf.js';
import { Module } from './module.js';

export class ModuleDict<M extends Module = Module> extends Module {
  set(key: string, m: M): M {
    if (this.hasChild(key)) this.delete(key);
    return this.registerModule(key, m);
  }

  get(key: string): M | undefined {
    return this.hasChild(key) ? ((this as unknown as Record<string, M>)[key] as M) : undefined;
  }

  has(key: string): boolean {
    return this.hasChild(key);
  }

  /** Removes the child and disposes its tensors. */
  delete(key: string): void {
    const m = this.get(key);
    if (!m) return;
    m.dispose();
    this.deleteAttribute(key);
  }

  keys(): string[] {
    return this.namedChildren().map(([k]) => k);
  }
}

export class ParameterDict extends Module {
  set(key: string, value: Tensor | Variable, trainable = true): Variable {
    return this.registerParameter(key, value, trainable);
  }

  get(key: string): Variable | undefined {
    return this.getParameter(key);
  }

  has(key: string): boolean {
    return this.hasParameter(key);
  }

  delete(key: string): void {
    this.deleteAttribute(key);
  }

  keys(): string[] {
    return this.localParameters().map(([k]) => k);
  }
}
