/**
 * `ModulesToSaveWrapper` (PEFT other.py): a module listed in `modulesToSave` (e.g. the classifier head)
 * is replaced by a wrapper holding the untouched `original_module` and one trainable deep copy per
 * adapter under `modules_to_save.<adapter>` (PEFT utils/other.py `ModulesToSaveWrapper`). The forward uses
 * the active adapter's copy, or the original when adapters are disabled or the adapter has no copy.
 *
 * @example
 * const w = new ModulesToSaveWrapper(model.classifier, 'default');
 * model.replaceChild('classifier', w); // model.classifier.forward(h) now runs the trainable copy
 */
import { Module } from '../../nn/module.js';
import { ModuleDict } from '../../nn/module_dict.js';
import { cloneModule } from '../../nn/clone.js';

export class ModulesToSaveWrapper extends Module {
  declare original_module: Module;
  declare modules_to_save: ModuleDict;
  activeAdapter: string;
  disableAdapters = false;

  constructor(original: Module, adapter: string) {
    super();
    this.registerModule('original_module', original);
    this.registerModule('modules_to_save', new ModuleDict());
    this.activeAdapter = adapter;
    this.update(adapter);
    original.requiresGrad(false);
  }

  /** Adds a trainable copy for `adapter` (no-op if it exists). */
  update(adapter: string): void {
    if (this.modules_to_save.has(adapter)) return;
    const copy = cloneModule(this.original_module);
    copy.requiresGrad(adapter === this.activeAdapter);
    this.modules_to_save.set(adapter, copy);
  }

  /** Makes `adapter`'s copy the one used (and the only trainable one). */
  setAdapter(adapter: string): void {
    for (const k of this.modules_to_save.keys()) this.modules_to_save.get(k)!.requiresGrad(k === adapter);
    this.activeAdapter = adapter;
  }

  enableAdapters(enabled: boolean): void {
    this.disableAdapters = !enabled;
    if (!enabled)
      for (const k of this.modules_to_save.keys()) this.modules_to_save.get(k)!.requiresGrad(false);
  }

  deleteAdapter(adapter: string): void {
    this.modules_to_save.delete(adapter);
  }

  /** The module the forward currently runs. */
  activeModule(): Module {
    if (this.disableAdapters) return this.original_module;
    return this.modules_to_save.get(this.activeAdapter) ?? this.original_module;
  }

  /** Forwards any arguments to the active module's `forward`. */
  forward(...args: unknown[]): unknown {
    const m = this.activeModule() as unknown as { forward(...a: unknown[]): unknown };
    return m.forward(...args);
  }
}
